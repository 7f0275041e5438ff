package daemon

import (
	"net/netip"
	"slices"
	"time"

	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/cluster"
)

// Allocation gossip (ARCHITECTURE.md, allocation): every node proposes the ClusterIPs, external IPs and
// nodePorts it allocated, with the time it first allocated them, and the cluster resolves all
// proposals with one rule (cluster.AllocationStore: the earliest wins, a value taken by an
// earlier winner is cleared in the later one). In manifest mode each build then
//
//   - reserves every resolved value for its Service (service.Reserved), so the allocator never
//     keeps or picks a value the cluster gave to another Service, and
//   - takes the resolved values of its own Services as the previous state, with the winner's
//     creation time, so a node that allocated differently adopts the winner's values;
//
// and the node proposes what it built. Nodes with the same proposals converge on the same
// values, whatever order they saw them in. In API mode kube-apiserver is the allocator: the
// node proposes its values (so conflicts in external IPs are visible) but adopts nothing.

// clusterReservations maps the resolved allocations to the values they reserve.
func clusterReservations(resolved map[string]cluster.Allocation) service.Reserved {
	r := service.Reserved{IPs: map[netip.Addr]string{}, NodePorts: map[uint16]string{}}
	for k, a := range resolved {
		if a.ClusterIP.IsValid() {
			r.IPs[a.ClusterIP] = k
		}
		if a.ExternalIP.IsValid() {
			r.IPs[a.ExternalIP] = k
		}
		for _, np := range a.NodePorts {
			if np != 0 {
				r.NodePorts[np] = k
			}
		}
	}
	return r
}

// adoptResolved returns the previous state to build from: prev with the resolved allocation
// of each Service of cur (the last built snapshot, for the port order) that differs from prev.
// prev is not modified.
func adoptResolved(prev *service.State, cur *service.Snapshot, resolved map[string]cluster.Allocation) *service.State {
	if cur == nil || len(resolved) == 0 {
		return prev
	}
	out := &service.State{Version: prev.Version, Services: make(map[string]service.ServiceState, len(prev.Services))}
	for k, v := range prev.Services {
		out.Services[k] = v
	}
	for _, s := range cur.Services {
		k := s.Namespace + "/" + s.Name
		a, ok := resolved[k]
		if !ok || sameAllocation(allocationOf(s, 0), a) {
			continue
		}
		ss := out.Services[k]
		ss.ClusterIPs = nil
		if a.ClusterIP.IsValid() {
			ss.ClusterIPs = []netip.Addr{a.ClusterIP}
		}
		ss.LoadBalancerIP = a.ExternalIP
		ss.NodePorts = map[string]uint16{}
		for j, p := range s.Ports {
			if j < len(a.NodePorts) && a.NodePorts[j] != 0 {
				ss.NodePorts[service.PortKey(p.Port, p.Protocol)] = a.NodePorts[j]
			}
		}
		ss.CreatedUnixMilli = a.CreatedUnixMilli
		out.Services[k] = ss
	}
	return out
}

// stampCreated sets every Service's creation time in st: the previous one while the values are
// the same, now for values allocated anew.
func stampCreated(st, prev *service.State, now time.Time) {
	if st == nil {
		return
	}
	for k, ss := range st.Services {
		old, ok := prev.Services[k]
		if ok && old.CreatedUnixMilli != 0 && sameValues(old, ss) {
			ss.CreatedUnixMilli = old.CreatedUnixMilli
		} else {
			ss.CreatedUnixMilli = now.UnixMilli()
		}
		st.Services[k] = ss
	}
}

func sameValues(a, b service.ServiceState) bool {
	if !slices.Equal(a.ClusterIPs, b.ClusterIPs) || a.LoadBalancerIP != b.LoadBalancerIP || len(a.NodePorts) != len(b.NodePorts) {
		return false
	}
	for k, v := range a.NodePorts {
		if b.NodePorts[k] != v {
			return false
		}
	}
	return true
}

// allocationOf is s's allocation as proposed to the cluster.
func allocationOf(s *service.Service, created int64) cluster.Allocation {
	a := cluster.Allocation{Service: s.Namespace + "/" + s.Name, ExternalIP: s.ExternalIP, CreatedUnixMilli: created}
	if len(s.ClusterIPs) > 0 {
		a.ClusterIP = s.ClusterIPs[0]
	}
	for _, p := range s.Ports {
		a.NodePorts = append(a.NodePorts, p.NodePort)
	}
	return a
}

// sameAllocation compares the values (not the creation time).
func sameAllocation(a, b cluster.Allocation) bool {
	return a.ClusterIP == b.ClusterIP && a.ExternalIP == b.ExternalIP && slices.Equal(a.NodePorts, b.NodePorts)
}

// publishAllocations proposes snap's allocations to the cluster when they changed.
func (n *node) publishAllocations(snap *service.Snapshot, st *service.State) {
	var items []cluster.Allocation
	for _, s := range snap.Services {
		a := allocationOf(s, 0)
		if !a.ClusterIP.IsValid() && !a.ExternalIP.IsValid() && !slices.ContainsFunc(a.NodePorts, func(p uint16) bool { return p != 0 }) {
			continue
		}
		if st != nil {
			a.CreatedUnixMilli = st.Services[a.Service].CreatedUnixMilli
		}
		items = append(items, a)
	}
	if n.control.publishedOnce && slices.EqualFunc(items, n.control.published, func(a, b cluster.Allocation) bool {
		return sameAllocation(a, b) && a.Service == b.Service && a.CreatedUnixMilli == b.CreatedUnixMilli
	}) {
		return // unchanged: no new generation to gossip
	}
	if err := n.cl.SetAllocations(items); err != nil {
		n.log.Error("propose allocations to the cluster", "err", err)
		return
	}
	n.control.published, n.control.publishedOnce = items, true
}
