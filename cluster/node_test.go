package cluster

import (
	"bytes"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/xdpsvc/lb/bench/tstest"
)

func testConfig(t *testing.T, name string, key []byte) Config {
	c := DefaultConfig()
	c.Name = name
	c.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
	c.SecretKey = key
	c.PushPullInterval = time.Second
	c.JoinRetryInterval = 100 * time.Millisecond
	c.ForgetDeadAfter = time.Minute
	c.Logger = slog.New(slog.NewTextHandler(tstest.NewLogWriter(t, ""), &slog.HandlerOptions{Level: testLogLevel}))
	return c
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	return n
}

func aliveCount(n *Node) int {
	c := 0
	for _, m := range n.Members() {
		if m.State == StateAlive {
			c++
		}
	}
	return c
}

// startCluster starts len(names) nodes on an in-memory mockNetwork, the others joining the first.
func startCluster(t *testing.T, names []string, key []byte, mod func(*Config)) []*Node {
	t.Helper()
	return startClusterOn(t, newMockNetwork(t, names...), names, key, mod)
}

// startClusterOnSockets is startCluster on loopback UDP and TCP sockets, memberlist's own
// transport, for the tests that check what goes over the wire.
func startClusterOnSockets(t *testing.T, names []string, key []byte, mod func(*Config)) []*Node {
	t.Helper()
	return startClusterOn(t, nil, names, key, mod)
}

// startClusterOn starts the nodes on network, or on sockets when network is nil.
func startClusterOn(t *testing.T, network *mockNetwork, names []string, key []byte, mod func(*Config)) []*Node {
	t.Helper()
	var nodes []*Node
	for i, name := range names {
		cfg := testConfig(t, name, key)
		if network != nil {
			cfg = network.config(t, name, key)
		}
		cfg.Meta.ExternalIPs = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})}
		if i > 0 {
			cfg.Join = []string{nodes[0].AddrPort().String()}
		}
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	for _, n := range nodes {
		tstest.EventuallyTrue(t, 10*time.Second, n.Name()+" sees every member", func() bool { return aliveCount(n) == len(names) })
	}
	return nodes
}

func holdersOf(nodes []*Node, vip netip.Addr) []string {
	var out []string
	for _, n := range nodes {
		if n.Holds(vip) {
			out = append(out, n.Name())
		}
	}
	return out
}

func oneOwnerEach(nodes []*Node, vips []netip.Addr, members []string) bool {
	for _, v := range vips {
		h := holdersOf(nodes, v)
		if len(h) != 1 || h[0] != Rank(v, members)[0] {
			return false
		}
	}
	return true
}

func TestNodeCrashFailover(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	var mu sync.Mutex
	gained := map[string][]OwnershipEvent{}
	nodes := startCluster(t, names, nil, func(c *Config) {
		self := c.Name
		c.OnOwnership = func(e OwnershipEvent) {
			mu.Lock()
			defer mu.Unlock()
			if e.Change == Gained {
				gained[self] = append(gained[self], e)
			}
		}
	})
	vips := testVIPs(30)
	for _, n := range nodes {
		n.SetVIPs(vips)
	}
	tstest.EventuallyTrue(t, 10*time.Second, "one owner per VIP, by Rank", func() bool { return oneOwnerEach(nodes, vips, names) })

	victimName := Rank(vips[0], names)[0]
	var victim *Node
	var survivors []*Node
	var survivorNames []string
	for _, n := range nodes {
		if n.Name() == victimName {
			victim = n
		} else {
			survivors = append(survivors, n)
			survivorNames = append(survivorNames, n.Name())
		}
	}
	heir := Rank(vips[0], survivorNames)[0]
	if err := victim.Shutdown(); err != nil { // no Leave: a crash to the others
		t.Fatal(err)
	}
	took := tstest.EventuallyTrue(t, 10*time.Second, "survivor takes the crashed node's VIP", func() bool {
		h := holdersOf(survivors, vips[0])
		return len(h) == 1 && h[0] == heir
	})
	t.Logf("crash of %s -> %s holds %s after %s", victimName, heir, vips[0], took)
	tstest.EventuallyTrue(t, 5*time.Second, "survivors converge on every VIP", func() bool { return oneOwnerEach(survivors, vips, survivorNames) })

	for _, n := range survivors {
		var st MemberState
		for _, m := range n.Members() {
			if m.Name == victimName {
				st = m.State
				if len(m.VIPs) != 0 {
					t.Errorf("%s still shows %s holding %v", n.Name(), victimName, m.VIPs)
				}
			}
		}
		if st != StateDead {
			t.Errorf("%s sees %s as %v, want dead", n.Name(), victimName, st)
		}
	}
	var heirNode *Node
	for _, n := range survivors {
		if n.Name() == heir {
			heirNode = n
		}
	}
	s := heirNode.Stats()
	if s.Failovers == 0 || s.OwnershipChanges == 0 {
		t.Fatalf("heir stats %+v: no failover counted", s)
	}
	t.Logf("heir: %d failovers, detection->takeover last %s max %s", s.Failovers, s.LastFailover, s.MaxFailover)
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, e := range gained[heir] {
		if e.VIP == vips[0] && e.Previous == victimName {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Gained event for %s from %s on %s: %+v", vips[0], victimName, heir, gained[heir])
	}
}

func TestNodeGracefulLeaveHandsOver(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	var mu sync.Mutex
	lostAt := map[netip.Addr]time.Time{}
	gainedAt := map[netip.Addr]time.Time{}
	nodes := startCluster(t, names, nil, func(c *Config) {
		self := c.Name
		c.OnOwnership = func(e OwnershipEvent) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Change == Lost && self == "lb-c":
				lostAt[e.VIP] = time.Now()
			case e.Change == Gained && e.Previous == "lb-c":
				gainedAt[e.VIP] = time.Now()
			}
		}
	})
	vips := testVIPs(12)
	for _, n := range nodes {
		n.SetVIPs(vips)
	}
	tstest.EventuallyTrue(t, 10*time.Second, "one owner per VIP", func() bool { return oneOwnerEach(nodes, vips, names) })
	held := nodes[2].Held()
	if len(held) == 0 {
		t.Fatal("lb-c holds no VIPs to hand over")
	}
	if err := nodes[2].Close(time.Second); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "VIPs handed over after leave", func() bool { return oneOwnerEach(nodes[:2], vips, names[:2]) })
	mu.Lock()
	for _, v := range held {
		if lostAt[v].IsZero() || gainedAt[v].IsZero() || gainedAt[v].Before(lostAt[v]) {
			t.Errorf("%s: lb-c lost it at %v, successor gained it at %v: want lost strictly first", v, lostAt[v], gainedAt[v])
		}
	}
	mu.Unlock()
	tstest.EventuallyTrue(t, 5*time.Second, "lb-a sees lb-c as left", func() bool {
		for _, m := range nodes[0].Members() {
			if m.Name == names[2] {
				return m.State == StateLeft
			}
		}
		return false
	})
	if f := nodes[0].Stats().Failovers + nodes[1].Stats().Failovers; f != 0 {
		t.Fatalf("graceful leave counted %d failovers", f)
	}
}

func TestNodeEncryptionRefusesOutsiders(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nodes := startClusterOnSockets(t, []string{"lb-a", "lb-b"}, key, nil)
	vips := testVIPs(10)
	for _, n := range nodes {
		n.SetVIPs(vips)
	}
	if err := nodes[0].SetAllocations([]Allocation{{Service: "ns/web", ClusterIP: netip.MustParseAddr("198.19.0.10"), CreatedUnixMilli: 10}}); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "lb-b gets the allocations", func() bool { return len(nodes[1].Allocations()) == 1 })

	tests := []struct {
		name string
		key  []byte
	}{
		{"wrong key", bytes.Repeat([]byte{8}, 32)},
		{"no key", nil},
		{"short wrong key", bytes.Repeat([]byte{7}, 16)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "intruder", tc.key)
			cfg.TCPTimeout = 500 * time.Millisecond
			in := startNode(t, cfg)
			// The intruder proposes an earlier (winning) allocation and would rank for VIPs.
			if err := in.SetAllocations([]Allocation{{Service: "ns/web", ClusterIP: netip.MustParseAddr("198.19.0.99"), CreatedUnixMilli: 1}}); err != nil {
				t.Fatal(err)
			}
			in.SetVIPs(vips)
			if _, err := in.Join([]string{nodes[0].AddrPort().String()}); err == nil {
				t.Fatal("join with the wrong key succeeded")
			}
			tstest.Never(t, time.Second, 20*time.Millisecond, "the intruder got in or changed something", func() bool {
				if aliveCount(nodes[0]) != 2 || aliveCount(nodes[1]) != 2 || aliveCount(in) != 1 {
					return true
				}
				a := nodes[1].Allocations()["ns/web"]
				return a.ClusterIP != netip.MustParseAddr("198.19.0.10") || !oneOwnerEach(nodes, vips, []string{"lb-a", "lb-b"})
			})
			_ = in.Shutdown()
		})
	}
}

func TestNodeAllocationGossipConverges(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	var calls sync.Map
	nodes := startCluster(t, names, nil, func(c *Config) {
		self := c.Name
		c.OnAllocations = func() { calls.Store(self, true) }
	})
	ip := netip.MustParseAddr
	proposals := map[string][]Allocation{
		"lb-a": {{Service: "ns/web", ClusterIP: ip("198.19.0.10"), NodePorts: []uint16{30080}, CreatedUnixMilli: 300},
			{Service: "ns/a-only", ClusterIP: ip("198.19.0.30"), CreatedUnixMilli: 50}},
		"lb-b": {{Service: "ns/web", ClusterIP: ip("198.19.0.11"), NodePorts: []uint16{30081}, CreatedUnixMilli: 100}},
		"lb-c": {{Service: "ns/web", ClusterIP: ip("198.19.0.12"), NodePorts: []uint16{30082}, CreatedUnixMilli: 100},
			{Service: "ns/c-only", ClusterIP: ip("198.19.0.11"), ExternalIP: ip("198.19.1.1"), CreatedUnixMilli: 400}},
	}
	for _, n := range nodes {
		if err := n.SetAllocations(proposals[n.Name()]); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]Allocation{
		"ns/web":    {Service: "ns/web", ClusterIP: ip("198.19.0.11"), NodePorts: []uint16{30081}, CreatedUnixMilli: 100},
		"ns/a-only": {Service: "ns/a-only", ClusterIP: ip("198.19.0.30"), CreatedUnixMilli: 50},
		// Its ClusterIP is ns/web's winning value: cleared for re-allocation.
		"ns/c-only": {Service: "ns/c-only", ExternalIP: ip("198.19.1.1"), CreatedUnixMilli: 400},
	}
	for _, n := range nodes {
		tstest.EventuallyTrue(t, 10*time.Second, n.Name()+" converges on the resolved allocations", func() bool {
			return reflect.DeepEqual(n.Allocations(), want)
		})
		tstest.EventuallyTrue(t, 2*time.Second, n.Name()+" OnAllocations called", func() bool { _, ok := calls.Load(n.Name()); return ok })
	}
	// A node re-proposes the winner: nothing changes anywhere.
	if err := nodes[0].SetAllocations([]Allocation{want["ns/web"], want["ns/a-only"]}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		tstest.EventuallyTrue(t, 10*time.Second, n.Name()+" stays converged", func() bool { return reflect.DeepEqual(n.Allocations(), want) })
	}
	if err := nodes[0].SetAllocations([]Allocation{{Service: "x/y"}, {Service: "x/y"}}); err == nil {
		t.Fatal("duplicate service accepted")
	}
}

func TestNodeMessagesAndBadGossip(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, func(c *Config) { c.MessageQueueLen = 4 })
	a, b := nodes[0], nodes[1]
	got := make(chan string, 16)
	if err := b.Handle(MsgUserMin, func(p []byte) { got <- string(p) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Handle(MsgAllocations, func([]byte) {}); err == nil {
		t.Fatal("reserved type accepted")
	}
	if err := a.Broadcast(MsgUserMin, "", []byte("health:ok")); err != nil {
		t.Fatal(err)
	}
	if err := a.SendTo("lb-b", MsgUserMin, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	tstest.EventuallyTrue(t, 5*time.Second, "lb-b receives broadcast and direct message", func() bool {
		select {
		case s := <-got:
			seen[s] = true
		default:
		}
		return seen["health:ok"] && seen["direct"]
	})
	if err := a.SendTo("nobody", MsgUserMin, nil); err == nil {
		t.Fatal("send to unknown member succeeded")
	}

	if err := a.SetAllocations([]Allocation{{Service: "ns/web", ClusterIP: netip.MustParseAddr("198.19.0.10")}}); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "lb-b gets allocations", func() bool { return len(b.Allocations()) == 1 })
	before := b.Allocations()
	staleSet, _ := EncodeAllocationSet(AllocationSet{Origin: "lb-a", Generation: 1, Items: []Allocation{{Service: "ns/evil"}}})
	d := (*delegate)(b)
	bad := []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"wrong version", []byte{7, 16, 1}},
		{"type zero", []byte{WireVersion, 0, 1, 'x'}},
		{"truncated allocations", EncodeMessage(MsgAllocations, "lb-a", []byte{3, 'l', 'b'})},
		{"stale generation", EncodeMessage(MsgAllocations, "lb-a", staleSet)},
		{"unknown type", EncodeMessage(200, "lb-a", []byte("?"))},
	}
	for _, tc := range bad {
		d.NotifyMsg(tc.msg)
	}
	d.MergeRemoteState([]byte{1, 0xff, 0xff, 0, 0}, false)
	d.MergeRemoteState([]byte{9}, true)
	// A full handler queue drops and counts instead of blocking memberlist.
	block := make(chan struct{})
	if err := b.Handle(MsgUserMin+1, func([]byte) { <-block }); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		d.NotifyMsg(EncodeMessage(MsgUserMin+1, "lb-a", []byte{byte(i)}))
	}
	close(block)

	s := b.Stats()
	// StaleAllocations: at least the forged stale set; memberlist may also deliver a's own
	// broadcast again (retransmission), which counts as stale too.
	want := Stats{MalformedMessages: 4, StaleAllocations: 1, UnknownMessages: 1, MalformedState: 2}
	if s.MalformedMessages != want.MalformedMessages || s.StaleAllocations < want.StaleAllocations ||
		s.UnknownMessages != want.UnknownMessages || s.MalformedState != want.MalformedState {
		t.Fatalf("stats %+v, want counts like %+v", s, want)
	}
	if s.MessagesDropped < 20-4-1 {
		t.Fatalf("dropped %d of 20 messages to a blocked handler with queue 4, want at least 15", s.MessagesDropped)
	}
	if !reflect.DeepEqual(b.Allocations(), before) {
		t.Fatalf("bad gossip changed allocations: %+v", b.Allocations())
	}
	if aliveCount(b) != 2 {
		t.Fatal("bad gossip changed membership")
	}
}

func TestNodeBadMetaIsNotRanked(t *testing.T) {
	// Without quorum: with two nodes, excluding lb-a would leave lb-b a minority.
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, func(c *Config) { c.RequireQuorum = false })
	b := nodes[1]
	// Replay a member update carrying undecodable metadata through the event delegate.
	ev := (*eventDelegate)(b)
	var victim MemberInfo
	for _, m := range b.Members() {
		if m.Name == "lb-a" {
			victim = m
		}
	}
	vips := testVIPs(10)
	b.SetVIPs(vips)
	ev.NotifyUpdate(mlNode("lb-a", victim.Addr, []byte{1, 99}))
	tstest.EventuallyTrue(t, 2*time.Second, "lb-b holds every VIP once lb-a's metadata is invalid", func() bool { return len(b.Held()) == len(vips) })
	if b.Stats().MalformedMeta == 0 {
		t.Fatal("malformed meta not counted")
	}
	for _, m := range b.Members() {
		if m.Name == "lb-a" && m.MetaValid {
			t.Fatal("lb-a metadata still valid")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Name = "lb-a"
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"default with name", func(*Config) {}, false},
		{"no name", func(c *Config) { c.Name = "" }, true},
		{"bad key length", func(c *Config) { c.SecretKey = make([]byte, 20) }, true},
		{"16-byte key", func(c *Config) { c.SecretKey = make([]byte, 16) }, false},
		{"no bind", func(c *Config) { c.BindAddr = netip.AddrPort{} }, true},
		{"zero probe", func(c *Config) { c.ProbeInterval = 0 }, true},
		{"bad role", func(c *Config) { c.Meta.Role = 0 }, true},
		{"zero queue", func(c *Config) { c.MessageQueueLen = 0 }, true},
		{"zero queue bytes", func(c *Config) { c.MessageQueueBytes = 0 }, true},
		{"message over queue bytes", func(c *Config) { c.MaxMessageBytes = c.MessageQueueBytes + 1 }, true},
		{"message limit below header", func(c *Config) { c.MaxMessageBytes = msgHeaderBytes }, true},
		{"zero generation lead", func(c *Config) { c.MaxGenerationLead = 0 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

func mlNode(name string, addr netip.AddrPort, meta []byte) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: addr.Addr().AsSlice(), Port: addr.Port(), Meta: meta, State: memberlist.StateAlive}
}

var testLogLevel = slog.LevelWarn

func TestNodeBackendAgentNeverHoldsVIPs(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b", "agent-1"}, nil, func(c *Config) {
		if c.Name == "agent-1" {
			c.Meta.Role = RoleBackend
		}
	})
	vips := testVIPs(30)
	for _, n := range nodes {
		n.SetVIPs(vips)
	}
	tstest.EventuallyTrue(t, 10*time.Second, "appliances own every VIP, the agent none", func() bool {
		return oneOwnerEach(nodes, vips, []string{"lb-a", "lb-b"})
	})
	if h := nodes[2].Held(); len(h) != 0 {
		t.Fatalf("backend agent holds %v", h)
	}
	for _, m := range nodes[0].Members() {
		if m.Name == "agent-1" && (m.Meta.Role != RoleBackend || !m.MetaValid) {
			t.Fatalf("agent seen as %+v", m)
		}
		if m.Name == "lb-b" && (len(m.Meta.ExternalIPs) != 1 || len(m.VIPs) == 0) {
			t.Fatalf("lb-b seen as %+v", m)
		}
	}
}
