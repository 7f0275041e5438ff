package cluster

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// AllocationStore holds the latest allocation set of every origin node and
// resolves them into one view. It is pure (no I/O, no clock) and not safe
// for concurrent use; Node guards it with its mutex.
//
// Resolution rule, the same on every node:
//  1. Per origin only the set with the highest Generation counts.
//  2. Per Service the proposal with the earliest CreatedUnixMilli wins, ties
//     to the lowest origin name: an allocation that already existed beats a
//     newer conflicting one, so values never change while the Service exists.
//  3. Across Services, winners are taken in the same order (created, origin,
//     service); a ClusterIP, external IP or NodePort already taken by an
//     earlier winner is cleared (invalid address, port 0) in the later one,
//     which tells its allocator to allocate that value again.
type AllocationStore struct {
	sets map[string]AllocationSet
}

// NewAllocationStore returns an empty store.
func NewAllocationStore() *AllocationStore {
	return &AllocationStore{sets: map[string]AllocationSet{}}
}

// Merge records s if it is newer than what the store holds for s.Origin and
// reports whether it changed the store.
func (st *AllocationStore) Merge(s AllocationSet) bool {
	if old, ok := st.sets[s.Origin]; ok && old.Generation >= s.Generation {
		return false
	}
	st.sets[s.Origin] = s
	return true
}

// Forget drops origin's set (a node forgotten after ForgetDeadAfter).
func (st *AllocationStore) Forget(origin string) bool {
	_, ok := st.sets[origin]
	delete(st.sets, origin)
	return ok
}

// Get returns the set held for origin.
func (st *AllocationStore) Get(origin string) (AllocationSet, bool) {
	s, ok := st.sets[origin]
	return s, ok
}

// Sets returns every held set, sorted by origin.
func (st *AllocationStore) Sets() []AllocationSet {
	out := make([]AllocationSet, 0, len(st.sets))
	for _, s := range st.sets {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

type proposal struct {
	origin string
	a      Allocation
}

func (p proposal) before(q proposal) bool {
	if p.a.CreatedUnixMilli != q.a.CreatedUnixMilli {
		return p.a.CreatedUnixMilli < q.a.CreatedUnixMilli
	}
	if p.origin != q.origin {
		return p.origin < q.origin
	}
	return p.a.Service < q.a.Service
}

// Resolve applies the resolution rule and returns one Allocation per Service.
func (st *AllocationStore) Resolve() map[string]Allocation {
	best := map[string]proposal{}
	for origin, s := range st.sets {
		for _, a := range s.Items {
			p := proposal{origin: origin, a: a}
			if cur, ok := best[a.Service]; !ok || p.before(cur) {
				best[a.Service] = p
			}
		}
	}
	order := make([]proposal, 0, len(best))
	for _, p := range best {
		order = append(order, p)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].before(order[j]) })
	ips := map[netip.Addr]bool{}
	ports := map[uint16]bool{}
	out := make(map[string]Allocation, len(order))
	for _, p := range order {
		a := p.a
		a.NodePorts = slices.Clone(a.NodePorts)
		if a.ClusterIP.IsValid() {
			if ips[a.ClusterIP] {
				a.ClusterIP = netip.Addr{}
			} else {
				ips[a.ClusterIP] = true
			}
		}
		if a.ExternalIP.IsValid() {
			if ips[a.ExternalIP] {
				a.ExternalIP = netip.Addr{}
			} else {
				ips[a.ExternalIP] = true
			}
		}
		for i, np := range a.NodePorts {
			if np == 0 {
				continue
			}
			if ports[np] {
				a.NodePorts[i] = 0
			} else {
				ports[np] = true
			}
		}
		out[a.Service] = a
	}
	return out
}

// normaliseItems sorts items by Service and rejects duplicates; it copies.
func normaliseItems(items []Allocation) ([]Allocation, bool) {
	out := slices.Clone(items)
	for i := range out {
		out[i].NodePorts = slices.Clone(out[i].NodePorts)
		out[i].ClusterIP = out[i].ClusterIP.Unmap()
		out[i].ExternalIP = out[i].ExternalIP.Unmap()
	}
	slices.SortFunc(out, func(a, b Allocation) int { return strings.Compare(a.Service, b.Service) })
	for i := 1; i < len(out); i++ {
		if out[i].Service == out[i-1].Service {
			return nil, false
		}
	}
	return out, true
}
