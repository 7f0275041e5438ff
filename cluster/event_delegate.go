package cluster

import (
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// eventDelegate implements memberlist.EventDelegate for Node. memberlist
// calls its methods with its member lock held, on whichever goroutine
// changed the member's state: the packet handler (alive, suspect and dead
// gossip), a stream connection's goroutine (push-pull merges), the probe
// goroutine or a suspicion timer (declaring a member dead), and the caller's
// goroutine of New, Join and Leave (this node's own entry). So the methods
// only record the event under n.mu and wake the event goroutine; they never
// block and never call back into memberlist. The *memberlist.Node must not
// be kept: memberlist rewrites it in place.
type eventDelegate Node

// NotifyJoin records a member that joined or came back from dead.
func (e *eventDelegate) NotifyJoin(m *memberlist.Node) { (*Node)(e).recordMember(m, StateAlive) }

// NotifyUpdate records a member's new metadata.
func (e *eventDelegate) NotifyUpdate(m *memberlist.Node) { (*Node)(e).recordMember(m, StateAlive) }

// NotifyLeave records a member declared dead or gone.
func (e *eventDelegate) NotifyLeave(m *memberlist.Node) { (*Node)(e).recordMember(m, StateDead) }

// recordMember records a memberlist event in the member's record and wakes
// the event goroutine to reconcile.
func (n *Node) recordMember(node *memberlist.Node, state MemberState) {
	now := n.now()
	addr, _ := netip.AddrFromSlice(node.Addr)
	meta, err := DecodeMeta(node.Meta)
	if err != nil {
		n.counters.malformedMeta.Add(1)
		n.log.Debug("member metadata", "member", node.Name, "err", err)
	}
	n.mu.Lock()
	r := n.members[node.Name]
	if r == nil {
		if len(n.members) >= maxMembers && !n.evictOneGoneMemberLocked() {
			n.mu.Unlock()
			n.counters.membersRefused.Add(1)
			return
		}
		r = &memberRecord{}
		n.members[node.Name] = r
	}
	// memberlist's Node.State is not maintained for delegates, so a graceful
	// leave is recognised by the Leaving flag the node announced first.
	if state == StateDead && r.metaValid && r.meta.Leaving {
		state = StateLeft
	}
	if r.state != state {
		r.since = now
		n.membersChanged = true
		if state == StateAlive && node.Name != n.cfg.Name {
			r.probed = netip.AddrPort{} // a new incarnation proves its address anew
			r.restarted = r.state != 0  // back from dead or left: a new incarnation
			n.greet[node.Name] = true
		}
	}
	if state == StateDead && r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance && !r.meta.Leaving {
		n.deathDetectedAt[node.Name] = now
	}
	if state == StateAlive {
		delete(n.deathDetectedAt, node.Name)
	}
	r.state = state
	r.addr = netip.AddrPortFrom(addr.Unmap(), node.Port)
	if state == StateAlive {
		r.meta, r.metaValid = meta, err == nil
		if len(node.Meta) <= MetaMaxBytes && r.metaRaw != string(node.Meta) {
			r.metaRaw = string(node.Meta)
			n.membersChanged = true
		}
	}
	n.mu.Unlock()
	n.signal(n.reconcileKick)
}

// maxMembers bounds the local view (member records, and with them every map
// keyed by a member name: allocation sets, death times). memberlist itself
// admits any number of names; past this bound a new name is recorded only in
// place of a dead or departed member, else refused (Stats.MembersRefused).
const maxMembers = 4096

// evictOneGoneMemberLocked forgets the member that has been dead or gone the
// longest, with everything keyed by its name, and reports whether there was
// one. n.mu held.
func (n *Node) evictOneGoneMemberLocked() bool {
	oldest := ""
	var since time.Time
	for name, r := range n.members {
		if r.state != StateAlive && (oldest == "" || r.since.Before(since)) {
			oldest, since = name, r.since
		}
	}
	if oldest == "" {
		return false
	}
	n.forgetMemberLocked(oldest)
	return true
}

// forgetMemberLocked drops name's member record, death time, pending
// greeting and allocation set. n.mu held.
func (n *Node) forgetMemberLocked(name string) {
	delete(n.members, name)
	delete(n.deathDetectedAt, name)
	delete(n.greet, name)
	if n.allocations.Forget(name) && n.resolveLocked() {
		n.signal(n.allocationsChanged)
	}
}
