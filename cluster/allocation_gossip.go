package cluster

import (
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/memberlist"
)

// Allocation gossip: this node's AllocationSet goes out as a broadcast
// (MsgAllocations, keyed so a newer set replaces a queued older one) and in
// the push-pull state (delegate.LocalState); sets received either way merge
// into n.allocations, and the resolved view is recomputed under n.mu.

// allocationBroadcastKey is the broadcast queue key of this node's set.
const allocationBroadcastKey = "alloc"

// SetAllocations replaces the allocations this node proposes and gossips
// them. Items must have unique, non-empty Service keys.
func (n *Node) SetAllocations(items []Allocation) error {
	norm, ok := normaliseItems(items)
	if !ok {
		return fmt.Errorf("cluster set allocations: duplicate service")
	}
	n.mu.Lock()
	n.localGeneration++
	set := AllocationSet{Origin: n.cfg.Name, Generation: n.localGeneration, Items: norm}
	enc, err := EncodeAllocationSet(set)
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("cluster set allocations: %w", err)
	}
	n.allocations.Merge(set)
	changed := n.resolveLocked()
	n.mu.Unlock()
	n.queueBroadcast(EncodeMessage(MsgAllocations, n.cfg.Name, enc), allocationBroadcastKey)
	if changed {
		n.signal(n.allocationsChanged)
	}
	return nil
}

// Allocations returns the resolved allocations (see AllocationStore for the
// rule), keyed by Service.
func (n *Node) Allocations() map[string]Allocation {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]Allocation, len(n.resolved))
	for k, a := range n.resolved {
		a.NodePorts = append([]uint16(nil), a.NodePorts...)
		out[k] = a
	}
	return out
}

// mergeAllocationMessage merges the payload of a MsgAllocations message
// (untrusted) from sender; one that does not decode is counted.
func (n *Node) mergeAllocationMessage(sender string, payload []byte) {
	s, err := DecodeAllocationSet(payload)
	if err != nil {
		n.counters.malformedMessages.Add(1)
		return
	}
	n.mergeAllocationSet(sender, s)
}

// mergeAllocationSet merges a set received from sender (the name in the
// message envelope or push-pull state). It is refused and counted
// (Stats.ForeignGossip) unless its origin is the sender and the sender an
// alive appliance member, so the store holds sets of members only (bounded
// by maxMembers) and a member cannot speak for another. It is refused
// (Stats.FutureGenerations) when its generation is more than
// MaxGenerationLead ahead of this node's clock, and ignored (StaleAllocations)
// when no newer than the set held, unless the origin was seen to restart
// since that set (restartedLocked). A change of the resolved view wakes the
// event goroutine for OnAllocations.
func (n *Node) mergeAllocationSet(sender string, s AllocationSet) {
	if s.Origin == n.cfg.Name { // this node is the authority on its own set
		return
	}
	if s.Origin != sender {
		n.counters.foreignGossip.Add(1)
		return
	}
	if !generationInBounds(s.Generation, n.now(), n.cfg.MaxGenerationLead) {
		n.counters.futureGenerations.Add(1)
		return
	}
	n.mu.Lock()
	r := n.members[s.Origin]
	if r == nil || r.state != StateAlive || !r.metaValid || r.meta.Role != RoleAppliance {
		n.mu.Unlock()
		n.counters.foreignGossip.Add(1)
		return
	}
	if r.restarted {
		n.allocations.Forget(s.Origin) // a new incarnation: its generations start anew
		r.restarted = false
	}
	if !n.allocations.Merge(s) {
		n.mu.Unlock()
		n.counters.allocationSetsRejected.Add(1)
		return
	}
	changed := n.resolveLocked()
	n.mu.Unlock()
	if changed {
		n.signal(n.allocationsChanged)
	}
}

// generationInBounds reports whether gen is at most lead ahead of now read
// as nanoseconds since the Unix epoch. Generations start from the clock when
// a node starts and grow by one per change, so an honest node's stay behind
// its clock; the bound keeps a wild one (up to 2^64-1) from locking its
// origin's later sets out.
func generationInBounds(gen uint64, now time.Time, lead time.Duration) bool {
	return gen <= uint64(now.UnixNano())+uint64(lead)
}

// greetMembers sends this node's own allocation set to members that just
// became alive (Stats: none; a failed send is logged at debug level): since
// sets travel only from their origin, a late joiner would otherwise wait for
// each member's next change or push-pull with it. Runs on its own goroutine
// (counted in n.wg), started by the event goroutine.
func (n *Node) greetMembers(names []string) {
	defer n.wg.Done()
	n.mu.Lock()
	own, ok := n.allocations.Get(n.cfg.Name)
	var targets []memberlist.Node
	for _, name := range names {
		if r := n.members[name]; r != nil && r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance {
			targets = append(targets, memberlist.Node{Name: name, Addr: r.addr.Addr().AsSlice(), Port: r.addr.Port()})
		}
	}
	n.mu.Unlock()
	if !ok || len(targets) == 0 {
		return
	}
	enc, err := EncodeAllocationSet(own)
	if err != nil {
		return
	}
	msg := EncodeMessage(MsgAllocations, n.cfg.Name, enc)
	for i := range targets {
		if err := n.ml.SendReliable(&targets[i], msg); err != nil {
			n.log.Debug("send allocations to new member", "member", targets[i].Name, "err", err)
		}
	}
}

// resolveLocked recomputes the resolved allocations and reports whether they
// changed. n.mu held.
func (n *Node) resolveLocked() bool {
	r := n.allocations.Resolve()
	if maps.EqualFunc(r, n.resolved, allocationsEqual) {
		return false
	}
	n.resolved = r
	return true
}

func allocationsEqual(a, b Allocation) bool {
	if a.Service != b.Service || a.ClusterIP != b.ClusterIP || a.ExternalIP != b.ExternalIP ||
		a.CreatedUnixMilli != b.CreatedUnixMilli || len(a.NodePorts) != len(b.NodePorts) {
		return false
	}
	for i := range a.NodePorts {
		if a.NodePorts[i] != b.NodePorts[i] {
			return false
		}
	}
	return true
}
