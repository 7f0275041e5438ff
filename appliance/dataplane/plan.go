package dataplane

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/xdpsvc/lb/appliance/maglev"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/packet"
)

// Role says which traffic a port carries (config: interfaces[].role).
type Role uint8

// Port roles.
const (
	RoleBoth Role = iota
	RoleExternal
	RoleCluster
)

// Port is one interface the data plane sends and receives on.
type Port struct {
	// Name is the interface name (logs, metrics).
	Name string
	// Ifindex is the kernel's interface index.
	Ifindex int
	// MAC is the interface's hardware address, the source MAC of everything sent on it.
	MAC [6]byte
	// Prefixes are the interface's IPv4 addresses with their on-link prefix length; the first
	// is the SNAT address for flows leaving here.
	Prefixes []netip.Prefix
	// Role is external, cluster or both.
	Role Role
}

type frontKind uint8

const (
	kindClusterIP frontKind = iota + 1
	kindNodePort
	kindVIP
)

var frontKindNames = [...]string{"", "ClusterIP", "NodePort", "LoadBalancer"}

// frontKey is an IPv4 (address, port, protocol) the node serves.
type frontKey struct {
	addr  [4]byte
	port  uint16
	proto uint8
}

type frontend struct {
	sp   int32 // index into Plan.ports
	kind frontKind
}

// endpoint is one backend of a Service port as the worker needs it.
type endpoint struct {
	id          uint32 // stable endpoint ID (liveness bit, BackendID in conntrack)
	addr        [4]byte
	port        uint16
	egress      uint16  // port index the backend is reached through
	nextHop     [4]byte // the backend itself when on-link, else the gateway
	terminating bool
}

// servicePort is one Service port compiled for the pipeline.
type servicePort struct {
	id       service.PortID
	name     string // namespace/name:port for logs and the admin API
	proto    uint8
	eps      []endpoint
	pick     []int32 // indexes into eps that take new flows, in Maglev order
	table    *maglev.Table
	affinity bool
	etpLocal bool
	ranges   []prefix4 // loadBalancerSourceRanges; empty: any
}

// RouteFunc tells through which port and next hop an IPv4 address that is on no port's prefix is
// reached; ok false when there is no route.
type RouteFunc func(dst netip.Addr) (port int, nextHop netip.Addr, ok bool)

// Plan is everything the workers read per batch: the compiled frontends, Service ports,
// endpoint liveness and the addresses the node answers for. Immutable once built.
type Plan struct {
	Snapshot *service.Snapshot

	front    map[frontKey]frontend
	ports    []servicePort
	byID     map[service.PortID]int32
	alive    []uint64 // bitset over endpoint IDs present in the snapshot
	vips     map[[4]byte]bool
	echo     map[[4]byte]bool // held VIPs and ClusterIPs answer ICMP echo
	snat     []snatAddr       // per port: the SNAT address
	internal []prefix4        // clusterCIDRs
	// local holds the node's addresses, every VIP (held or not) and ClusterIP: no client
	// sends from them, and the data plane never learns a MAC for them.
	local map[[4]byte]bool
	// backends holds every endpoint address: no MAC is learned for them from frames.
	backends map[[4]byte]bool
	held     []netip.Addr // VIPs this node holds (for the steering program and ARP)

	// Warnings are what compile left out (endpoints with no route), for the control path's log.
	Warnings []string
}

type snatAddr struct {
	addr [4]byte
	ok   bool
}

// endpointRegistry hands out endpoint IDs that are never reused while the process runs, so a
// flow's BackendID can always be checked against the current Plan's liveness bitset.
type endpointRegistry struct {
	ids  map[epKey]uint32
	next uint32
}

type epKey struct {
	port service.PortID
	addr [4]byte
	num  uint16
}

func (r *endpointRegistry) id(k epKey) uint32 {
	if id, ok := r.ids[k]; ok {
		return id
	}
	if r.ids == nil {
		r.ids = make(map[epKey]uint32)
	}
	r.next++
	r.ids[k] = r.next
	return r.next
}

// planInput is what compile needs besides the snapshot.
type planInput struct {
	ports        []Port
	clusterCIDRs []netip.Prefix
	heldVIPs     func(netip.Addr) bool
	maglev       maglev.Config
	route        RouteFunc
	reg          *endpointRegistry
}

// compile builds a Plan. It fails without side effects other than new registry IDs.
func compile(snap *service.Snapshot, in planInput) (*Plan, error) {
	p := &Plan{
		Snapshot: snap,
		front:    make(map[frontKey]frontend),
		byID:     make(map[service.PortID]int32),
		vips:     make(map[[4]byte]bool),
		echo:     make(map[[4]byte]bool),
		snat:     make([]snatAddr, len(in.ports)),
		internal: toPrefix4(in.clusterCIDRs),
		local:    make(map[[4]byte]bool),
		backends: make(map[[4]byte]bool),
	}
	nodeAddrs := p.addNodeAddrs(in.ports)
	maxID := uint32(0)
	for _, svc := range snap.Services {
		if !svc.LoadBalanced() {
			continue
		}
		for pi := range svc.Ports {
			sp := &svc.Ports[pi]
			c := servicePort{
				id:       sp.ID,
				name:     svc.Key() + ":" + strconv.Itoa(int(sp.Port)),
				proto:    uint8(sp.Protocol),
				affinity: svc.SessionAffinityClientIP,
				etpLocal: svc.ExternalTrafficPolicy == service.PolicyLocal,
				ranges:   toPrefix4(svc.SourceRanges),
			}
			var ready, serving []int32
			for _, e := range sp.Endpoints {
				if !e.Addr.Is4() {
					continue
				}
				a4 := e.Addr.As4()
				p.backends[a4] = true
				ep := endpoint{
					id:          in.reg.id(epKey{port: sp.ID, addr: a4, num: e.Port}),
					addr:        a4,
					port:        e.Port,
					terminating: e.Terminating,
				}
				egress, hop, err := routeTo(e.Addr, in)
				if err != nil {
					// One unreachable endpoint must not keep every other Service from being
					// served: it is left out of this port and reported.
					p.Warnings = append(p.Warnings, fmt.Sprintf("service %s endpoint %s left out: %v", svc.Key(), e.Addr, err))
					continue
				}
				ep.egress, ep.nextHop = uint16(egress), hop.As4()
				maxID = max(maxID, ep.id)
				idx := int32(len(c.eps))
				c.eps = append(c.eps, ep)
				switch {
				case e.Ready && !e.Terminating:
					ready = append(ready, idx)
				case e.Serving:
					serving = append(serving, idx)
				}
			}
			// As kube-proxy: new flows go to ready endpoints; only when there are none, to
			// serving terminating ones (KEP-1669); otherwise the port rejects.
			c.pick = ready
			if len(c.pick) == 0 {
				c.pick = serving
			}
			if len(c.pick) > 0 {
				bs := make([]maglev.Backend, len(c.pick))
				for i, ei := range c.pick {
					e := c.eps[ei]
					bs[i].Key = netip.AddrFrom4(e.addr).String() + ":" + strconv.Itoa(int(e.port))
				}
				t, err := maglev.Build(bs, in.maglev)
				if err != nil {
					return nil, fmt.Errorf("service %s backend table: %w", c.name, err)
				}
				c.table = t
			}
			idx := int32(len(p.ports))
			p.ports = append(p.ports, c)
			p.byID[sp.ID] = idx
			proto := uint8(sp.Protocol)
			if svc.ExternalIP.Is4() {
				p.local[svc.ExternalIP.As4()] = true
			}
			for _, ip := range svc.ClusterIPs {
				if ip.Is4() {
					p.local[ip.As4()] = true
					p.front[frontKey{ip.As4(), sp.Port, proto}] = frontend{idx, kindClusterIP}
					p.echo[ip.As4()] = true
				}
			}
			if sp.NodePort != 0 {
				for _, a := range nodeAddrs {
					p.front[frontKey{a, sp.NodePort, proto}] = frontend{idx, kindNodePort}
				}
			}
			if svc.ExternalIP.Is4() && in.heldVIPs(svc.ExternalIP) {
				v := svc.ExternalIP.As4()
				p.front[frontKey{v, sp.Port, proto}] = frontend{idx, kindVIP}
				if !p.vips[v] {
					p.held = append(p.held, svc.ExternalIP)
				}
				p.vips[v] = true
				p.echo[v] = true
			}
		}
	}
	p.alive = make([]uint64, maxID/64+1)
	for i := range p.ports {
		for _, e := range p.ports[i].eps {
			p.alive[e.id/64] |= 1 << (e.id % 64)
		}
	}
	sort.Slice(p.held, func(i, j int) bool { return p.held[i].Less(p.held[j]) })
	return p, nil
}

// addNodeAddrs records the ports' IPv4 addresses: each port's first is its SNAT address, and
// all are local. It returns them all (the NodePort frontends' addresses).
func (p *Plan) addNodeAddrs(ports []Port) [][4]byte {
	var nodeAddrs [][4]byte
	for i, pt := range ports {
		for _, pf := range pt.Prefixes {
			if !pf.Addr().Is4() {
				continue
			}
			a := pf.Addr().As4()
			if !p.snat[i].ok {
				p.snat[i] = snatAddr{addr: a, ok: true}
			}
			nodeAddrs = append(nodeAddrs, a)
			p.local[a] = true
		}
	}
	return nodeAddrs
}

// routeTo picks the port and next hop for a backend: on-link on a port's prefix (cluster-side
// ports first), else the RouteFunc.
func routeTo(a netip.Addr, in planInput) (int, netip.Addr, error) {
	for _, want := range []Role{RoleCluster, RoleBoth, RoleExternal} {
		for i, pt := range in.ports {
			if pt.Role != want {
				continue
			}
			for _, pf := range pt.Prefixes {
				if pf.Contains(a) {
					return i, a, nil
				}
			}
		}
	}
	if in.route != nil {
		if port, hop, ok := in.route(a); ok && port >= 0 && port < len(in.ports) && hop.Is4() {
			return port, hop, nil
		}
	}
	return 0, netip.Addr{}, fmt.Errorf("no route: on no interface's prefix and no route found")
}

// martian4 reports whether src cannot be a client's address: "this network" (0/8), loopback
// (127/8), multicast and the reserved range with broadcast (224/3), or an address of the plan's
// own (node, VIP, ClusterIP).
func (p *Plan) martian4(src [4]byte) bool {
	switch {
	case src[0] == 0, src[0] == 127, src[0] >= 224:
		return true
	}
	return p.local[src]
}

// learnable reports whether a MAC seen on a client's frame may be remembered for src: never
// for an address inside the cluster, of the node, a VIP, a ClusterIP or a backend.
func (p *Plan) learnable(src [4]byte) bool {
	return !p.local[src] && !p.backends[src] && !contains4(p.internal, src)
}

// isAlive reports whether endpoint id is in the plan (any condition).
func (p *Plan) isAlive(id uint32) bool {
	w := id / 64
	return int(w) < len(p.alive) && p.alive[w]&(1<<(id%64)) != 0
}

// HeldVIPs returns the LoadBalancer addresses this plan answers for.
func (p *Plan) HeldVIPs() []netip.Addr { return p.held }

// Frontends lists every IPv4 (address, port, protocol) the plan serves, for the steering map.
func (p *Plan) Frontends() []FrontendAddr {
	out := make([]FrontendAddr, 0, len(p.front))
	for k := range p.front {
		out = append(out, FrontendAddr{Addr: netip.AddrFrom4(k.addr), Port: k.port, Proto: k.proto})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Addr != b.Addr {
			return a.Addr.Less(b.Addr)
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Proto < b.Proto
	})
	return out
}

// EchoAddrs lists the addresses that answer ICMP echo (ClusterIPs and held VIPs).
func (p *Plan) EchoAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(p.echo))
	for a := range p.echo {
		out = append(out, netip.AddrFrom4(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// FrontendAddr is one served (address, port, protocol).
type FrontendAddr struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
}

func protoName(p uint8) string {
	switch p {
	case packet.ProtoTCP:
		return "TCP"
	case packet.ProtoUDP:
		return "UDP"
	case packet.ProtoICMP:
		return "ICMP"
	}
	return strconv.Itoa(int(p))
}
