package cluster

import (
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// allocationMsg is a MsgAllocations message carrying set, sent (as the envelope claims) by sender.
func allocationMsg(t *testing.T, sender string, set AllocationSet) []byte {
	t.Helper()
	b, err := EncodeAllocationSet(set)
	if err != nil {
		t.Fatal(err)
	}
	return EncodeMessage(MsgAllocations, sender, b)
}

// TestNodeAllocationsOnlyFromTheirOrigin: a member cannot speak for another (by message or by
// push-pull), a backend agent cannot propose, and a generation far in the future neither
// lands nor locks the origin's real sets out.
func TestNodeAllocationsOnlyFromTheirOrigin(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b", "agent-1"}, nil, func(c *Config) {
		if c.Name == "agent-1" {
			c.Meta.Role = RoleBackend
		}
	})
	a, b := nodes[0], nodes[1]
	d := (*delegate)(b)
	ip := netip.MustParseAddr
	forged := AllocationSet{Origin: "lb-a", Generation: uint64(time.Now().UnixNano()),
		Items: []Allocation{{Service: "ns/evil", ClusterIP: ip("198.19.9.9")}}}

	d.NotifyMsg(allocationMsg(t, "agent-1", forged)) // another member speaking for lb-a
	st, err := encodeState("agent-1", &forged)
	if err != nil {
		t.Fatal(err)
	}
	d.MergeRemoteState(st, false) // the same through push-pull
	own := AllocationSet{Origin: "agent-1", Generation: forged.Generation, Items: forged.Items}
	d.NotifyMsg(allocationMsg(t, "agent-1", own)) // an agent proposing for itself
	wild := forged
	wild.Generation = math.MaxUint64
	d.NotifyMsg(allocationMsg(t, "lb-a", wild)) // lb-a itself, with a generation that would lock it in
	if got := b.Allocations(); len(got) != 0 {
		t.Fatalf("forged sets resolved: %+v", got)
	}
	if s := b.Stats(); s.ForeignGossip != 3 || s.FutureGenerations != 1 {
		t.Fatalf("stats %+v: want 3 foreign sets and 1 future generation", s)
	}

	// lb-a's real sets still land.
	want := Allocation{Service: "ns/web", ClusterIP: ip("198.19.0.10"), CreatedUnixMilli: 1}
	if err := a.SetAllocations([]Allocation{want}); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "lb-b takes lb-a's real set", func() bool {
		return reflect.DeepEqual(b.Allocations(), map[string]Allocation{"ns/web": want})
	})
}

// TestNodeRestartedOriginAccepted: a member seen to die and come back starts a new
// incarnation, whose generation may be lower than the last one held.
func TestNodeRestartedOriginAccepted(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, func(c *Config) { c.RequireQuorum = false })
	b := nodes[1]
	d, ev := (*delegate)(b), (*eventDelegate)(b)
	var lbA MemberInfo
	for _, m := range b.Members() {
		if m.Name == "lb-a" {
			lbA = m
		}
	}
	meta, err := EncodeMeta(lbA.Meta)
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().UnixNano())
	first := AllocationSet{Origin: "lb-a", Generation: now, Items: []Allocation{{Service: "ns/old"}}}
	d.NotifyMsg(allocationMsg(t, "lb-a", first))
	if _, ok := b.Allocations()["ns/old"]; !ok {
		t.Fatal("lb-a's set not taken")
	}
	lower := AllocationSet{Origin: "lb-a", Generation: now - uint64(time.Hour), Items: []Allocation{{Service: "ns/new"}}}
	d.NotifyMsg(allocationMsg(t, "lb-a", lower))
	if _, ok := b.Allocations()["ns/new"]; ok {
		t.Fatal("a lower generation replaced the set without a restart")
	}
	ev.NotifyLeave(mlNode("lb-a", lbA.Addr, meta))
	ev.NotifyJoin(mlNode("lb-a", lbA.Addr, meta))
	d.NotifyMsg(allocationMsg(t, "lb-a", lower))
	if got := b.Allocations(); len(got) != 1 || got["ns/new"].Service != "ns/new" {
		t.Fatalf("restarted lb-a's set (lower generation) not taken: %+v", got)
	}
}

// TestNodeTypedMessagesCarrySender: HandleFrom gets the sender's name; a message whose
// envelope names no alive member is dropped and counted.
func TestNodeTypedMessagesCarrySender(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, nil)
	a, b := nodes[0], nodes[1]
	type got struct{ from, payload string }
	ch := make(chan got, 8)
	if err := b.HandleFrom(MsgUserMin, func(from string, p []byte) { ch <- got{from, string(p)} }); err != nil {
		t.Fatal(err)
	}
	if err := b.HandleFrom(MsgAllocations, func(string, []byte) {}); err == nil {
		t.Fatal("reserved type accepted")
	}
	(*delegate)(b).NotifyMsg(EncodeMessage(MsgUserMin, "ghost", []byte("forged")))
	if err := a.SendTo("lb-b", MsgUserMin, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-ch:
		if g != (got{"lb-a", "direct"}) {
			t.Fatalf("handler got %+v", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	if b.Stats().ForeignGossip != 1 {
		t.Fatalf("foreign messages %d, want 1", b.Stats().ForeignGossip)
	}
	if !b.IsLiveAppliance("lb-a") || !b.IsLiveAppliance("lb-b") || b.IsLiveAppliance("ghost") {
		t.Fatal("IsLiveAppliance wrong")
	}
}

// TestNodeLateJoinerGetsEverySet: sets travel only from their origin, so a member that joins
// after they were gossiped gets each from its origin at once (not after a push-pull with it).
func TestNodeLateJoinerGetsEverySet(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	network := newMockNetwork(t, names...)
	slowPushPull := func(c *Config) { c.PushPullInterval = time.Hour }
	nodes := startClusterOn(t, network, names[:2], nil, slowPushPull)
	want := map[string]Allocation{}
	for i, n := range nodes {
		a := Allocation{Service: "ns/" + n.Name(), ClusterIP: netip.AddrFrom4([4]byte{198, 19, 0, byte(10 + i)}), CreatedUnixMilli: int64(i)}
		want[a.Service] = a
		if err := n.SetAllocations([]Allocation{a}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		tstest.EventuallyTrue(t, 5*time.Second, n.Name()+" has both sets", func() bool { return reflect.DeepEqual(n.Allocations(), want) })
		tstest.EventuallyTrue(t, 5*time.Second, n.Name()+" is done broadcasting", func() bool { return n.queue.NumQueued() == 0 })
	}
	cfg := network.config(t, "lb-c", nil)
	slowPushPull(&cfg)
	cfg.Join = []string{nodes[0].AddrPort().String()}
	c := startNode(t, cfg)
	tstest.EventuallyTrue(t, 5*time.Second, "lb-c has every set", func() bool { return reflect.DeepEqual(c.Allocations(), want) })
}
