package daemon

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	service := func(name, grant string) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if grant != "" {
			s.Annotations = map[string]string{AllowedSourcesAnnotation: grant}
		}
		return s
	}
	svcs := map[string]*corev1.Service{
		"default/web":    service("web", "0.0.0.0/0,::/0"), // every address: the address checks come next
		"default/closed": service("closed", ""),
		"default/narrow": service("narrow", "198.18.1.0/24, 198.18.2.99/32"),
		"default/bad":    service("bad", "198.18.1.0/24,nonsense"),
	}
	tcp := []cluster.AgentPort{{Port: 8080, Protocol: cluster.ProtocolTCP}}
	ep := func(svc, addr string, state cluster.EndpointState) cluster.AgentEndpoint {
		return cluster.AgentEndpoint{Service: svc, Addr: netip.MustParseAddr(addr), State: state, Ports: tcp}
	}
	tests := []struct {
		name                        string
		ep                          cluster.AgentEndpoint
		own                         string // the agent's memberlist address; "" = the endpoint's
		leaving                     bool
		refused                     string // reason, "" = accepted
		ready, serving, terminating bool
		portName                    string
	}{
		{name: "ready", ep: ep("default/web", "198.18.1.21", cluster.EndpointReady), ready: true, serving: true, portName: "http"},
		{name: "not ready", ep: ep("default/web", "198.18.1.21", cluster.EndpointNotReady), portName: "http"},
		{name: "draining", ep: ep("default/web", "198.18.1.21", cluster.EndpointDraining), serving: true, terminating: true, portName: "http"},
		{name: "leaving agent drains", ep: ep("default/web", "198.18.1.21", cluster.EndpointReady),
			leaving: true, serving: true, terminating: true, portName: "http"},
		{name: "named port kept", ep: cluster.AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: cluster.EndpointReady,
			Ports: []cluster.AgentPort{{Name: "admin", Port: 9000, Protocol: cluster.ProtocolTCP}}}, ready: true, serving: true, portName: "admin"},
		{name: "unknown service", ep: ep("default/nope", "198.18.1.21", cluster.EndpointReady), refused: refusedService},
		{name: "service without the grant", ep: ep("default/closed", "198.18.1.21", cluster.EndpointReady), refused: refusedNotGranted},
		{name: "another host's address", ep: ep("default/web", "198.18.1.21", cluster.EndpointReady), own: "198.18.1.22", refused: refusedNotOwn},
		{name: "granted CIDR", ep: ep("default/narrow", "198.18.1.21", cluster.EndpointReady), ready: true, serving: true, portName: "http"},
		{name: "granted single address", ep: ep("default/narrow", "198.18.2.99", cluster.EndpointReady), ready: true, serving: true, portName: "http"},
		{name: "outside the grant", ep: ep("default/narrow", "198.18.2.98", cluster.EndpointReady), refused: refusedNotGranted},
		{name: "malformed grant", ep: ep("default/bad", "198.18.2.98", cluster.EndpointReady), refused: refusedNotGranted},
		{name: "address in serviceCIDR", ep: ep("default/web", "198.19.0.10", cluster.EndpointReady), refused: refusedAddress},
		{name: "address in pool", ep: ep("default/web", "198.19.1.3", cluster.EndpointReady), refused: refusedAddress},
		{name: "loopback", ep: ep("default/web", "127.0.0.1", cluster.EndpointReady), refused: refusedAddress},
		{name: "multicast", ep: ep("default/web", "224.0.0.5", cluster.EndpointReady), refused: refusedAddress},
		{name: "broadcast", ep: ep("default/web", "255.255.255.255", cluster.EndpointReady), refused: refusedAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			own := tc.ep.Addr
			if tc.own != "" {
				own = netip.MustParseAddr(tc.own)
			}
			var got string
			b := cluster.BackendMember{Name: "host-1", Addr: netip.AddrPortFrom(own, 7947), Leaving: tc.leaving, Endpoints: []cluster.AgentEndpoint{tc.ep}}
			objs := agentSlices(b, svcs, cfg, func(_, reason string, _ error) { got = reason })
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
			if es.Labels["kubernetes.io/service-name"] != strings.TrimPrefix(tc.ep.Service, "default/") || es.Namespace != "default" ||
				*es.Ports[0].Name != tc.portName || *es.Endpoints[0].NodeName != "host-1" {
				t.Fatalf("slice %+v", es)
			}
		})
	}
}

// TestRunAgentCluster runs the daemon in manifest mode (idle I/O, no root) with agents enabled
// and members that hold only the agent key:
//   - an agent (the agent code) that joins the appliance cluster's port never becomes a member;
//   - one that joins the agent cluster is seen, with its own address, and refused by the last
//     check only (loopback is not a backend address: taking endpoints end to end needs real
//     addresses, bench/e2e's TestBackendAgentsProvideEndpoints);
//   - a raw member announcing another host's address is refused (not_own_address), and one
//     announcing for a Service without the grant annotation too (not_granted).
func TestRunAgentCluster(t *testing.T) {
	dir := t.TempDir()
	adminPort, gossipPort, agentPort := freePort(t), freePort(t), freePort(t)
	agentKey := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(filepath.Join(dir, "agents.key"), []byte(base64.StdEncoding.EncodeToString(agentKey)), 0o600); err != nil {
		t.Fatal(err)
	}
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
  agents: {enabled: true, bind: 127.0.0.1:%d, secretKeyFile: agents.key}
services:
  manifests: [svc.yaml]
admin:
  listen: 127.0.0.1:%d
state:
  path: state.json
`, gossipPort, agentPort, adminPort)
	manifest := `apiVersion: v1
kind: Service
metadata:
  name: dns
  namespace: default
  annotations: {agents.xdpsvc.io/allowed-sources: "198.18.1.0/24,127.0.0.0/8"}
spec:
  ports: [{name: dns, port: 53, protocol: UDP, targetPort: 5353}]
---
apiVersion: v1
kind: Service
metadata: {name: closed, namespace: default}
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

	startAgent := func(name string, port int) {
		c := agent.DefaultConfig()
		c.Name = name
		c.Join = []string{fmt.Sprintf("127.0.0.1:%d", port)}
		c.Address = netip.MustParseAddr("127.0.0.1")
		c.Bind = netip.MustParseAddrPort("127.0.0.1:0")
		c.SecretKey = agentKey
		// UDP ports are not checked: the endpoint is ready without a listener.
		c.Services = []agent.Service{{Key: "default/dns", Ports: []cluster.AgentPort{{Name: "dns", Port: 5353, Protocol: cluster.ProtocolUDP}}}}
		c.CheckInterval = 100 * time.Millisecond
		a, err := agent.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Kill() })
	}
	startMember := func(name, svc, addr string) {
		c := cluster.DefaultConfig()
		c.Name = name
		c.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
		c.SecretKey = agentKey
		c.Join = []string{fmt.Sprintf("127.0.0.1:%d", agentPort)}
		c.RequireQuorum = false
		c.Meta = cluster.Meta{Role: cluster.RoleBackend, Endpoints: []cluster.AgentEndpoint{{Service: svc, Addr: netip.MustParseAddr(addr),
			State: cluster.EndpointReady, Ports: []cluster.AgentPort{{Name: "dns", Port: 5353, Protocol: cluster.ProtocolUDP}}}}}
		m, err := cluster.New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
	}
	startAgent("at-appliance-port", gossipPort)
	startAgent("loopback", agentPort)
	startMember("spoofer", "default/dns", "198.18.1.21")
	startMember("ungranted", "default/closed", "127.0.0.1")

	c := &admin.Client{Base: fmt.Sprintf("127.0.0.1:%d", adminPort)}
	for _, reason := range []string{refusedAddress, refusedNotOwn, refusedNotGranted} {
		tstest.Eventually(t, 15*time.Second, reason+" refusal counted", func() error {
			if n := refusalsCounted(t, c.Base, reason); n != 1 {
				return fmt.Errorf("%s refusals %v, want 1", reason, n)
			}
			return nil
		})
	}
	tstest.Never(t, time.Second, 100*time.Millisecond, "an agent in the appliance cluster or an agent endpoint taken", func() bool {
		var members []admin.MemberStatus
		var eps []admin.EndpointStatus
		if err := c.Get(t.Context(), "/api/v1/members", &members); err != nil {
			return true
		}
		if err := c.Get(t.Context(), "/api/v1/endpoints", &eps); err != nil {
			return true
		}
		return len(members) != 1 || members[0].Name != "agents-test" || len(eps) != 0
	})
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
