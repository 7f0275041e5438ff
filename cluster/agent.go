package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Backend agents are members with RoleBackend: they announce their endpoints
// in Meta.Endpoints and change them at runtime with SetMeta (readiness,
// draining). They are never ranked for VIPs and never count toward quorum:
// the ownership state machine sees only appliance members (reconcile).

// SetMeta replaces this node's metadata at runtime and gossips it
// (memberlist UpdateNode, waiting up to timeout for the broadcast to go out).
// The role cannot change, and after Leave the metadata is frozen.
func (n *Node) SetMeta(m Meta, timeout time.Duration) error {
	enc, err := EncodeMeta(m)
	if err != nil {
		return fmt.Errorf("cluster set meta %s: %w", n.cfg.Name, err)
	}
	n.mu.Lock()
	switch {
	case m.Role != n.cfg.Meta.Role:
		n.mu.Unlock()
		return fmt.Errorf("cluster set meta %s: role %v cannot change to %v", n.cfg.Name, n.cfg.Meta.Role, m.Role)
	case n.leaving || n.cfg.Meta.Leaving:
		n.mu.Unlock()
		return fmt.Errorf("cluster set meta %s: node is leaving", n.cfg.Name)
	}
	m.Endpoints = slices.Clone(m.Endpoints)
	n.cfg.Meta = m
	n.meta = enc
	n.mu.Unlock()
	n.signal(n.reconcileKick) // this node's own flags (Syncing) enter its ownership view at once
	if err := n.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("cluster set meta %s: announce: %w", n.cfg.Name, err)
	}
	return nil
}

// Meta returns this node's current metadata.
func (n *Node) Meta() Meta {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.cfg.Meta
	m.Endpoints = slices.Clone(m.Endpoints)
	return m
}

// pingDelegate implements memberlist.PingDelegate for Node: a completed
// direct probe proves that the member answers at its memberlist address (the
// probe went there, and its ack echoes the probe's sequence number), which a
// member cannot get by claiming an address in its alive message. memberlist
// calls it on its probe goroutine, without its own locks held.
type pingDelegate Node

// AckPayload sends nothing with acks.
func (p *pingDelegate) AckPayload() []byte { return nil }

// NotifyPingComplete records that other, a backend agent, answered a direct
// probe at its current address.
func (p *pingDelegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	n := (*Node)(p)
	a, _ := netip.AddrFromSlice(other.Addr)
	addr := netip.AddrPortFrom(a.Unmap(), other.Port)
	n.mu.Lock()
	r := n.members[other.Name]
	changed := r != nil && r.addr == addr && r.probed != addr && r.metaValid && r.meta.Role == RoleBackend
	if changed { // Backends lists it from now on
		r.probed = addr
		n.membersChanged = true
	}
	n.mu.Unlock()
	if changed {
		n.signal(n.reconcileKick)
	}
}

// BackendMember is an alive backend agent with valid metadata, as the local
// node sees it.
type BackendMember struct {
	Name      string          // member (agent) name
	Addr      netip.AddrPort  // its memberlist address: where it answers the failure detector's probes
	Endpoints []AgentEndpoint // as announced, sorted by Service
	Leaving   bool            // the agent announced it is leaving
}

// Backends returns the alive backend agents whose metadata decoded and
// whose address a direct probe has confirmed (Addr is then where the agent
// answers, not just what it claims), sorted by name. Members that left or are
// dead are not included: their endpoints are gone at once.
func (n *Node) Backends() []BackendMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []BackendMember
	for name, r := range n.members {
		if name == n.cfg.Name || r.state != StateAlive || !r.metaValid || r.meta.Role != RoleBackend || r.probed != r.addr {
			continue
		}
		out = append(out, BackendMember{Name: name, Addr: r.addr, Endpoints: slices.Clone(r.meta.Endpoints), Leaving: r.meta.Leaving})
	}
	slices.SortFunc(out, func(a, b BackendMember) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
