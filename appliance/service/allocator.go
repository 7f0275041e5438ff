package service

import (
	"fmt"
	"hash/fnv"
	"math/bits"
	"net/netip"

	"github.com/xdpsvc/lb/appliance/config"
)

// Allocator hands out ClusterIPs, nodePorts, external IPs and port IDs for one build, in three
// passes over the Services in namespace/name order: (1) keep what the previous state holds, (2)
// honour explicit requests, (3) auto-allocate by a hash of namespace/name plus linear probing.
// Every node with the same manifests and state therefore computes the same result.
type Allocator struct {
	cfg       *config.Config
	prev      *State
	ips       map[netip.Addr]string
	lbIPs     map[netip.Addr]string
	nodePorts map[uint16]string
	ids       map[PortID]bool
	nextID    PortID
	errs      config.ErrorList
	api       bool     // BuildOptions.APIAllocated
	res       Reserved // values the cluster gives to Services (Builder.SetReserved)
}

// Reserved are values that the cluster's resolved allocations (gossip between appliance nodes)
// give to Services, each value mapped to its Service's namespace/name. The allocator neither
// keeps a previous value nor auto-allocates one that is reserved for another Service, so a
// conflict resolved in the cluster is resolved the same way by every node's allocator. Explicit
// requests in a Service's spec are not affected.
type Reserved struct {
	// IPs are ClusterIPs and external IPs.
	IPs map[netip.Addr]string
	// NodePorts are nodePorts.
	NodePorts map[uint16]string
}

// reservedIP reports whether ip is reserved for a Service other than key.
func (a *Allocator) reservedIP(ip netip.Addr, key string) bool {
	o := a.res.IPs[ip]
	return o != "" && o != key
}

// reservedPort reports whether nodePort np is reserved for a Service other than key.
func (a *Allocator) reservedPort(np uint16, key string) bool {
	o := a.res.NodePorts[np]
	return o != "" && o != key
}

func newAllocator(cfg *config.Config, prev *State, api bool) *Allocator {
	if prev == nil {
		prev = &State{}
	}
	return &Allocator{cfg: cfg, prev: prev, api: api, ips: map[netip.Addr]string{}, lbIPs: map[netip.Addr]string{},
		nodePorts: map[uint16]string{}, ids: map[PortID]bool{}, nextID: 1}
}

func (a *Allocator) fail(p *prepared, fieldPath, format string, args ...any) {
	o := p.obj
	line := o.LineOf(fieldPath)
	if _, ok := o.lines[fieldPath]; !ok && fieldPath == p.clusterIPField {
		if l, ok := o.lines["spec.clusterIP"]; ok {
			line = l
		}
	}
	a.errs = append(a.errs, &config.FieldError{File: o.File, Line: line, Field: fieldPath, Message: fmt.Sprintf(format, args...)})
}

// run allocates for every Service in keys order (namespace/name) and returns one allocation per
// prepared Service, or nil when an explicit request failed. Each pass finishes over all Services
// before the next begins: every Service's previous values are placed before any request, and every
// request before any automatic value.
func (a *Allocator) run(keys []string, preps []*prepared) []allocation {
	out := make([]allocation, len(preps))
	for i, p := range preps {
		out[i].nodePorts = make([]uint16, len(p.tmpl.Ports))
		out[i].ids = make([]PortID, len(p.tmpl.Ports))
	}
	for i, p := range preps {
		a.keepPrevious(keys[i], p, &out[i])
	}
	for i, p := range preps {
		a.honourRequests(keys[i], p, &out[i])
	}
	if len(a.errs) > 0 {
		return nil
	}
	for i, p := range preps {
		a.allocateAutomatic(keys[i], p, &out[i])
	}
	return out
}

// keepPrevious is pass 1: the previous state wins over a fresh hash. A previous value is kept
// only when it still fits the spec (matches an explicit request, is in range, is free) and is not
// reserved for another Service. In API mode ClusterIPs and nodePorts are never restored.
func (a *Allocator) keepPrevious(key string, p *prepared, al *allocation) {
	prev, ok := a.prev.Services[key]
	if !ok {
		return
	}
	npr := a.cfg.Network.NodePortRange
	if p.tmpl.LoadBalanced() && len(prev.ClusterIPs) > 0 && !a.api {
		ip := prev.ClusterIPs[0]
		if (!p.wantClusterIP.IsValid() || p.wantClusterIP == ip) && a.usableClusterIP(ip) && a.ips[ip] == "" &&
			(p.wantClusterIP == ip || !a.reservedIP(ip, key)) {
			a.ips[ip], al.clusterIP = key, ip
		}
	}
	for j, pt := range p.tmpl.Ports {
		k := p.portKeys[j]
		if np, ok := prev.NodePorts[k]; ok && !a.api && (p.needsNodePorts() || p.wantNodePorts[j] != 0) &&
			(p.wantNodePorts[j] == 0 || p.wantNodePorts[j] == np) && npr.Contains(int(np)) &&
			(p.wantNodePorts[j] == np || !a.reservedPort(np, key)) &&
			(a.nodePorts[np] == "" || a.nodePorts[np] == key && !usedSameProto(p, al, np, pt.Protocol)) {
			a.nodePorts[np], al.nodePorts[j] = key, np
		}
		if id, ok := prev.PortIDs[k]; ok && id != 0 && !a.ids[id] {
			a.ids[id], al.ids[j] = true, id
		}
	}
	if ip := prev.LoadBalancerIP; p.tmpl.Type == TypeLoadBalancer && ip.IsValid() &&
		(!p.wantLBIP.IsValid() || p.wantLBIP == ip) && a.lbIPs[ip] == "" && (p.wantLBIP == ip || !a.reservedIP(ip, key)) {
		if pool := a.poolOf(ip); pool != "" && (p.pool == "" || p.pool == pool) {
			a.lbIPs[ip], al.lbIP, al.pool = key, ip, pool
		}
	}
}

// honourRequests is pass 2: the explicit requests of one Service, in the order clusterIP,
// nodePorts, external IP, address pool (the order of its errors).
func (a *Allocator) honourRequests(key string, p *prepared, al *allocation) {
	a.requestClusterIP(key, p, al)
	a.requestNodePorts(key, p, al)
	a.requestLBIP(key, p, al)
	if p.pool != "" && p.tmpl.Type == TypeLoadBalancer && !a.hasPool(p.pool) {
		a.fail(p, "metadata.annotations["+AnnotationAddressPool+"]", "Not found: %q: no such loadBalancerPool in %s", p.pool, a.cfg.File)
	}
}

// requestClusterIP takes spec.clusterIP(s) when pass 1 did not already keep it. In API mode it is
// taken as kube-apiserver allocated it; only the family and collisions are checked.
func (a *Allocator) requestClusterIP(key string, p *prepared, al *allocation) {
	ip := p.wantClusterIP
	if !ip.IsValid() || al.clusterIP == ip {
		return
	}
	sc := a.cfg.Network.ServiceCIDR
	switch {
	case a.api && ip.Is4() != sc.Addr().Is4():
		a.fail(p, p.clusterIPField, "Invalid value: %q: IP family does not match serviceCIDR %s", ip.String(), sc)
	case a.api && a.ips[ip] != "":
		a.fail(p, p.clusterIPField, "Invalid value: %q: %s (to Service %s)", ip.String(), msgIPAllocated, a.ips[ip])
	case a.api:
		a.ips[ip], al.clusterIP = key, ip
	case !sc.Contains(ip):
		a.fail(p, p.clusterIPField, "Invalid value: %q: failed to allocate IP %s: %s", ip.String(), ip, msgMismatchedNetwork)
	case !a.usableClusterIP(ip):
		a.fail(p, p.clusterIPField, "Invalid value: %q: failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip.String(), ip, ip, sc)
	case a.ips[ip] != "":
		a.fail(p, p.clusterIPField, "Invalid value: %q: failed to allocate IP %s: %s", ip.String(), ip, msgIPAllocated)
	default:
		a.ips[ip], al.clusterIP = key, ip
	}
}

// requestNodePorts takes each spec.ports[].nodePort that pass 1 did not already keep. A nodePort
// may be shared only by ports of the same Service with different protocols.
func (a *Allocator) requestNodePorts(key string, p *prepared, al *allocation) {
	npr := a.cfg.Network.NodePortRange
	for j, pt := range p.tmpl.Ports {
		np := p.wantNodePorts[j]
		if np == 0 || al.nodePorts[j] == np {
			continue
		}
		f := fmt.Sprintf("spec.ports[%d].nodePort", j)
		switch {
		case a.api && a.nodePorts[np] != "" && (a.nodePorts[np] != key || usedSameProto(p, al, np, pt.Protocol)):
			a.fail(p, f, "Invalid value: %d: %s (to Service %s)", np, msgPortAllocated, a.nodePorts[np])
		case a.api:
			a.nodePorts[np], al.nodePorts[j] = key, np
		case !npr.Contains(int(np)):
			a.fail(p, f, "Invalid value: %d: provided port is not in the valid range. The range of valid ports is %s", np, npr)
		case a.nodePorts[np] != "" && (a.nodePorts[np] != key || usedSameProto(p, al, np, pt.Protocol)):
			a.fail(p, f, "Invalid value: %d: %s", np, msgPortAllocated)
		default:
			a.nodePorts[np], al.nodePorts[j] = key, np
		}
	}
}

// requestLBIP takes the requested external IP (spec.loadBalancerIP or the MetalLB annotation)
// when pass 1 did not already keep it; it must be free and in a pool (the named one, if any).
func (a *Allocator) requestLBIP(key string, p *prepared, al *allocation) {
	ip := p.wantLBIP
	if !ip.IsValid() || p.tmpl.Type != TypeLoadBalancer || al.lbIP == ip {
		return
	}
	pool := a.poolOf(ip)
	switch {
	case pool == "":
		a.fail(p, p.lbField, "Invalid value: %q: not in any loadBalancerPool of %s", ip.String(), a.cfg.File)
	case p.pool != "" && pool != p.pool:
		a.fail(p, p.lbField, "Invalid value: %q: not in pool %q named by %s", ip.String(), p.pool, AnnotationAddressPool)
	case a.lbIPs[ip] != "":
		a.fail(p, p.lbField, "Invalid value: %q: already assigned to Service %s", ip.String(), a.lbIPs[ip])
	default:
		a.lbIPs[ip], al.lbIP, al.pool = key, ip, pool
	}
}

// allocateAutomatic is pass 3: whatever one Service still needs, in the order clusterIP,
// nodePorts, external IP, port IDs. It runs only when no explicit request failed.
func (a *Allocator) allocateAutomatic(key string, p *prepared, al *allocation) {
	if a.api {
		a.requireAPIAllocated(p, al)
	} else if p.tmpl.LoadBalanced() && !al.clusterIP.IsValid() {
		ip, ok := a.autoClusterIP(key)
		if !ok {
			a.fail(p, "spec.clusterIPs", "Internal error: failed to allocate a serviceIP: range is full")
		} else {
			a.ips[ip], al.clusterIP = key, ip
		}
	}
	if p.needsNodePorts() && !a.api {
		a.allocateNodePorts(key, p, al)
	}
	if p.tmpl.Type == TypeLoadBalancer && !al.lbIP.IsValid() && !p.wantLBIP.IsValid() {
		al.lbIP, al.pool = a.autoLBIP(key, p.pool) // invalid = <pending>
		if al.lbIP.IsValid() {
			a.lbIPs[al.lbIP] = key
		}
	}
	for j := range p.tmpl.Ports {
		if al.ids[j] == 0 {
			for a.ids[a.nextID] {
				a.nextID++
			}
			al.ids[j] = a.nextID
			a.ids[a.nextID] = true
		}
	}
}

// requireAPIAllocated reports, in API mode, a clusterIP or nodePort that kube-apiserver should
// have allocated but did not: this mode allocates none.
func (a *Allocator) requireAPIAllocated(p *prepared, al *allocation) {
	if p.tmpl.LoadBalanced() && !al.clusterIP.IsValid() {
		a.fail(p, "spec.clusterIP", "Required value: no clusterIP of this appliance's family allocated by kube-apiserver (API mode allocates none)")
	}
	for j := range p.tmpl.Ports {
		if p.needsNodePorts() && al.nodePorts[j] == 0 {
			a.fail(p, fmt.Sprintf("spec.ports[%d].nodePort", j), "Required value: no nodePort allocated by kube-apiserver (API mode allocates none)")
		}
	}
}

// allocateNodePorts gives every port still without a nodePort one: the nodePort of a port with
// the same number and another protocol when there is one (as kube-apiserver does), else a hashed
// one.
func (a *Allocator) allocateNodePorts(key string, p *prepared, al *allocation) {
	for j, pt := range p.tmpl.Ports {
		if al.nodePorts[j] != 0 {
			continue
		}
		// kube-apiserver reuses a nodePort of the same port number with another protocol.
		for jj, other := range p.tmpl.Ports {
			if jj != j && other.Port == pt.Port && other.Protocol != pt.Protocol && al.nodePorts[jj] != 0 &&
				!usedSameProto(p, al, al.nodePorts[jj], pt.Protocol) {
				al.nodePorts[j] = al.nodePorts[jj]
			}
		}
		if al.nodePorts[j] != 0 {
			continue
		}
		np, ok := a.autoNodePort(key, fmt.Sprintf("%s/%d/%s", key, pt.Port, pt.Protocol))
		if !ok {
			a.fail(p, fmt.Sprintf("spec.ports[%d].nodePort", j), "Internal error: failed to allocate a nodePort: range is full")
			continue
		}
		a.nodePorts[np], al.nodePorts[j] = key, np
	}
}

// usedSameProto reports whether nodePort np is already used by another port of the same
// protocol in this Service's allocation.
func usedSameProto(p *prepared, al *allocation, np uint16, proto Protocol) bool {
	for j, pt := range p.tmpl.Ports {
		if al.nodePorts[j] == np && pt.Protocol == proto {
			return true
		}
	}
	return false
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// usableClusterIP: inside serviceCIDR, not the network address, not the IPv4 broadcast address.
func (a *Allocator) usableClusterIP(ip netip.Addr) bool {
	sc := a.cfg.Network.ServiceCIDR
	if !sc.Contains(ip) || ip == sc.Addr() {
		return false
	}
	if ip.Is4() {
		size, _ := prefixSize(sc)
		return ip != addrAdd(sc.Addr(), size-1)
	}
	return true
}

// prefixSize is the number of addresses in p, capped at 2^62 (the bool says whether capped).
func prefixSize(p netip.Prefix) (uint64, bool) {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 62 {
		return 1 << 62, true
	}
	return 1 << host, false
}

// addrAdd returns a + n.
func addrAdd(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	lo, carry := bits.Add64(lo, n, 0)
	hi += carry
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	r := netip.AddrFrom16(b)
	if a.Is4() {
		return r.Unmap()
	}
	return r
}

// maxProbes bounds linear probing in huge (IPv6) ranges.
const maxProbes = 1 << 20

func (a *Allocator) autoClusterIP(key string) (netip.Addr, bool) {
	sc := a.cfg.Network.ServiceCIDR
	size, capped := prefixSize(sc)
	usable := size - 1 // skip the network address
	if sc.Addr().Is4() && !capped {
		usable-- // and the broadcast address
	}
	start := hash64(key+"|clusterIP") % usable
	for i := uint64(0); i < usable && i < maxProbes; i++ {
		ip := addrAdd(sc.Addr(), 1+(start+i)%usable)
		if a.ips[ip] == "" && !a.reservedIP(ip, key) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (a *Allocator) autoNodePort(svc, key string) (uint16, bool) {
	r := a.cfg.Network.NodePortRange
	size := uint64(r.Size())
	start := hash64(key+"|nodePort") % size
	for i := uint64(0); i < size; i++ {
		np := uint16(uint64(r.First) + (start+i)%size)
		if a.nodePorts[np] == "" && !a.reservedPort(np, svc) {
			return np, true
		}
	}
	return 0, false
}

func (a *Allocator) autoLBIP(key, onlyPool string) (netip.Addr, string) {
	for _, pool := range a.cfg.Network.LoadBalancerPools {
		if onlyPool != "" && pool.Name != onlyPool {
			continue
		}
		var total uint64
		sizes := make([]uint64, len(pool.CIDRs))
		for i, c := range pool.CIDRs {
			sizes[i], _ = prefixSize(c)
			if sizes[i] > 1<<32 {
				sizes[i] = 1 << 32
			}
			total += sizes[i]
		}
		start := hash64(key+"|lb|"+pool.Name) % total
		for i := uint64(0); i < total && i < maxProbes; i++ {
			off := (start + i) % total
			ci := 0
			for off >= sizes[ci] {
				off -= sizes[ci]
				ci++
			}
			ip := addrAdd(pool.CIDRs[ci].Addr(), off)
			if a.lbIPs[ip] == "" && !a.reservedIP(ip, key) && ip.Is4() == a.cfg.Network.ServiceCIDR.Addr().Is4() {
				return ip, pool.Name
			}
		}
	}
	return netip.Addr{}, ""
}

func (a *Allocator) poolOf(ip netip.Addr) string {
	for _, pool := range a.cfg.Network.LoadBalancerPools {
		for _, c := range pool.CIDRs {
			if c.Contains(ip) {
				return pool.Name
			}
		}
	}
	return ""
}

func (a *Allocator) hasPool(name string) bool {
	for _, pool := range a.cfg.Network.LoadBalancerPools {
		if pool.Name == name {
			return true
		}
	}
	return false
}
