package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/agent"
	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/bench/tstest"
	"github.com/xdpsvc/lb/cluster"
)

func TestAgentSlices(t *testing.T) {
	cfg := &config.Config{}
	cfg.Network.ServiceCIDR = netip.MustParsePrefix("198.19.0.0/24")
	cfg.Network.LoadBalancerPools = []config.Pool{{Name: "default", CIDRs: []netip.Prefix{netip.MustParsePrefix("198.19.1.0/28")}}}
	svcs := map[string]*corev1.Service{
		"default/web": {ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}},
	}
	tcp := []cluster.AgentPort{{Port: 8080, Protocol: cluster.ProtocolTCP}}
	tests := []struct {
		name                        string
		ep                          cluster.AgentEndpoint
		leaving                     bool
		refused                     string // reason, "" = accepted
		ready, serving, terminating bool
		portName                    string
	}{
		{name: "ready", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointReady, Ports: tcp},
			ready: true, serving: true, portName: "http"},
		{name: "not ready", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointNotReady, Ports: tcp},
			portName: "http"},
		{name: "draining", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointDraining, Ports: tcp},
			serving: true, terminating: true, portName: "http"},
		{name: "leaving agent drains", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointReady, Ports: tcp},
			leaving: true, serving: true, terminating: true, portName: "http"},
		{name: "named port kept", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointReady,
			Ports: []cluster.AgentPort{{Name: "admin", Port: 9000, Protocol: cluster.ProtocolTCP}}}, ready: true, serving: true, portName: "admin"},
		{name: "unknown service", ep: cluster.AgentEndpoint{Service: "default/nope", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedService},
		{name: "address in serviceCIDR", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.19.0.10"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedAddress},
		{name: "address in pool", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.19.1.3"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedAddress},
		{name: "loopback", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("127.0.0.1"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedAddress},
		{name: "multicast", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("224.0.0.5"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedAddress},
		{name: "broadcast", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("255.255.255.255"), State: cluster.EndpointReady, Ports: tcp},
			refused: refusedAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			objs := agentSlices(cluster.BackendMember{Name: "host-1", Leaving: tc.leaving, Endpoints: []cluster.AgentEndpoint{tc.ep}}, svcs, cfg,
				func(_, reason string, _ error) { got = reason })
			if got != tc.refused {
				t.Fatalf("refused %q, want %q", got, tc.refused)
			}
			if tc.refused != "" {
				if len(objs) != 0 {
					t.Fatalf("refused endpoint still gave %d objects", len(objs))
				}
				return
			}
			if len(objs) != 1 || objs[0].File != "agent:host-1" || objs[0].Hash == 0 {
				t.Fatalf("objects %+v", objs)
			}
			es := objs[0].EndpointSlice
			c := es.Endpoints[0].Conditions
			if *c.Ready != tc.ready || *c.Serving != tc.serving || *c.Terminating != tc.terminating {
				t.Fatalf("conditions ready=%v serving=%v terminating=%v", *c.Ready, *c.Serving, *c.Terminating)
			}
			if es.Labels["kubernetes.io/service-name"] != "web" || es.Namespace != "default" || *es.Ports[0].Name != tc.portName ||
				*es.Endpoints[0].NodeName != "host-1" {
				t.Fatalf("slice %+v", es)
			}
		})
	}
}

// TestRunMergesBackendAgents runs the daemon in manifest mode (idle I/O, no root) with a Service
// that has no endpoints in the manifests; an in-process agent joins its cluster and its endpoint
// shows up ready in the admin API, a bad agent is refused without stopping anything, and the
// endpoint goes after the agent leaves.
func TestRunMergesBackendAgents(t *testing.T) {
	dir := t.TempDir()
	adminPort, gossipPort := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "lb.yaml")
	cfgText := fmt.Sprintf(`node: {name: agents-test}
interfaces: [{name: test0}]
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools: [{name: default, cidrs: [198.19.1.0/28]}]
cluster:
  bind: 127.0.0.1:%d
  insecure: true
services:
  manifests: [svc.yaml]
admin:
  listen: 127.0.0.1:%d
state:
  path: state.json
`, gossipPort, adminPort)
	manifest := `apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  ports: [{name: dns, port: 53, protocol: UDP, targetPort: 5353}]
`
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "svc.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	runTestDaemon(t, "agents-test", cfgPath, nil)

	startAgent := func(name, addr string) *agent.Agent {
		c := agent.DefaultConfig()
		c.Name = name
		c.Join = []string{fmt.Sprintf("127.0.0.1:%d", gossipPort)}
		c.Address = netip.MustParseAddr(addr)
		c.Bind = netip.MustParseAddrPort("127.0.0.1:0")
		// UDP ports are not checked: the endpoint is ready without a listener.
		c.Services = []agent.Service{{Key: "default/dns", Ports: []cluster.AgentPort{{Name: "dns", Port: 5353, Protocol: cluster.ProtocolUDP}}}}
		c.CheckInterval = 100 * time.Millisecond
		c.DrainTimeout = 200 * time.Millisecond
		a, err := agent.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Kill() })
		return a
	}
	bad := startAgent("bad-agent", "198.19.0.99") // inside the serviceCIDR: refused
	good := startAgent("good-agent", "198.18.1.21")

	c := &admin.Client{Base: fmt.Sprintf("127.0.0.1:%d", adminPort)}
	bg := t.Context()
	endpoint := func() (admin.EndpointStatus, int, error) {
		var eps []admin.EndpointStatus
		if err := c.Get(bg, "/api/v1/endpoints", &eps); err != nil {
			return admin.EndpointStatus{}, 0, err
		}
		for _, e := range eps {
			if e.Address == "198.18.1.21:5353" {
				return e, len(eps), nil
			}
		}
		return admin.EndpointStatus{}, len(eps), nil
	}
	tstest.Eventually(t, 15*time.Second, "agent's endpoint ready in the admin API", func() error {
		e, n, err := endpoint()
		if err != nil {
			return err
		}
		if !e.Ready || e.Service != "dns" || e.Port != "dns" || e.Node != "good-agent" || n != 1 {
			return fmt.Errorf("endpoint %+v of %d", e, n)
		}
		return nil
	})
	if n := refusalsCounted(t, c.Base, refusedAddress); n != 1 {
		t.Fatalf("address refusals counted %v, want 1", n)
	}

	stop := make(chan struct{}, 1)
	stop <- struct{}{}
	done := make(chan error, 1)
	go func() { done <- good.Run(stop) }()
	tstest.Eventually(t, 5*time.Second, "endpoint draining", func() error {
		e, _, err := endpoint()
		if err != nil {
			return err
		}
		if e.Ready || !e.Serving || !e.Terminating {
			return fmt.Errorf("endpoint %+v", e)
		}
		return nil
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tstest.Eventually(t, 5*time.Second, "endpoint gone after the agent left", func() error {
		_, n, err := endpoint()
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d endpoints left", n)
		}
		return nil
	})
	_ = bad.Kill()
}

// refusalsCounted reads appliance_agent_endpoints_refused_total{reason} from the admin API's
// /metrics at base.
func refusalsCounted(t *testing.T, base, reason string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^appliance_agent_endpoints_refused_total\{reason="` + regexp.QuoteMeta(reason) + `"\} (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAgentsInErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"nil", nil, nil},
		{"not a field list", fmt.Errorf("boom"), nil},
		{"manifest only", config.ErrorList{{File: "svc.yaml", Line: 3, Message: "x"}}, nil},
		{"agents named", config.ErrorList{{File: "agent:a1"}, {File: "svc.yaml"}, {File: "agent:a2"}, {File: "agent:a1"}}, []string{"a1", "a2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := agentsInErrors(tc.err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
