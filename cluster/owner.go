package cluster

import (
	"net/netip"
	"slices"
	"sort"
	"time"
)

// ChangeKind says how an OwnershipEvent concerns the local node.
type ChangeKind uint8

const (
	// Gained: the local node now holds the VIP and must announce it.
	Gained ChangeKind = iota + 1
	// Lost: the local node no longer holds the VIP and must stop answering at once.
	Lost
	// Moved: the owner or standby changed between other nodes (or the VIP
	// has no owner in this node's view); nothing to do locally but update views.
	Moved
)

func (k ChangeKind) String() string {
	switch k {
	case Gained:
		return "gained"
	case Lost:
		return "lost"
	case Moved:
		return "moved"
	}
	return "unknown"
}

// OwnershipEvent is one change of a VIP's owner or standby in the local view.
type OwnershipEvent struct {
	VIP      netip.Addr // the VIP concerned
	Owner    string     // node that holds it now; "" when none may (no quorum, no members)
	Standby  string     // node that takes over if Owner dies; "" when none
	Previous string     // owner before this change; "" when none
	Change   ChangeKind // Gained/Lost for the local node, Moved otherwise
}

// OwnerConfig configures a VIPOwner.
type OwnerConfig struct {
	// Self is the local node's name.
	Self string
	// RequireQuorum: claim VIPs only while seeing a strict majority of the last
	// known membership (the alive members plus those lost less than
	// ForgetDeadAfter ago).
	RequireQuorum bool
	// ForgetDeadAfter is how long a member that died (not left gracefully)
	// still counts in the last known membership. 0 means forever.
	ForgetDeadAfter time.Duration
	// ExpectedMembers is a floor under the last known membership for the
	// quorum: a node that has seen nobody else (started with the wrong key,
	// or cut off from the start) counts against this many, not against
	// itself alone, and so claims nothing. 0 or 1: no floor.
	ExpectedMembers int
}

// VIPOwner is the pure ownership state machine: fed the set of VIPs and the
// alive appliance members, it computes owner and standby of every VIP by
// Rank and returns the changes. It does no I/O and reads no clock; it is not
// safe for concurrent use (Node serialises calls on its event loop).
type VIPOwner struct {
	cfg          OwnerConfig
	excluded     map[string]bool // alive but not placed (Meta.Syncing)
	vips         []netip.Addr
	known        map[string]time.Time // member -> last time seen alive
	alive        []string
	now          time.Time
	quorum       bool
	view         map[netip.Addr]ownerView
	ownerChanges uint64
}

type ownerView struct{ owner, standby string }

// NewVIPOwner returns a state machine that so far sees only itself.
func NewVIPOwner(cfg OwnerConfig) *VIPOwner {
	return &VIPOwner{
		cfg:   cfg,
		known: map[string]time.Time{},
		view:  map[netip.Addr]ownerView{},
	}
}

// SetVIPs replaces the set of VIPs to place and returns the resulting changes.
// VIPs removed from the set produce a Lost event if held, Moved otherwise.
func (o *VIPOwner) SetVIPs(vips []netip.Addr) []OwnershipEvent {
	vs := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		if v.IsValid() {
			vs = append(vs, v.Unmap())
		}
	}
	slices.SortFunc(vs, netip.Addr.Compare)
	o.vips = slices.Compact(vs)
	return o.recompute()
}

// Update feeds the members seen alive now (the local node is always counted
// alive) and those that left gracefully (forgotten at once: a graceful leave
// does not count against the quorum). Members neither alive nor left are
// dead: they stay in the known membership until ForgetDeadAfter has passed
// since they were last seen alive.
func (o *VIPOwner) Update(now time.Time, alive, left []string) []OwnershipEvent {
	o.now = now
	for _, n := range left {
		if n != o.cfg.Self {
			delete(o.known, n)
		}
	}
	set := map[string]bool{o.cfg.Self: true}
	for _, n := range alive {
		if n != "" {
			set[n] = true
		}
	}
	o.alive = o.alive[:0]
	for n := range set {
		o.alive = append(o.alive, n)
		o.known[n] = now
	}
	sort.Strings(o.alive)
	if o.cfg.ForgetDeadAfter > 0 {
		for n, seen := range o.known {
			if !set[n] && now.Sub(seen) >= o.cfg.ForgetDeadAfter {
				delete(o.known, n)
			}
		}
	}
	return o.recompute()
}

// SetExcluded names alive members that count toward the quorum but get no VIP (members still
// taking in the cluster's state, Meta.Syncing); it takes effect at the next Update or SetVIPs.
func (o *VIPOwner) SetExcluded(names []string) {
	o.excluded = map[string]bool{}
	for _, n := range names {
		o.excluded[n] = true
	}
}

func (o *VIPOwner) recompute() []OwnershipEvent {
	o.quorum = !o.cfg.RequireQuorum || 2*len(o.alive) > max(len(o.known), o.cfg.ExpectedMembers)
	if len(o.alive) == 0 { // before the first Update: only self
		o.alive = append(o.alive, o.cfg.Self)
	}
	var events []OwnershipEvent
	next := make(map[netip.Addr]ownerView, len(o.vips))
	placeable := o.placeable()
	for _, vip := range o.vips {
		var v ownerView
		r := Rank(vip, placeable)
		if o.quorum && len(r) > 0 {
			v.owner = r[0]
			if len(r) > 1 {
				v.standby = r[1]
			}
		}
		next[vip] = v
		prev := o.view[vip]
		if prev == v {
			continue
		}
		events = append(events, o.event(vip, prev, v))
	}
	for vip, prev := range o.view {
		if _, ok := next[vip]; !ok && prev != (ownerView{}) {
			events = append(events, o.event(vip, prev, ownerView{}))
		}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].VIP.Less(events[j].VIP) })
	o.view = next
	return events
}

// placeable is the alive members that may hold VIPs (alive minus excluded).
func (o *VIPOwner) placeable() []string {
	if len(o.excluded) == 0 {
		return o.alive
	}
	out := make([]string, 0, len(o.alive))
	for _, n := range o.alive {
		if !o.excluded[n] {
			out = append(out, n)
		}
	}
	return out
}

func (o *VIPOwner) event(vip netip.Addr, prev, v ownerView) OwnershipEvent {
	e := OwnershipEvent{VIP: vip, Owner: v.owner, Standby: v.standby, Previous: prev.owner, Change: Moved}
	switch {
	case v.owner == o.cfg.Self && prev.owner != o.cfg.Self:
		e.Change = Gained
	case prev.owner == o.cfg.Self && v.owner != o.cfg.Self:
		e.Change = Lost
	}
	if prev.owner != v.owner {
		o.ownerChanges++
	}
	return e
}

// Holds reports whether the local node holds vip.
func (o *VIPOwner) Holds(vip netip.Addr) bool {
	return o.view[vip.Unmap()].owner == o.cfg.Self
}

// Owner returns owner and standby of vip in the local view ("" if none).
func (o *VIPOwner) Owner(vip netip.Addr) (owner, standby string) {
	v := o.view[vip.Unmap()]
	return v.owner, v.standby
}

// Held returns the VIPs the local node holds, sorted.
func (o *VIPOwner) Held() []netip.Addr {
	return o.HeldBy(o.cfg.Self)
}

// HeldBy returns the VIPs node holds in the local view, sorted.
func (o *VIPOwner) HeldBy(node string) []netip.Addr {
	var out []netip.Addr
	for _, vip := range o.vips {
		if o.view[vip].owner == node {
			out = append(out, vip)
		}
	}
	return out
}

// HasQuorum reports whether the local node may claim VIPs now.
func (o *VIPOwner) HasQuorum() bool { return o.quorum }

// Known returns the last known membership (alive and not yet forgotten), sorted.
func (o *VIPOwner) Known() []string {
	out := make([]string, 0, len(o.known))
	for n := range o.known {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// OwnerChanges counts changes of a VIP's owner since creation.
func (o *VIPOwner) OwnerChanges() uint64 { return o.ownerChanges }
