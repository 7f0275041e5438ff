package service

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"

	"github.com/xdpsvc/lb/appliance/config"
)

// Build turns manifests and config into a validated, allocated Snapshot and the State to persist.
// It is pure and deterministic: no I/O, and the same objects (in any order), config and prev give
// the same result. prev may be nil. On any error it returns a config.ErrorList with every problem
// and no snapshot or state: nothing is half-applied.
func Build(objs []Object, cfg *config.Config, prev *State) (*Snapshot, *State, error) {
	return NewBuilder(cfg).Build(objs, prev)
}

// Builder is Build with memory: it reuses the validated, endpoint-resolved form of every Service
// whose manifests did not change (by content hash), and the very *Service of the last snapshot
// when its allocations did not change either. A Builder belongs to one goroutine (the reload loop).
type Builder struct {
	cfg    *config.Config
	opts   BuildOptions
	family int
	cache  map[string]*cached
	valid  map[uint64]bool // content hashes of EndpointSlices/Endpoints that passed validation
	res    Reserved
}

// SetReserved sets the values reserved by the cluster for the following builds (see Reserved);
// a zero Reserved clears them.
func (b *Builder) SetReserved(r Reserved) { b.res = r }

type cached struct {
	prep *prepared
	svc  *Service     // last built, with allocations
	st   ServiceState // svc's allocations as persisted (immutable, shared between States)
}

// BuildOptions selects how a Builder allocates.
type BuildOptions struct {
	// APIAllocated is the Kubernetes API mode: kube-apiserver has already allocated every
	// ClusterIP and nodePort, so they are taken from the objects verbatim (spec.clusterIPs of the
	// serviceCIDR's family, spec.ports[].nodePort) and only checked for collisions, never
	// allocated, range-checked or restored from the previous State. A load-balanced Service
	// without a clusterIP, or a port that needs a nodePort without one, is an error for that
	// Service. Other families' clusterIPs of a dual-stack Service are ignored. External IPs and
	// port IDs are still allocated by the appliance (previous State first).
	APIAllocated bool
}

// NewBuilder returns a Builder for cfg (which must not change afterwards).
func NewBuilder(cfg *config.Config) *Builder {
	return NewBuilderWithOptions(cfg, BuildOptions{})
}

// NewBuilderWithOptions returns a Builder for cfg with opts (neither may change afterwards).
func NewBuilderWithOptions(cfg *config.Config, opts BuildOptions) *Builder {
	fam := 4
	if cfg.Network.ServiceCIDR.Addr().Is6() {
		fam = 6
	}
	return &Builder{cfg: cfg, opts: opts, family: fam, cache: map[string]*cached{}, valid: map[uint64]bool{}}
}

// Build is the incremental form of the package-level Build; the cache is updated only on success.
func (b *Builder) Build(objs []Object, prev *State) (*Snapshot, *State, error) {
	var errs config.ErrorList
	svcs := map[string]*Object{}
	slicesBy := map[string][]*Object{}
	epsBy := map[string]*Object{}
	sorted := make([]*Object, len(objs))
	for i := range objs {
		sorted[i] = &objs[i]
	}
	sortObjects(sorted)
	newValid := make(map[uint64]bool, len(b.valid))
	for _, o := range sorted {
		switch o.Kind {
		case KindService:
			if o.Service == nil {
				continue
			}
			k := o.Name()
			if first, dup := svcs[k]; dup {
				errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
					Message: fmt.Sprintf("Duplicate value: %q: Service %s is also defined at %s:%d", o.Service.Name, k, first.File, first.Line)})
				continue
			}
			svcs[k] = o
		case KindEndpointSlice:
			if o.EndpointSlice == nil {
				continue
			}
			if !b.valid[o.Hash] || o.Hash == 0 {
				if el := validateSlice(o); len(el) > 0 {
					errs = append(errs, el...)
					continue
				}
				newValid[o.Hash] = true
			} else {
				newValid[o.Hash] = true
			}
			name, ok := o.EndpointSlice.Labels[LabelServiceName]
			f := "metadata.labels[" + LabelServiceName + "]"
			if !ok || name == "" {
				errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf(f), Field: f, Message: "Required value: an EndpointSlice names its Service with this label"})
				continue
			}
			k := nsName(o.EndpointSlice.Namespace, name)
			slicesBy[k] = append(slicesBy[k], o)
		case KindEndpoints:
			if o.Endpoints == nil {
				continue
			}
			if !b.valid[o.Hash] || o.Hash == 0 {
				if el := validateEndpoints(o); len(el) > 0 {
					errs = append(errs, el...)
					continue
				}
			}
			newValid[o.Hash] = true
			k := o.Name()
			if first, dup := epsBy[k]; dup {
				errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
					Message: fmt.Sprintf("Duplicate value: %q: Endpoints %s are also defined at %s:%d", o.Endpoints.Name, k, first.File, first.Line)})
				continue
			}
			epsBy[k] = o
		}
	}
	for k, list := range slicesBy {
		if svcs[k] == nil {
			for _, o := range list {
				f := "metadata.labels[" + LabelServiceName + "]"
				errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf(f), Field: f,
					Message: fmt.Sprintf("Not found: %q: no Service %s in the manifests", o.EndpointSlice.Labels[LabelServiceName], k)})
			}
		}
	}
	for k, o := range epsBy {
		if svcs[k] == nil {
			errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
				Message: fmt.Sprintf("Not found: %q: no Service %s in the manifests", o.Endpoints.Name, k)})
		}
	}
	keys := make([]string, 0, len(svcs))
	for k := range svcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	preps := make([]*prepared, len(keys))
	for i, k := range keys {
		o := svcs[k]
		h := combinedHash(o, slicesBy[k], epsBy[k])
		if c := b.cache[k]; c != nil && h != 0 && c.prep.hash == h {
			preps[i] = c.prep
		} else {
			preps[i] = prepareService(o, slicesBy[k], epsBy[k], b.family, b.opts.APIAllocated)
			preps[i].hash = h
		}
		errs = append(errs, preps[i].errs...)
	}
	if len(errs) > 0 {
		// Still run the allocator over the valid Services so that every error is reported at once.
		var okKeys []string
		var okPreps []*prepared
		for i, p := range preps {
			if len(p.errs) == 0 {
				okKeys, okPreps = append(okKeys, keys[i]), append(okPreps, p)
			}
		}
		a := newAllocator(b.cfg, prev, b.opts.APIAllocated)
		a.res = b.res
		a.run(okKeys, okPreps)
		errs = append(errs, a.errs...)
		errs.Sort()
		return nil, nil, errs
	}
	a := newAllocator(b.cfg, prev, b.opts.APIAllocated)
	a.res = b.res
	allocs := a.run(keys, preps)
	if len(a.errs) > 0 {
		a.errs.Sort()
		return nil, nil, a.errs
	}
	snap := &Snapshot{
		Services:  make([]*Service, len(keys)),
		Frontends: map[Frontend]PortID{},
		NodePorts: map[NodePortKey]PortID{},
		Ports:     map[PortID]PortRef{},
	}
	st := &State{Version: StateVersion, Services: make(map[string]ServiceState, len(keys))}
	newCache := make(map[string]*cached, len(keys))
	for i, k := range keys {
		p, al := preps[i], allocs[i]
		var svc *Service
		if c := b.cache[k]; c != nil && c.prep == p && sameAlloc(c.svc, al) {
			svc = c.svc
			newCache[k] = c
		} else {
			svc = assemble(p, al)
			newCache[k] = &cached{prep: p, svc: svc, st: al.state(svc)}
		}
		snap.Services[i] = svc
		st.Services[k] = newCache[k].st
		if !svc.LoadBalanced() {
			continue
		}
		for j := range svc.Ports {
			pt := &svc.Ports[j]
			snap.Ports[pt.ID] = PortRef{Service: int32(i), Port: int32(j)}
			for _, ip := range svc.ClusterIPs {
				snap.Frontends[Frontend{ip, pt.Port, pt.Protocol}] = pt.ID
			}
			if svc.ExternalIP.IsValid() {
				snap.Frontends[Frontend{svc.ExternalIP, pt.Port, pt.Protocol}] = pt.ID
			}
			if pt.NodePort != 0 {
				snap.NodePorts[NodePortKey{pt.NodePort, pt.Protocol}] = pt.ID
			}
		}
	}
	b.cache = newCache
	delete(newValid, 0)
	b.valid = newValid
	return snap, st, nil
}

func combinedHash(o *Object, sl []*Object, eps *Object) uint64 {
	if o.Hash == 0 {
		return 0
	}
	h := fnv.New64a()
	var buf [8]byte
	add := func(v uint64) { binary.LittleEndian.PutUint64(buf[:], v); h.Write(buf[:]) }
	add(o.Hash)
	for _, s := range sl { // sl is in namespace/name order (sortObjects)
		if s.Hash == 0 {
			return 0
		}
		add(s.Hash)
	}
	if eps != nil {
		if eps.Hash == 0 {
			return 0
		}
		add(eps.Hash)
	}
	return h.Sum64() | 1
}

// allocation is what the allocator decided for one Service.
type allocation struct {
	clusterIP netip.Addr
	nodePorts []uint16
	lbIP      netip.Addr
	pool      string
	ids       []PortID
}

func sameAlloc(s *Service, a allocation) bool {
	if s == nil || s.ExternalIP != a.lbIP || s.Pool != a.pool {
		return false
	}
	if len(s.ClusterIPs) == 0 != !a.clusterIP.IsValid() || len(s.ClusterIPs) > 0 && s.ClusterIPs[0] != a.clusterIP {
		return false
	}
	for i := range s.Ports {
		if s.Ports[i].NodePort != a.nodePorts[i] || s.Ports[i].ID != a.ids[i] {
			return false
		}
	}
	return true
}

func (a allocation) state(s *Service) ServiceState {
	ss := ServiceState{LoadBalancerIP: a.lbIP}
	if a.clusterIP.IsValid() {
		ss.ClusterIPs = []netip.Addr{a.clusterIP}
	}
	for i, p := range s.Ports {
		k := portKey(p.Port, p.Protocol)
		if p.NodePort != 0 {
			if ss.NodePorts == nil {
				ss.NodePorts = map[string]uint16{}
			}
			ss.NodePorts[k] = p.NodePort
		}
		if ss.PortIDs == nil {
			ss.PortIDs = map[string]PortID{}
		}
		ss.PortIDs[k] = a.ids[i]
	}
	return ss
}

func assemble(p *prepared, a allocation) *Service {
	s := p.tmpl
	s.Ports = slices.Clone(p.tmpl.Ports)
	if a.clusterIP.IsValid() {
		s.ClusterIPs = []netip.Addr{a.clusterIP}
	}
	s.ExternalIP, s.Pool = a.lbIP, a.pool
	s.Pending = s.Type == TypeLoadBalancer && !a.lbIP.IsValid()
	for i := range s.Ports {
		s.Ports[i].NodePort = a.nodePorts[i]
		s.Ports[i].ID = a.ids[i]
	}
	s.specHash, s.endpointsHash = hashService(&s)
	return &s
}

// hashService hashes the spec with allocations and, separately, the endpoints, for Diff.
func hashService(s *Service) (spec, eps uint64) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d|%v|%s|%v|%v|%v|%s|%v|%d|%d|%d|%v|", s.Namespace, s.Name, s.Type, s.Headless, s.ExternalName,
		s.ClusterIPs, s.ExternalIP, s.Pending, s.Pool, s.SessionAffinityClientIP, s.AffinityTimeoutSeconds,
		s.ExternalTrafficPolicy, s.InternalTrafficPolicy, s.SourceRanges)
	e := fnv.New64a()
	var buf [24]byte
	for _, p := range s.Ports {
		fmt.Fprintf(h, "%d|%s|%d|%d|%d|%d|%s|", p.ID, p.Name, p.Protocol, p.Port, p.NodePort, p.TargetPort, p.TargetPortName)
		for _, ep := range p.Endpoints {
			a16 := ep.Addr.As16()
			copy(buf[:16], a16[:])
			binary.LittleEndian.PutUint16(buf[16:], ep.Port)
			buf[18] = b2u(ep.Ready) | b2u(ep.Serving)<<1 | b2u(ep.Terminating)<<2 | b2u(ep.Addr.Is4())<<3
			e.Write(buf[:19])
			e.Write([]byte(ep.NodeName + "|" + ep.Zone + "|" + ep.Hostname + "|"))
		}
		e.Write([]byte{0xff})
	}
	return h.Sum64(), e.Sum64()
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Allocator error wording, as kube-apiserver's allocators say it.
const (
	msgIPAllocated       = "provided IP is already allocated"
	msgMismatchedNetwork = "the provided network does not match the current range"
	msgPortAllocated     = "provided port is already allocated"
)
