package daemon

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/bench/tstest"
)

// idleIO is a FrameIO with no traffic: the daemon's control path runs for real, the packet
// path has nothing to do (the AF_XDP layer needs root and a lab; bench/e2e covers it).
type idleIO struct{}

func (idleIO) Receive([]dataplane.Frame) int    { return 0 }
func (idleIO) Transmit(f []dataplane.Frame) int { return len(f) }
func (idleIO) TransmitCopies(d [][]byte) int    { return len(d) }
func (idleIO) Release([]dataplane.Frame)        {}
func (idleIO) wait(d time.Duration)             { time.Sleep(min(d, 10*time.Millisecond)) }
func (r *recordingIO) Queues() []Queue          { return r.queues }
func (r *recordingIO) Modes() string            { return "test: no XDP" }
func (r *recordingIO) Close() error             { return nil }
func (r *recordingIO) frontends() []dataplane.FrontendAddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// recordingIO is the daemon's IOLayer for a test: it records what the steering maps would hold.
type recordingIO struct {
	queues []Queue
	mu     sync.Mutex
	last   []dataplane.FrontendAddr
}

func (r *recordingIO) Sync(plan *dataplane.Plan) error {
	r.mu.Lock()
	r.last = plan.Frontends()
	r.mu.Unlock()
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	// Below the kernel's ephemeral range (32768-60999 by default): a port the kernel handed out
	// with :0 and took back is soon handed out again to some outgoing connection of another
	// test, and the daemon's bind then fails. Both TCP and UDP must be free (memberlist binds both).
	for range 200 {
		port := 20000 + rand.IntN(10000)
		if _, taken := portsGiven.LoadOrStore(port, true); taken {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port in 20000-29999")
	return 0
}

// portsGiven keeps freePort from handing out one port twice in a test binary.
var portsGiven sync.Map

// TestRunFollowsTheKubernetesAPI runs the daemon in API mode against client-go's fake clientset:
// a LoadBalancer Service created in the API is served with its apiserver-allocated ClusterIP and
// NodePort, gets an external IP from the pool written back to its status, and its frontends reach
// the steering maps; deleting it removes them.
func TestRunFollowsTheKubernetesAPI(t *testing.T) {
	dir := t.TempDir()
	adminPort, gossipPort := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "lb.yaml")
	cfgText := fmt.Sprintf(`node: {name: api-test}
interfaces: [{name: test0}]
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools: [{name: default, cidrs: [198.19.1.0/28]}]
cluster:
  bind: 127.0.0.1:%d
  insecure: true
services:
  kubeconfig: kubeconfig
admin:
  listen: 127.0.0.1:%d
state:
  path: state.json
`, gossipPort, adminPort)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	rio := runTestDaemon(t, "api-test", cfgPath, client)

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "198.19.0.10", ClusterIPs: []string{"198.19.0.10"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080), NodePort: 30080}},
		},
	}
	port, pname, proto := int32(8080), "http", corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.21"}}},
	}
	bg := t.Context()
	if _, err := client.CoreV1().Services("default").Create(bg, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(bg, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	c := &admin.Client{Base: fmt.Sprintf("127.0.0.1:%d", adminPort)}
	var vip string
	tstest.Eventually(t, 15*time.Second, "service served from the API", func() error {
		var svcs []admin.ServiceStatus
		if err := c.Get(bg, "/api/v1/services", &svcs); err != nil {
			return err
		}
		if len(svcs) != 1 || svcs[0].ExternalIP == "" || len(svcs[0].Ports) != 1 || len(svcs[0].Ports[0].ReadyEndpoints) != 1 {
			return fmt.Errorf("services %+v", svcs)
		}
		s := svcs[0]
		if s.ClusterIPs[0] != "198.19.0.10" || s.Ports[0].NodePort != 30080 {
			return fmt.Errorf("apiserver-allocated values not kept: %+v", s)
		}
		vip = s.ExternalIP
		return nil
	})
	tstest.Eventually(t, 10*time.Second, "external IP written to status", func() error {
		got, err := client.CoreV1().Services("default").Get(bg, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if in := got.Status.LoadBalancer.Ingress; len(in) != 1 || in[0].IP != vip {
			return fmt.Errorf("status %+v, want ingress %s", got.Status.LoadBalancer, vip)
		}
		return nil
	})
	has := func(addr string, p uint16) bool {
		for _, f := range rio.frontends() {
			if f.Addr.String() == addr && f.Port == p {
				return true
			}
		}
		return false
	}
	tstest.Eventually(t, 5*time.Second, "frontends in the steering maps", func() error {
		if !has(vip, 80) || !has("198.19.0.10", 80) || !has("198.18.1.11", 30080) {
			return fmt.Errorf("frontends %v", rio.frontends())
		}
		return nil
	})

	if err := client.CoreV1().Services("default").Delete(bg, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tstest.Eventually(t, 10*time.Second, "deleted service withdrawn", func() error {
		if has(vip, 80) || has("198.19.0.10", 80) {
			return fmt.Errorf("frontends still %v", rio.frontends())
		}
		return nil
	})
}
