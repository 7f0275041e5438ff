package cluster

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// TestNodeGossipSizeBounds: a message over its kind's limit is dropped before it is copied or
// queued, and the dispatch queue is bounded in bytes as well as in count.
func TestNodeGossipSizeBounds(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, func(c *Config) {
		c.MessageQueueBytes = 64 << 10
		c.MaxMessageBytes = 16 << 10
	})
	b := nodes[1]
	d := (*delegate)(b)
	got := make(chan int, 64)
	if err := b.Handle(MsgUserMin, func(p []byte) { got <- len(p) }); err != nil {
		t.Fatal(err)
	}
	d.NotifyMsg(EncodeMessage(MsgUserMin, "lb-a", make([]byte, 16<<10)))                      // over MaxMessageBytes
	d.NotifyMsg(EncodeMessage(MsgAllocations, "lb-a", make([]byte, maxAllocationSetBytes+1))) // over the set limit
	d.MergeRemoteState(make([]byte, maxStateBytes+1), false)
	d.NotifyMsg(EncodeMessage(MsgUserMin, "lb-a", []byte("small")))
	tstest.EventuallyTrue(t, 5*time.Second, "the small message arrives", func() bool { return len(got) > 0 })
	if n := <-got; n != len("small") {
		t.Fatalf("handler got a %d-byte payload: an oversized message was queued", n)
	}
	if s := b.Stats(); s.OversizedMessages != 3 || s.MalformedMessages != 0 || s.MalformedState != 0 {
		t.Fatalf("stats %+v: want 3 oversized, nothing decoded", s)
	}

	// A blocked handler: the queue takes at most MessageQueueBytes of payload.
	block := make(chan struct{})
	if err := b.Handle(MsgUserMin+1, func([]byte) { <-block }); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMessageLimit(MsgUserMin+1, 1<<20); err == nil {
		t.Fatal("limit above MessageQueueBytes accepted")
	}
	for range 20 {
		d.NotifyMsg(EncodeMessage(MsgUserMin+1, "lb-a", make([]byte, 15<<10)))
	}
	if q := b.queuedBytes.Load(); q > 64<<10 {
		t.Fatalf("%d payload bytes queued, bound %d", q, 64<<10)
	}
	if b.Stats().MessagesDropped < 20-5 {
		t.Fatalf("dropped %d of 20 15 KiB messages with a 64 KiB queue", b.Stats().MessagesDropped)
	}
	close(block)
}

// TestNodeOriginKeyedStoresBounded: allocation sets from names that are not members are not
// stored, and the member view stops growing at maxMembers (a dead member makes room).
func TestNodeOriginKeyedStoresBounded(t *testing.T) {
	nodes := startCluster(t, []string{"lb-a", "lb-b"}, nil, nil)
	b := nodes[1]
	d := (*delegate)(b)
	for i := range 2000 {
		origin := fmt.Sprintf("ghost-%d", i)
		set, err := EncodeAllocationSet(AllocationSet{Origin: origin, Generation: 1,
			Items: []Allocation{{Service: "ns/x", CreatedUnixMilli: int64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		d.NotifyMsg(EncodeMessage(MsgAllocations, origin, set))
	}
	b.mu.Lock()
	held := len(b.allocations.Sets())
	b.mu.Unlock()
	if held != 0 || len(b.Allocations()) != 0 {
		t.Fatalf("%d sets from non-members stored, resolved %v", held, b.Allocations())
	}
	if b.Stats().ForeignGossip != 2000 {
		t.Fatalf("foreign sets counted %d, want 2000", b.Stats().ForeignGossip)
	}

	ev := (*eventDelegate)(b)
	addr := netip.MustParseAddrPort("198.18.0.99:7946")
	for i := range maxMembers + 100 {
		ev.NotifyJoin(mlNode(fmt.Sprintf("ghost-%d", i), addr, nil))
	}
	if n := len(b.Members()); n > maxMembers {
		t.Fatalf("member view holds %d names, bound %d", n, maxMembers)
	}
	if b.Stats().MembersRefused == 0 {
		t.Fatal("refused members not counted")
	}
	ev.NotifyLeave(mlNode("ghost-7", addr, nil))
	ev.NotifyJoin(mlNode("newcomer", addr, nil))
	seen := false
	for _, m := range b.Members() {
		seen = seen || m.Name == "newcomer"
	}
	if !seen || len(b.Members()) > maxMembers {
		t.Fatalf("a dead member did not make room (newcomer seen %v, %d members)", seen, len(b.Members()))
	}
}
