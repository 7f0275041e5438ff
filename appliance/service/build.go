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
	idx := b.indexObjects(objs)
	errs := idx.errs
	errs = append(errs, idx.orphanErrors()...)
	keys := idx.serviceKeys()
	preps, prepErrs := b.prepareAll(keys, &idx)
	errs = append(errs, prepErrs...)
	if len(errs) > 0 {
		return nil, nil, b.allocationErrors(errs, keys, preps, prev)
	}
	a := newAllocator(b.cfg, prev, b.opts.APIAllocated)
	a.res = b.res
	allocs := a.run(keys, preps)
	if len(a.errs) > 0 {
		a.errs.Sort()
		return nil, nil, a.errs
	}
	snap, st, newCache := b.assembleSnapshot(keys, preps, allocs)
	b.cache = newCache
	delete(idx.valid, 0)
	b.valid = idx.valid
	return snap, st, nil
}

// manifestIndex is one build's objects grouped by the namespace/name of the Service they belong
// to, with the errors found while grouping them.
type manifestIndex struct {
	svcs     map[string]*Object
	slicesBy map[string][]*Object // in namespace/name order
	epsBy    map[string]*Object
	valid    map[uint64]bool // content hashes of EndpointSlices/Endpoints that passed validation
	errs     config.ErrorList
}

// indexObjects sorts objs and groups them by Service, validating each EndpointSlice and Endpoints
// whose content hash did not pass validation in the last successful build.
func (b *Builder) indexObjects(objs []Object) manifestIndex {
	idx := manifestIndex{
		svcs:     map[string]*Object{},
		slicesBy: map[string][]*Object{},
		epsBy:    map[string]*Object{},
		valid:    make(map[uint64]bool, len(b.valid)),
	}
	sorted := make([]*Object, len(objs))
	for i := range objs {
		sorted[i] = &objs[i]
	}
	sortObjects(sorted)
	for _, o := range sorted {
		switch o.Kind {
		case KindService:
			if o.Service != nil {
				idx.addService(o)
			}
		case KindEndpointSlice:
			if o.EndpointSlice != nil {
				idx.addSlice(o, b.valid[o.Hash] && o.Hash != 0)
			}
		case KindEndpoints:
			if o.Endpoints != nil {
				idx.addEndpoints(o, b.valid[o.Hash] && o.Hash != 0)
			}
		}
	}
	return idx
}

func (idx *manifestIndex) addService(o *Object) {
	k := o.Name()
	if first, dup := idx.svcs[k]; dup {
		idx.errs = append(idx.errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
			Message: fmt.Sprintf("Duplicate value: %q: Service %s is also defined at %s:%d", o.Service.Name, k, first.File, first.Line)})
		return
	}
	idx.svcs[k] = o
}

// addSlice validates an EndpointSlice (unless wasValid) and files it under the Service its
// LabelServiceName label names.
func (idx *manifestIndex) addSlice(o *Object, wasValid bool) {
	if !wasValid {
		if el := validateSlice(o); len(el) > 0 {
			idx.errs = append(idx.errs, el...)
			return
		}
	}
	idx.valid[o.Hash] = true
	name, ok := o.EndpointSlice.Labels[LabelServiceName]
	f := "metadata.labels[" + LabelServiceName + "]"
	if !ok || name == "" {
		idx.errs = append(idx.errs, &config.FieldError{File: o.File, Line: o.LineOf(f), Field: f, Message: "Required value: an EndpointSlice names its Service with this label"})
		return
	}
	k := nsName(o.EndpointSlice.Namespace, name)
	idx.slicesBy[k] = append(idx.slicesBy[k], o)
}

// addEndpoints validates a v1 Endpoints object (unless wasValid) and files it under the Service
// of the same namespace/name.
func (idx *manifestIndex) addEndpoints(o *Object, wasValid bool) {
	if !wasValid {
		if el := validateEndpoints(o); len(el) > 0 {
			idx.errs = append(idx.errs, el...)
			return
		}
	}
	idx.valid[o.Hash] = true
	k := o.Name()
	if first, dup := idx.epsBy[k]; dup {
		idx.errs = append(idx.errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
			Message: fmt.Sprintf("Duplicate value: %q: Endpoints %s are also defined at %s:%d", o.Endpoints.Name, k, first.File, first.Line)})
		return
	}
	idx.epsBy[k] = o
}

// orphanErrors reports EndpointSlices and Endpoints whose Service is not in the manifests. The
// errors come in map order; the caller sorts them.
func (idx *manifestIndex) orphanErrors() config.ErrorList {
	var errs config.ErrorList
	for k, list := range idx.slicesBy {
		if idx.svcs[k] == nil {
			for _, o := range list {
				f := "metadata.labels[" + LabelServiceName + "]"
				errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf(f), Field: f,
					Message: fmt.Sprintf("Not found: %q: no Service %s in the manifests", o.EndpointSlice.Labels[LabelServiceName], k)})
			}
		}
	}
	for k, o := range idx.epsBy {
		if idx.svcs[k] == nil {
			errs = append(errs, &config.FieldError{File: o.File, Line: o.LineOf("metadata.name"), Field: "metadata.name",
				Message: fmt.Sprintf("Not found: %q: no Service %s in the manifests", o.Endpoints.Name, k)})
		}
	}
	return errs
}

// serviceKeys returns the Services' namespace/names in order: the order of allocation.
func (idx *manifestIndex) serviceKeys() []string {
	keys := make([]string, 0, len(idx.svcs))
	for k := range idx.svcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// prepareAll validates each Service in keys and resolves its endpoints, reusing the cached
// prepared form when the combined content hash of the Service and its endpoint objects is
// unchanged. It returns every Service's errors in keys order.
func (b *Builder) prepareAll(keys []string, idx *manifestIndex) ([]*prepared, config.ErrorList) {
	var errs config.ErrorList
	preps := make([]*prepared, len(keys))
	for i, k := range keys {
		o := idx.svcs[k]
		h := combinedHash(o, idx.slicesBy[k], idx.epsBy[k])
		if c := b.cache[k]; c != nil && h != 0 && c.prep.hash == h {
			preps[i] = c.prep
		} else {
			preps[i] = prepareService(o, idx.slicesBy[k], idx.epsBy[k], b.family, b.opts.APIAllocated)
			preps[i].hash = h
		}
		errs = append(errs, preps[i].errs...)
	}
	return preps, errs
}

// allocationErrors completes a failed build's errs: it still runs the allocator over the valid
// Services so that every error is reported at once, and returns them all sorted.
func (b *Builder) allocationErrors(errs config.ErrorList, keys []string, preps []*prepared, prev *State) config.ErrorList {
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
	return errs
}

// assembleSnapshot builds the Snapshot, the State and the next cache from the prepared Services
// and their allocations. A Service whose prepared form and allocation are both unchanged is the
// very *Service (and ServiceState) of the last snapshot.
func (b *Builder) assembleSnapshot(keys []string, preps []*prepared, allocs []allocation) (*Snapshot, *State, map[string]*cached) {
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
		if svc.LoadBalanced() {
			snap.addFrontends(int32(i), svc)
		}
	}
	return snap, st, newCache
}

// addFrontends indexes the ports of svc, the Service at index si, by port ID, frontend and
// nodePort. Only assembleSnapshot calls it, before the snapshot is returned: a returned Snapshot is
// never modified.
func (snap *Snapshot) addFrontends(si int32, svc *Service) {
	for j := range svc.Ports {
		pt := &svc.Ports[j]
		snap.Ports[pt.ID] = PortRef{Service: si, Port: int32(j)}
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
