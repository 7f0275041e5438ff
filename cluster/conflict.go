package cluster

import (
	"net/netip"
	"time"
)

// ConflictYield is how long a node that stepped down from a VIP because a
// live member ranked above it answers for it stays off the VIP. Then, if its own
// view still says it holds the VIP, it takes it again (announcing it, which
// shows the other node the conflict in turn if both still claim it).
var ConflictYield = 5 * time.Second

// yield is a VIP given up after a conflict.
type yield struct {
	other string
	until time.Time
}

// ConflictResult says what Conflict decided.
type ConflictResult struct {
	// Other is the member the MAC belongs to; "" when no member announced it.
	Other string
	// OtherAlive: Other is an appliance member this node sees alive.
	OtherAlive bool
	// StepDown: this node gave the VIP up for ConflictYield (a Lost event follows).
	StepDown bool
	// Held: this node held the VIP when the conflict was reported (otherwise
	// there is nothing to resolve).
	Held bool
}

// Conflict resolves "another MAC answers ARP for a VIP I hold"
// (ARCHITECTURE.md, failover) by the ownership rule, which ranks the live
// members: the MAC is looked up in the members' metadata (Meta.MACs) and, when it belongs to a
// member this node sees alive and that ranks above it for vip
// (ShouldStepDown; the views disagree for a moment, e.g. the member's return
// is not processed yet), this node gives the VIP up at once (Holds turns false
// and a Lost event reaches OnOwnership) for ConflictYield. The other node,
// seeing this node's announcements, keeps the VIP by the same rule.
//
// A member this node sees dead does not count, whatever its rank: that is the
// partition case, where the node that took the VIP over (with quorum) must
// keep it while the cut-off old owner, which still answers on links it can
// reach, notices it lost quorum and lets go (within its failure-detection
// time). A MAC of no known member never makes this node step down either (a
// stranger cannot take VIPs away). In both cases the caller should announce
// the VIP again and count the conflict.
func (n *Node) Conflict(vip netip.Addr, mac [6]byte) ConflictResult {
	now := n.now()
	n.mu.Lock()
	var res ConflictResult
	for name, r := range n.members {
		if name == n.cfg.Name || !r.metaValid {
			continue
		}
		for _, m := range r.meta.MACs {
			if m == mac {
				res.Other = name
				res.OtherAlive = r.state == StateAlive && r.meta.Role == RoleAppliance && !r.meta.Leaving
			}
		}
	}
	res.Held = n.cfg.Meta.Role == RoleAppliance && n.owner.Holds(vip) && !n.yieldingLocked(vip)
	if !res.Held || !res.OtherAlive || !ShouldStepDown(vip, n.cfg.Name, res.Other) {
		n.mu.Unlock()
		return res
	}
	res.StepDown = true
	n.yields[vip] = yield{other: res.Other, until: now.Add(ConflictYield)}
	_, standby := n.owner.Owner(vip)
	n.mu.Unlock()
	n.queueConflictEvent(OwnershipEvent{VIP: vip, Owner: res.Other, Standby: standby, Previous: n.cfg.Name, Change: Lost})
	time.AfterFunc(ConflictYield, func() { n.endYield(vip) })
	return res
}

// endYield ends a conflict's yield once it has expired and, if this node's
// view still gives it the VIP, reports it Gained again.
func (n *Node) endYield(vip netip.Addr) {
	n.mu.Lock()
	y, ok := n.yields[vip]
	if !ok || n.now().Before(y.until) {
		n.mu.Unlock()
		return
	}
	delete(n.yields, vip)
	held := n.cfg.Meta.Role == RoleAppliance && n.owner.Holds(vip) && !n.leaving
	_, standby := n.owner.Owner(vip)
	n.mu.Unlock()
	if held {
		n.queueConflictEvent(OwnershipEvent{VIP: vip, Owner: n.cfg.Name, Standby: standby, Previous: y.other, Change: Gained})
	}
}

// yieldingLocked reports whether vip is given up after a conflict. n.mu held.
func (n *Node) yieldingLocked(vip netip.Addr) bool {
	_, ok := n.yields[vip]
	return ok
}

func (n *Node) queueConflictEvent(e OwnershipEvent) {
	select {
	case n.conflictEvents <- e:
	case <-n.done:
	}
}
