package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
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

// BackendMember is an alive backend agent with valid metadata, as the local
// node sees it.
type BackendMember struct {
	Name      string          // member (agent) name
	Addr      netip.AddrPort  // its memberlist address: where it answers the failure detector's probes
	Endpoints []AgentEndpoint // as announced, sorted by Service
	Leaving   bool            // the agent announced it is leaving
}

// Backends returns the alive backend agents whose metadata decoded, sorted
// by name. Members that left or are dead are not included: their endpoints
// are gone at once.
func (n *Node) Backends() []BackendMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []BackendMember
	for name, r := range n.members {
		if name == n.cfg.Name || r.state != StateAlive || !r.metaValid || r.meta.Role != RoleBackend {
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
