package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/agent"
	"github.com/xdpsvc/lb/appliance/daemon"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
	"github.com/xdpsvc/lb/bench/tstest"
)

// agentManifests is a Service without endpoints: backend agents provide them, from the
// addresses the grant annotation lists (grant: comma-separated CIDRs).
func agentManifests(grant string) string {
	m := lab.Manifests(lab.Service{
		Name: "web", LoadBalancerIP: "198.19.1.1", ClusterIP: "198.19.0.10",
		Ports: []lab.ServicePort{
			{Name: "http", Protocol: "TCP", Port: 80, TargetPort: 8080, NodePort: 30080},
			{Name: "echo", Protocol: "UDP", Port: 9000, TargetPort: 9000, NodePort: 30900},
		},
	})
	return strings.Replace(m, "metadata: {name: web, namespace: default}",
		fmt.Sprintf("metadata: {name: web, namespace: default, annotations: {%s: %q}}", daemon.AllowedSourcesAnnotation, grant), 1)
}

// applianceKey is the appliances' gossip key in raw form (32 bytes, not base64: the '-'), which
// every reader of cluster.secretKeyFile takes as the same key.
const applianceKey = "agents-e2e-appliance-key-32bytes"

// startAgentNode runs the appliance in lab node i with its agent cluster enabled (on the node's
// external address, port agent.DefaultPort, keyed with a new agent key) and returns it with the
// agent key file.
func startAgentNode(t *testing.T, l *lab.Lab, i int, manifests string) (*node, string) {
	t.Helper()
	ns, dir := l.Nodes[i], t.TempDir()
	an, err := appliance.New(appliance.Config{
		Bin: applianceBinary(t), NS: ns, Name: fmt.Sprintf("lb-%d", ns.Index), Peers: l.Nodes, Dir: dir,
		GossipKey: applianceKey, HealthTimeout: 20 * time.Second, AdminTimeout: 10 * time.Second,
	}, manifests)
	if err != nil {
		t.Fatal(err)
	}
	key, err := appliance.NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "agents.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lb.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withAgents := strings.Replace(string(cfg), "\ncluster:\n", "\ncluster:\n  agents: {enabled: true, secretKeyFile: agents.key}\n", 1)
	if withAgents == string(cfg) {
		t.Fatalf("no cluster section in %s:\n%s", cfgPath, cfg)
	}
	if err := os.WriteFile(cfgPath, []byte(withAgents), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &node{Node: an, t: t, ns: ns}
	t.Cleanup(func() {
		n.Stop()
		if p := n.Process(); p != nil && t.Failed() {
			t.Logf("appliance %s output:\n%s", n.name(), p.Output())
		}
	})
	n.start()
	return n, keyFile
}

// startAgent runs `appliance agent` in backend namespace b, joining the node's agent cluster
// with the agent key.
func startAgent(t *testing.T, n *node, b *lab.NS, keyFile string) *lab.Process {
	t.Helper()
	p, err := b.Start(applianceBinary(t), "agent", "--join", netip.AddrPortFrom(n.ns.External().Addr.Addr(), agent.DefaultPort).String(),
		"--secret-key-file", keyFile,
		"--service", "default/web", "--port", "http=8080,echo=9000/udp", "--address", b.Addr().String(),
		"--name", "agent-"+b.Short, "--check-interval", "200ms", "--drain-timeout", "2s")
	if err != nil {
		t.Fatalf("start agent in %s: %v", b.Short, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("agent %s output:\n%s", b.Short, p.Output())
		}
	})
	return p
}

// agentEndpoints returns the node's endpoints of default/web port http, by address.
func agentEndpoints(n *node) map[string]admin.EndpointStatus {
	var eps []admin.EndpointStatus
	n.api("/api/v1/endpoints", &eps)
	out := map[string]admin.EndpointStatus{}
	for _, e := range eps {
		if e.Service == "web" && e.Port == "http" {
			out[strings.TrimSuffix(e.Address, ":8080")] = e
		}
	}
	return out
}

// TestBackendAgentsProvideEndpoints: one appliance, a Service without endpoints, two backends
// each running `appliance agent`. Requests through the ClusterIP and the VIP reach both; SIGTERM
// on one agent drains it (no new requests reach it, the others keep succeeding) and then it is
// gone; SIGKILL on the other removes its endpoint once the cluster declares it dead.
func TestBackendAgentsProvideEndpoints(t *testing.T) {
	l := startLab(t, 2)
	b1, b2 := l.Backends[0], l.Backends[1]
	n, keyFile := startAgentNode(t, l, 0, agentManifests(b1.Addr().String()+"/32,"+b2.Addr().String()+"/32"))
	a1 := startAgent(t, n, b1, keyFile)
	a2 := startAgent(t, n, b2, keyFile)

	tstest.Eventually(t, 20*time.Second, "both agents' endpoints ready", func() error {
		eps := agentEndpoints(n)
		for _, b := range []*lab.NS{b1, b2} {
			if e, ok := eps[b.Addr().String()]; !ok || !e.Ready || e.Node != "agent-"+b.Short {
				return fmt.Errorf("endpoints %+v", eps)
			}
		}
		return nil
	})

	inCluster, client := l.ClusterClients[0], l.Clients[0]
	urls := []struct {
		from *lab.NS
		url  string
	}{{inCluster, "http://198.19.0.10/"}, {client, "http://198.19.1.1/"}}
	seen := map[string]int{}
	for i := 0; i < 40 && (seen["b1"] == 0 || seen["b2"] == 0); i++ {
		u := urls[i%len(urls)]
		body, err := get(u.from, u.url)
		if err != nil {
			t.Fatalf("request %d to %s: %v", i, u.url, err)
		}
		seen[backendName(body)]++
	}
	if seen["b1"] == 0 || seen["b2"] == 0 {
		t.Fatalf("requests reached %v, want both backends", seen)
	}
	t.Logf("before drain: %v", seen)

	// SIGTERM: draining (ready=false, serving, terminating), then gone; requests keep working.
	if err := syscall.Kill(a1.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	tstest.Eventually(t, 5*time.Second, "b1 draining", func() error {
		e, ok := agentEndpoints(n)[b1.Addr().String()]
		if !ok || e.Ready || !e.Serving || !e.Terminating {
			return fmt.Errorf("b1 endpoint %+v (present %v)", e, ok)
		}
		return nil
	})
	drained := map[string]int{}
	for i := range 20 {
		u := urls[i%len(urls)]
		body, err := get(u.from, u.url)
		if err != nil {
			t.Fatalf("request %d during drain: %v", i, err)
		}
		drained[backendName(body)]++
	}
	if drained["b1"] != 0 || drained["b2"] != 20 {
		t.Fatalf("new requests during drain reached %v, want b2 only", drained)
	}
	tstest.Eventually(t, 10*time.Second, "agent b1 exits 0 after the drain", func() error {
		select {
		case <-a1.Done():
			return a1.Err()
		default:
			return fmt.Errorf("still running")
		}
	})
	tstest.Eventually(t, 3*time.Second, "b1 endpoint gone after the leave", func() error {
		if e, ok := agentEndpoints(n)[b1.Addr().String()]; ok {
			return fmt.Errorf("b1 still %+v", e)
		}
		return nil
	})
	for i := range 10 {
		u := urls[i%len(urls)]
		if body, err := get(u.from, u.url); err != nil || backendName(body) != "b2" {
			t.Fatalf("request %d after b1 left: %q %v", i, body, err)
		}
	}

	// SIGKILL: no leave; the endpoint goes once the failure detector declares the agent dead.
	killed := time.Now()
	if err := syscall.Kill(a2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tstest.Eventually(t, 10*time.Second, "b2 endpoint gone after SIGKILL", func() error {
		if e, ok := agentEndpoints(n)[b2.Addr().String()]; ok {
			return fmt.Errorf("b2 still %+v", e)
		}
		return nil
	})
	t.Logf("killed agent's endpoint removed %s after SIGKILL", time.Since(killed).Round(10*time.Millisecond))
}
