package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// The event goroutine: the one goroutine that drives the ownership state
// machine (VIPOwner) and runs Config's callbacks, so that callbacks come one
// at a time and in order.

// eventLoop is the node's event goroutine: it reconciles ownership when woken
// (reconcileKick) and once a second, gives up every VIP on Leave's request,
// and runs OnOwnership, OnAllocations, OnFailover and OnMembers.
func (n *Node) eventLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.reconcileKick:
			n.reconcile()
			n.notifyMembers()
			n.startGreeting()
		case <-tick.C:
			n.reconcile()
			n.notifyMembers()
		case ack := <-n.leaveRequests:
			n.mu.Lock()
			n.leaving = true
			n.mu.Unlock()
			n.reconcile()
			close(ack)
		case <-n.allocationsChanged:
			if n.cfg.OnAllocations != nil {
				n.cfg.OnAllocations()
			}
		case e := <-n.conflictEvents:
			n.log.Info("vip ownership", "vip", e.VIP, "change", e.Change.String(), "owner", e.Owner, "previous", e.Previous, "cause", "conflict")
			if n.cfg.OnOwnership != nil {
				n.cfg.OnOwnership(e)
			}
		}
	}
}

// startGreeting sends this node's allocation set to the members that became
// alive since the last call, on a goroutine of its own (greetMembers), so a
// slow member never holds up the event goroutine. Event goroutine only.
func (n *Node) startGreeting() {
	n.mu.Lock()
	if len(n.greet) == 0 {
		n.mu.Unlock()
		return
	}
	names := make([]string, 0, len(n.greet))
	for name := range n.greet {
		names = append(names, name)
	}
	clear(n.greet)
	n.mu.Unlock()
	n.wg.Add(1)
	go n.greetMembers(names)
}

// notifyMembers runs Config.OnMembers once if the member set changed since
// the last call; event goroutine only.
func (n *Node) notifyMembers() {
	n.mu.Lock()
	changed := n.membersChanged
	n.membersChanged = false
	n.mu.Unlock()
	if changed && n.cfg.OnMembers != nil {
		n.cfg.OnMembers()
	}
}

// measuredFailover is one VIP taken over from a member whose death this node
// detected, and how long after the detection.
type measuredFailover struct {
	vip      netip.Addr
	from     string
	duration time.Duration
}

// reconcile brings the ownership state machine up to date with the VIPs to
// place and the member records, then reports what changed. Event goroutine
// only. Its steps run under n.mu; the callbacks run after it is released.
func (n *Node) reconcile() {
	now := n.now()
	n.mu.Lock()
	events := n.placeNewVIPsLocked()
	alive, left := n.classifyMembersLocked()
	n.forgetLongDeadMembersLocked(now)
	n.owner.SetExcluded(n.syncingMembersLocked(alive))
	events = append(events, n.updateOwnershipLocked(now, alive, left)...)
	events = n.endYieldsToAbsentMembersLocked(events, alive)
	failovers := n.measureFailoversLocked(now, events)
	n.mu.Unlock()
	n.reportFailovers(failovers)
	n.reportOwnership(events)
}

// placeNewVIPsLocked hands the VIPs SetVIPs set to the state machine, unless
// the node is leaving. n.mu held.
func (n *Node) placeNewVIPsLocked() []OwnershipEvent {
	if !n.vipsChanged || n.leaving {
		return nil
	}
	n.vipsChanged = false
	return n.owner.SetVIPs(n.vips)
}

// classifyMembersLocked returns the appliances that may hold VIPs (alive,
// valid metadata, not leaving) and the members that left or announced they
// are leaving. n.mu held.
func (n *Node) classifyMembersLocked() (alive, left []string) {
	for name, r := range n.members {
		switch {
		case r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance && !r.meta.Leaving:
			alive = append(alive, name)
		case r.state == StateLeft || (r.metaValid && r.meta.Leaving):
			left = append(left, name)
		}
	}
	return alive, left
}

// forgetLongDeadMembersLocked drops the members dead or left for at least
// ForgetDeadAfter, with their allocation sets. n.mu held.
func (n *Node) forgetLongDeadMembersLocked(now time.Time) {
	if n.cfg.ForgetDeadAfter <= 0 {
		return
	}
	for name, r := range n.members {
		if r.state == StateAlive || now.Sub(r.since) < n.cfg.ForgetDeadAfter {
			continue
		}
		n.forgetMemberLocked(name)
	}
}

// syncingMembersLocked returns the members still taking in the cluster's
// state (Meta.Syncing, this node's own flag included): they count toward the
// quorum but hold nothing yet. n.mu held.
func (n *Node) syncingMembersLocked(alive []string) []string {
	var syncing []string
	for _, name := range alive {
		if r := n.members[name]; r != nil && r.meta.Syncing {
			syncing = append(syncing, name)
		}
	}
	if n.cfg.Meta.Syncing {
		syncing = append(syncing, n.cfg.Name)
	}
	return syncing
}

// updateOwnershipLocked re-ranks the VIPs among the alive appliances; a
// leaving node gives up everything it holds and a backend agent ranks
// nothing. n.mu held.
func (n *Node) updateOwnershipLocked(now time.Time, alive, left []string) []OwnershipEvent {
	switch {
	case n.leaving && len(n.owner.Held()) > 0:
		return n.owner.SetVIPs(nil)
	case !n.leaving && n.cfg.Meta.Role == RoleAppliance:
		return n.owner.Update(now, alive, left)
	}
	return nil
}

// endYieldsToAbsentMembersLocked ends a conflict's yield as soon as the
// member it yielded to is no longer alive, or this node's view hands it the
// VIP anew (the member died, the views changed): otherwise a node that
// stepped aside for a returning member would keep off the VIP for the rest of
// ConflictYield after that member died again. It returns events with a
// Gained event added for each VIP held all along but hidden by the yield.
// n.mu held.
func (n *Node) endYieldsToAbsentMembersLocked(events []OwnershipEvent, alive []string) []OwnershipEvent {
	if len(n.yields) == 0 {
		return events
	}
	aliveSet := make(map[string]bool, len(alive))
	for _, name := range alive {
		aliveSet[name] = true
	}
	gained := map[netip.Addr]bool{}
	for _, e := range events {
		if e.Change == Gained {
			gained[e.VIP] = true
			delete(n.yields, e.VIP)
		}
	}
	for vip, y := range n.yields {
		if aliveSet[y.other] {
			continue
		}
		delete(n.yields, vip)
		if n.owner.Holds(vip) && !gained[vip] {
			_, standby := n.owner.Owner(vip)
			events = append(events, OwnershipEvent{VIP: vip, Owner: n.cfg.Name, Standby: standby, Previous: y.other, Change: Gained})
		}
	}
	return events
}

// measureFailoversLocked counts each VIP gained from a member whose death
// this node detected, with the time since the detection. A batch from SetVIPs
// then Update may mention a VIP twice; both are real transitions. n.mu held.
func (n *Node) measureFailoversLocked(now time.Time, events []OwnershipEvent) []measuredFailover {
	var failovers []measuredFailover
	for _, e := range events {
		if e.Change != Gained || e.Previous == "" {
			continue
		}
		at, ok := n.deathDetectedAt[e.Previous]
		if !ok {
			continue
		}
		d := now.Sub(at)
		n.counters.failovers.Add(1)
		n.counters.lastFailoverNanos.Store(int64(d))
		if int64(d) > n.counters.maxFailoverNanos.Load() {
			n.counters.maxFailoverNanos.Store(int64(d))
		}
		failovers = append(failovers, measuredFailover{vip: e.VIP, from: e.Previous, duration: d})
	}
	return failovers
}

// reportFailovers calls OnFailover for each measured failover. Event
// goroutine, n.mu not held.
func (n *Node) reportFailovers(failovers []measuredFailover) {
	if n.cfg.OnFailover == nil {
		return
	}
	for _, f := range failovers {
		n.cfg.OnFailover(f.vip, f.from, f.duration)
	}
}

// reportOwnership logs each ownership change (someone else's moves at debug
// level) and calls OnOwnership. Event goroutine, n.mu not held.
func (n *Node) reportOwnership(events []OwnershipEvent) {
	for _, e := range events {
		level := slog.LevelDebug
		if e.Change != Moved {
			level = slog.LevelInfo
		}
		n.log.Log(context.Background(), level, "vip ownership", "vip", e.VIP, "change", e.Change.String(), "owner", e.Owner, "standby", e.Standby, "previous", e.Previous)
		if n.cfg.OnOwnership != nil {
			n.cfg.OnOwnership(e)
		}
	}
}
