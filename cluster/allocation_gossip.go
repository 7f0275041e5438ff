package cluster

import (
	"fmt"
	"maps"
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
	n.queueBroadcast(EncodeMessage(MsgAllocations, enc), allocationBroadcastKey)
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
// (untrusted); one that does not decode is counted.
func (n *Node) mergeAllocationMessage(payload []byte) {
	s, err := DecodeAllocationSet(payload)
	if err != nil {
		n.counters.malformedMessages.Add(1)
		return
	}
	n.mergeAllocationSet(s)
}

// mergeAllocationSet merges another origin's set; one no newer than the set
// held is counted and ignored, and so is one whose origin is not an alive
// member (the store holds sets of members only: bounded by maxMembers). A
// change of the resolved view wakes the event goroutine for OnAllocations.
func (n *Node) mergeAllocationSet(s AllocationSet) {
	if s.Origin == n.cfg.Name { // this node is the authority on its own set
		return
	}
	n.mu.Lock()
	if r := n.members[s.Origin]; r == nil || r.state != StateAlive {
		n.mu.Unlock()
		n.counters.foreignGossip.Add(1)
		return
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
