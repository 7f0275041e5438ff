package cluster

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

func backendState(n *Node, agent string) (EndpointState, bool) {
	for _, b := range n.Backends() {
		if b.Name == agent && len(b.Endpoints) > 0 {
			return b.Endpoints[0].State, true
		}
	}
	return 0, false
}

// TestNodeBackendMetaUpdates: an agent's SetMeta reaches the appliance (OnMembers fires, Backends
// shows the new state); a graceful leave and a crash both remove its endpoints.
func TestNodeBackendMetaUpdates(t *testing.T) {
	var calls atomic.Int64
	network := newMockNetwork(t, "lb-a", "agent-1", "agent-2")
	app := startNode(t, func() Config {
		c := network.config(t, "lb-a", nil)
		c.OnMembers = func() { calls.Add(1) }
		return c
	}())
	ep := AgentEndpoint{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: EndpointReady,
		Ports: []AgentPort{{Port: 8080, Protocol: ProtocolTCP}}}
	agents := map[string]*Node{}
	for _, name := range []string{"agent-1", "agent-2"} {
		c := network.config(t, name, nil)
		c.Meta = Meta{Role: RoleBackend, Endpoints: []AgentEndpoint{ep}}
		c.Join = []string{app.AddrPort().String()}
		agents[name] = startNode(t, c)
	}
	for name := range agents {
		tstest.EventuallyTrue(t, 10*time.Second, name+" ready at the appliance", func() bool {
			s, ok := backendState(app, name)
			return ok && s == EndpointReady
		})
	}
	if calls.Load() == 0 {
		t.Fatal("OnMembers never called")
	}

	tests := []struct {
		name  string
		state EndpointState
	}{
		{"not ready", EndpointNotReady},
		{"ready again", EndpointReady},
		{"draining", EndpointDraining},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			m := agents["agent-1"].Meta()
			m.Endpoints[0].State = tc.state
			if err := agents["agent-1"].SetMeta(m, time.Second); err != nil {
				t.Fatal(err)
			}
			tstest.EventuallyTrue(t, 5*time.Second, "state "+tc.state.String()+" at the appliance", func() bool {
				s, ok := backendState(app, "agent-1")
				return ok && s == tc.state
			})
			tstest.EventuallyTrue(t, 2*time.Second, "OnMembers after the change", func() bool { return calls.Load() > before })
		})
	}

	if err := agents["agent-1"].SetMeta(Meta{Role: RoleAppliance}, time.Second); err == nil {
		t.Fatal("SetMeta changed the role")
	}

	// Graceful leave: gone at once (no failure detection).
	start := time.Now()
	if err := agents["agent-1"].Close(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 3*time.Second, "left agent's endpoints dropped", func() bool { _, ok := backendState(app, "agent-1"); return !ok })
	t.Logf("graceful leave: endpoints dropped %s after Close began", time.Since(start).Round(time.Millisecond))
	if err := agents["agent-1"].SetMeta(Meta{Role: RoleBackend}, time.Second); err == nil {
		t.Fatal("SetMeta after Close succeeded")
	}

	// Crash (no leave message): dropped once declared dead.
	start = time.Now()
	_ = agents["agent-2"].Shutdown()
	tstest.EventuallyTrue(t, 5*time.Second, "dead agent's endpoints dropped", func() bool { _, ok := backendState(app, "agent-2"); return !ok })
	t.Logf("crash: endpoints dropped %s after shutdown", time.Since(start).Round(time.Millisecond))
	for _, m := range app.Members() {
		if m.Name == "agent-2" && m.State != StateDead {
			t.Fatalf("agent-2 is %v, want dead", m.State)
		}
		if m.Name == "agent-1" && m.State != StateLeft {
			t.Fatalf("agent-1 is %v, want left", m.State)
		}
	}
}

// TestNodeBackendsDoNotCountTowardQuorum: a lone appliance with quorum required holds every VIP
// however many agents come and go; agents are never ranked.
func TestNodeBackendsDoNotCountTowardQuorum(t *testing.T) {
	network := newMockNetwork(t, "lb-a", "agent-1", "agent-2", "agent-3")
	app := startNode(t, network.config(t, "lb-a", nil))
	vips := testVIPs(8)
	app.SetVIPs(vips)
	var agents []*Node
	for _, name := range []string{"agent-1", "agent-2", "agent-3"} {
		c := network.config(t, name, nil)
		c.Meta = Meta{Role: RoleBackend}
		c.Join = []string{app.AddrPort().String()}
		agents = append(agents, startNode(t, c))
	}
	tstest.EventuallyTrue(t, 10*time.Second, "appliance sees the agents", func() bool { return len(app.Backends()) == 3 })
	tstest.EventuallyTrue(t, 5*time.Second, "lone appliance holds every VIP", func() bool { return len(app.Held()) == len(vips) })
	for _, a := range agents {
		_ = a.Shutdown() // crash: three "lost" members
	}
	tstest.EventuallyTrue(t, 5*time.Second, "agents declared dead", func() bool { return len(app.Backends()) == 0 })
	tstest.Never(t, 500*time.Millisecond, 20*time.Millisecond, "appliance lost quorum or VIPs after agents died", func() bool {
		return !app.HasQuorum() || len(app.Held()) != len(vips)
	})
	for _, v := range vips {
		if o, s := app.Owner(v); o != "lb-a" || s != "" {
			t.Fatalf("vip %s: owner %q standby %q", v, o, s)
		}
	}
}

// TestAgentKeyCannotJoinApplianceCluster: two appliances share the appliance key and also run an
// agent-cluster node (another key, no VIPs); an agent holding only the agent key joins the
// agent cluster, is seen there with its own address, and fails to join the appliance cluster:
// it never appears among the appliances' members and holds no VIP in either cluster.
func TestAgentKeyCannotJoinApplianceCluster(t *testing.T) {
	applianceKey := bytes.Repeat([]byte{1}, 32)
	agentKey := bytes.Repeat([]byte{2}, 32)
	vip := netip.MustParseAddr("198.19.1.1")
	appliances := startClusterOnSockets(t, []string{"lb-a", "lb-b"}, applianceKey, nil)
	for _, a := range appliances {
		a.SetVIPs([]netip.Addr{vip})
	}
	var agentPorts []*Node
	for _, a := range appliances {
		c := testConfig(t, a.cfg.Name, agentKey)
		c.RequireQuorum = false
		agentPorts = append(agentPorts, startNode(t, c))
	}
	if _, err := agentPorts[1].Join([]string{agentPorts[0].AddrPort().String()}); err != nil {
		t.Fatalf("agent cluster: %v", err)
	}

	c := testConfig(t, "agent-1", agentKey)
	c.Meta = Meta{Role: RoleBackend, Endpoints: []AgentEndpoint{{Service: "default/web", Addr: netip.MustParseAddr("127.0.0.1"),
		State: EndpointReady, Ports: []AgentPort{{Port: 8080, Protocol: ProtocolTCP}}}}}
	agent := startNode(t, c)
	if _, err := agent.Join([]string{appliances[0].AddrPort().String()}); err == nil {
		t.Fatal("an agent holding only the agent key joined the appliance cluster")
	}
	if _, err := agent.Join([]string{agentPorts[0].AddrPort().String()}); err != nil {
		t.Fatalf("agent joins the agent cluster: %v", err)
	}
	// A liar claims an address it does not answer at: no probe confirms it, so it is never listed.
	lc := testConfig(t, "liar", agentKey)
	lc.Meta = c.Meta
	lc.BindAddr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freeLoopbackPort(t)) // memberlist advertises the bound port of port 0
	lc.AdvertiseAddr = netip.MustParseAddrPort("127.0.0.1:1")
	liar := startNode(t, lc)
	if _, err := liar.Join([]string{agentPorts[0].AddrPort().String()}); err != nil {
		t.Fatalf("liar joins the agent cluster: %v", err)
	}
	for _, p := range agentPorts {
		tstest.EventuallyTrue(t, 10*time.Second, "agent seen in the agent cluster", func() bool {
			b := p.Backends()
			return len(b) == 1 && b[0].Name == "agent-1" && b[0].Addr == agent.AddrPort()
		})
	}
	tstest.EventuallyTrue(t, 10*time.Second, "the appliances hold the VIP", func() bool {
		o, _ := appliances[0].Owner(vip)
		return o == "lb-a" || o == "lb-b"
	})
	tstest.Never(t, time.Second, 50*time.Millisecond, "the agent in the appliance cluster, a VIP held in the agent cluster, or the liar listed", func() bool {
		for _, a := range appliances {
			for _, m := range a.Members() {
				if m.Name == "agent-1" {
					return true
				}
			}
			if len(a.Backends()) != 0 {
				return true
			}
			if o, _ := a.Owner(vip); o == "agent-1" {
				return true
			}
		}
		for _, p := range append(agentPorts, agent) {
			if p.Holds(vip) {
				return true
			}
			for _, b := range p.Backends() {
				if b.Name == "liar" {
					return true
				}
			}
		}
		return false
	})
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 for both TCP and UDP a moment ago.
func freeLoopbackPort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free loopback port")
	return 0
}
