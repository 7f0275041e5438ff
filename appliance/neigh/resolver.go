package neigh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Errors of Resolve.
var (
	// ErrNoSlots: every slot is given out.
	ErrNoSlots = errors.New("neigh: no free next-hop slot")
	// ErrTooManyDestinations: MaxDestinations reached.
	ErrTooManyDestinations = errors.New("neigh: too many destinations")
	// ErrLocal: the destination is an address of this host, not a next hop.
	ErrLocal = errors.New("neigh: destination is local")
	// ErrNoRoute: the route lookup gave no usable route.
	ErrNoRoute = errors.New("neigh: no route")
)

// Config of a Resolver.
type Config struct {
	// Logger receives control-path events (never per packet); nil means slog.Default().
	Logger *slog.Logger
	// NetNS is the network namespace whose route and neighbour tables are used and in which
	// default probes are sent; nil means the caller's current namespace.
	NetNS *netns.NsHandle
	// MaxSlots is the size of the Slots table, NoSlot included (at most MaxSlots-1 next hops).
	MaxSlots int
	// MaxDestinations bounds the destination → slot map (Resolve fails beyond it; Prune
	// forgets the destinations no longer used).
	MaxDestinations int
	// SlotQuarantine is how long a slot released by Prune stays unused (reading invalid) before
	// it may be given to another next hop. Handles carry a generation, so a stale handle reads
	// invalid whatever the quarantine; the quarantine makes a generation repeat no sooner than
	// SlotGenerations × SlotQuarantine after a release, which must exceed the longest flow idle
	// timeout of the data plane (conntrack's TCPEstablishedTimeout) — DefaultConfig's does by a
	// wide margin — so that no flow can keep a handle until its generation comes round again.
	SlotQuarantine time.Duration
	// RequestQueueLen is the capacity of the queue behind Request; requests beyond it are
	// dropped and counted.
	RequestQueueLen int
	// RefreshInterval is the period of the full re-dump of neighbours and re-lookup of routes
	// that backs up the netlink notifications.
	RefreshInterval time.Duration
	// ProbeInterval is the minimum time between two probes of a next hop without a usable entry
	// (and the period of the probe scan).
	ProbeInterval time.Duration
	// RevalidateInterval is the minimum time between two probes of a STALE next hop, which make
	// the kernel re-confirm its MAC; 0 disables revalidation.
	RevalidateInterval time.Duration
	// Probe, when set, replaces the default kernel probe: it must make the kernel's neighbour
	// table learn nexthop on link linkIndex (e.g. an ARP request sent by the data plane whose
	// reply the steering program passes to the kernel). Called from the control goroutine.
	Probe func(nexthop netip.Addr, linkIndex int) error
}

// DefaultConfig returns 4096 slots, 65536 destinations, a 10 min slot quarantine, a 1024-entry
// request queue, a 30 s refresh, 1 s probes and 15 s revalidation.
func DefaultConfig() Config {
	return Config{
		MaxSlots:           4096,
		MaxDestinations:    65536,
		SlotQuarantine:     10 * time.Minute,
		RequestQueueLen:    1024,
		RefreshInterval:    30 * time.Second,
		ProbeInterval:      time.Second,
		RevalidateInterval: 15 * time.Second,
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxSlots < 2 || c.MaxSlots > maxSlots:
		return fmt.Errorf("MaxSlots %d: must be in [2, %d]", c.MaxSlots, maxSlots)
	case c.MaxDestinations < 1:
		return fmt.Errorf("MaxDestinations %d: must be positive", c.MaxDestinations)
	case c.SlotQuarantine <= 0:
		return fmt.Errorf("SlotQuarantine %v: must be positive", c.SlotQuarantine)
	case c.RequestQueueLen < 1:
		return fmt.Errorf("RequestQueueLen %d: must be positive", c.RequestQueueLen)
	case c.RefreshInterval <= 0:
		return fmt.Errorf("RefreshInterval %v: must be positive", c.RefreshInterval)
	case c.ProbeInterval <= 0:
		return fmt.Errorf("ProbeInterval %v: must be positive", c.ProbeInterval)
	case c.RevalidateInterval < 0:
		return fmt.Errorf("RevalidateInterval %v: must not be negative", c.RevalidateInterval)
	}
	return nil
}

// kernel is what the Resolver needs from netlink (*netlink.Handle has it); tests fake it.
type kernel interface {
	RouteGet(dst net.IP) ([]netlink.Route, error)
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
}

// Snapshot is an immutable destination → slot map, safe for concurrent lock-free reads.
type Snapshot struct {
	dests map[netip.Addr]Slot
}

// Slot returns the slot of the next hop towards dst (as last resolved) and whether dst is known.
// A nil Snapshot knows nothing. No lock, no allocation.
func (s *Snapshot) Slot(dst netip.Addr) (Slot, bool) {
	if s == nil {
		return NoSlot, false
	}
	slot, ok := s.dests[dst]
	return slot, ok
}

// Len returns the number of destinations in the snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.dests)
}

type neighKey struct {
	link int
	ip   netip.Addr
}

// slotInfo is the control side's record of one slot index.
type slotInfo struct {
	key       neighKey
	gen       uint32 // the index's generation: that of its live handle, or of the next one
	live      bool   // given to key; false while released
	state     int    // last NUD state seen; 0 = no entry
	usable    bool
	lastProbe time.Time
}

// releasedSlot is an index Prune took back, reusable from reusableAt.
type releasedSlot struct {
	index      uint32
	reusableAt time.Time
}

// Resolver keeps the Slots of next hops in step with the kernel. See the package doc.
type Resolver struct {
	cfg      Config
	log      *slog.Logger
	k        kernel
	handle   *netlink.Handle // nil in unit tests
	prober   *KernelProber   // default probe; nil when cfg.Probe is set or in unit tests
	slots    *Slots
	snap     atomic.Pointer[Snapshot]
	requests chan netip.Addr

	// Counters, readable at any time.
	requestsDropped    atomic.Uint64
	probesSent         atomic.Uint64
	probeErrors        atomic.Uint64
	destinationsPruned atomic.Uint64
	nextHopsReleased   atomic.Uint64

	clock func() time.Time // time.Now; tests step it

	mu       sync.Mutex
	byNeigh  map[neighKey]Slot   // live next hops → their current handles
	info     []slotInfo          // indexed by slot index; info[0] unused
	dests    map[netip.Addr]Slot // values are always live handles in byNeigh
	released []releasedSlot      // oldest first, so reusableAt ascends
}

// New opens netlink in cfg.NetNS and returns a Resolver. Call Run on its own goroutine and Close
// when done.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("neigh config: %w", err)
	}
	var h *netlink.Handle
	var err error
	if cfg.NetNS != nil {
		h, err = netlink.NewHandleAt(*cfg.NetNS)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	r := newResolver(cfg, h)
	r.handle = h
	if cfg.Probe == nil {
		p, err := NewKernelProber(cfg.NetNS)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("open kernel prober: %w", err)
		}
		r.prober = p
		r.cfg.Probe = p.Probe
	}
	return r, nil
}

func newResolver(cfg Config, k kernel) *Resolver {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Resolver{
		cfg:      cfg,
		log:      log,
		k:        k,
		slots:    NewSlots(cfg.MaxSlots),
		requests: make(chan netip.Addr, cfg.RequestQueueLen),
		clock:    time.Now,
		byNeigh:  make(map[neighKey]Slot),
		info:     make([]slotInfo, 1, 64),
		dests:    make(map[netip.Addr]Slot),
	}
	r.snap.Store(&Snapshot{dests: map[netip.Addr]Slot{}})
	return r
}

// Close releases the netlink handle and the probe sockets. Run must have returned.
func (r *Resolver) Close() error {
	if r.handle != nil {
		r.handle.Close()
	}
	if r.prober != nil {
		return r.prober.Close()
	}
	return nil
}

// Slots returns the table the data plane reads.
func (r *Resolver) Slots() *Slots { return r.slots }

// Snapshot returns the current destination → slot map (lock-free).
func (r *Resolver) Snapshot() *Snapshot { return r.snap.Load() }

// Request asks the Run goroutine to resolve dst, without blocking: for the data plane on a new
// flow whose destination the Snapshot does not know yet. It returns false (and counts) when the
// queue is full. No allocation.
func (r *Resolver) Request(dst netip.Addr) bool {
	select {
	case r.requests <- dst:
		return true
	default:
		r.requestsDropped.Add(1)
		return false
	}
}

// Stats are the Resolver's counters.
type Stats struct {
	RequestsDropped uint64 // Request calls refused because the queue was full
	ProbesSent      uint64 // probes sent without error
	ProbeErrors     uint64 // probes that returned an error
	NextHops        int    // slots given out to a next hop now
	Destinations    int    // destinations known
	ReleasedSlots   int    // slots released by Prune and not given out again (quarantined or free)

	DestinationsPruned uint64 // destinations Prune forgot
	NextHopsReleased   uint64 // next hops Prune released, their slots invalidated
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		RequestsDropped: r.requestsDropped.Load(), ProbesSent: r.probesSent.Load(),
		ProbeErrors: r.probeErrors.Load(), NextHops: len(r.byNeigh), Destinations: len(r.dests),
		ReleasedSlots: len(r.released), DestinationsPruned: r.destinationsPruned.Load(),
		NextHopsReleased: r.nextHopsReleased.Load(),
	}
}

// Resolve returns the slot of the next hop towards dst, giving one out on first use, reading the
// kernel's entry and probing when it is not usable. The slot may not hold a MAC yet: the data
// plane checks Slots.MAC per packet. Publishes a new Snapshot when dst is new.
func (r *Resolver) Resolve(dst netip.Addr) (Slot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slot, changed, err := r.resolveLocked(dst, r.clock())
	if changed {
		r.publishLocked()
	}
	return slot, err
}

// ResolveAll resolves every destination and publishes one Snapshot; it returns the first error
// (with its destination) after trying all.
func (r *Resolver) ResolveAll(dsts []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	changedAny := false
	now := r.clock()
	for _, dst := range dsts {
		_, changed, err := r.resolveLocked(dst, now)
		changedAny = changedAny || changed
		if err != nil && first == nil {
			first = err
		}
	}
	if changedAny {
		r.publishLocked()
	}
	return first
}

func (r *Resolver) resolveLocked(dst netip.Addr, now time.Time) (Slot, bool, error) {
	dst = dst.Unmap()
	if slot, ok := r.dests[dst]; ok {
		return slot, false, nil
	}
	if !dst.IsValid() {
		return NoSlot, false, fmt.Errorf("resolve %v: %w", dst, ErrNoRoute)
	}
	if len(r.dests) >= r.cfg.MaxDestinations {
		return NoSlot, false, fmt.Errorf("resolve %v: %w (%d)", dst, ErrTooManyDestinations, r.cfg.MaxDestinations)
	}
	key, err := r.nextHop(dst)
	if err != nil {
		return NoSlot, false, err
	}
	slot, err := r.slotLocked(key, now)
	if err != nil {
		return NoSlot, false, fmt.Errorf("resolve %v via %v: %w", dst, key.ip, err)
	}
	r.dests[dst] = slot
	return slot, true, nil
}

// nextHop looks up the route to dst: its gateway, else dst itself, and the outgoing link.
func (r *Resolver) nextHop(dst netip.Addr) (neighKey, error) {
	routes, err := r.k.RouteGet(dst.AsSlice())
	if err != nil {
		return neighKey{}, fmt.Errorf("route to %v: %w", dst, err)
	}
	if len(routes) == 0 {
		return neighKey{}, fmt.Errorf("route to %v: %w", dst, ErrNoRoute)
	}
	rt := routes[0]
	switch rt.Type {
	case unix.RTN_LOCAL, unix.RTN_BROADCAST, unix.RTN_MULTICAST:
		return neighKey{}, fmt.Errorf("route to %v: %w", dst, ErrLocal)
	case unix.RTN_UNICAST, unix.RTN_UNSPEC:
	default:
		return neighKey{}, fmt.Errorf("route to %v (type %d): %w", dst, rt.Type, ErrNoRoute)
	}
	if rt.LinkIndex <= 0 {
		return neighKey{}, fmt.Errorf("route to %v has no link: %w", dst, ErrNoRoute)
	}
	nh := dst
	if rt.Gw != nil {
		gw, ok := netip.AddrFromSlice(rt.Gw)
		if !ok {
			return neighKey{}, fmt.Errorf("route to %v: bad gateway %v: %w", dst, rt.Gw, ErrNoRoute)
		}
		nh = gw.Unmap()
	}
	return neighKey{link: rt.LinkIndex, ip: nh}, nil
}

// slotLocked returns the slot of key, giving one out (and reading the kernel entry) if new.
func (r *Resolver) slotLocked(key neighKey, now time.Time) (Slot, error) {
	if slot, ok := r.byNeigh[key]; ok {
		return slot, nil
	}
	index, ok := r.takeIndexLocked(now)
	if !ok {
		return NoSlot, ErrNoSlots
	}
	in := &r.info[index]
	*in = slotInfo{key: key, gen: in.gen, live: true}
	slot := makeSlot(index, in.gen)
	r.byNeigh[key] = slot
	r.slots.links[index].Store(int32(key.link))
	neighs, err := r.k.NeighList(key.link, family(key.ip))
	if err != nil {
		r.log.Warn("list neighbours", "iface", key.link, "err", err)
	}
	found := false
	for i := range neighs {
		if ip, ok := neighIP(&neighs[i]); ok && ip == key.ip {
			r.applyLocked(slot, neighs[i].State, neighs[i].HardwareAddr)
			found = true
			break
		}
	}
	if !found {
		r.applyLocked(slot, 0, nil)
	}
	r.log.Debug("next hop added", "backend", key.ip.String(), "iface", key.link, "slot", index, "generation", in.gen)
	r.maybeProbeLocked(index, now)
	return slot, nil
}

// takeIndexLocked returns a slot index for a new next hop: a never-used one while there are
// any, else the oldest released one once its quarantine is over.
func (r *Resolver) takeIndexLocked(now time.Time) (uint32, bool) {
	if len(r.info) < r.slots.Len() {
		r.info = append(r.info, slotInfo{})
		return uint32(len(r.info) - 1), true
	}
	if len(r.released) == 0 || now.Before(r.released[0].reusableAt) {
		return 0, false
	}
	index := r.released[0].index
	r.released = r.released[1:]
	return index, true
}

// applyLocked stores the state rules' verdict for a kernel entry (state 0: no entry).
func (r *Resolver) applyLocked(slot Slot, state int, lladdr net.HardwareAddr) {
	w, ok := entryWord(state, lladdr)
	in := &r.info[slot.index()]
	in.state, in.usable = state, ok
	r.slots.store(slot, w|genWord(in.gen))
}

// maybeProbeLocked probes the slot's next hop when it has no usable entry (every ProbeInterval)
// or is STALE (every RevalidateInterval).
func (r *Resolver) maybeProbeLocked(index uint32, now time.Time) {
	in := &r.info[index]
	var every time.Duration
	switch {
	case !in.live:
		return
	case !in.usable:
		every = r.cfg.ProbeInterval
	case r.cfg.RevalidateInterval > 0 && needsRevalidation(in.state):
		every = r.cfg.RevalidateInterval
	default:
		return
	}
	if !in.lastProbe.IsZero() && now.Sub(in.lastProbe) < every {
		return
	}
	in.lastProbe = now
	if r.cfg.Probe == nil {
		return
	}
	if err := r.cfg.Probe(in.key.ip, in.key.link); err != nil {
		r.probeErrors.Add(1)
		r.log.Debug("probe next hop", "backend", in.key.ip.String(), "iface", in.key.link, "err", err)
		return
	}
	r.probesSent.Add(1)
}

func (r *Resolver) publishLocked() {
	m := make(map[netip.Addr]Slot, len(r.dests))
	for d, s := range r.dests {
		m[d] = s
	}
	r.snap.Store(&Snapshot{dests: m})
}

// HandleUpdate applies one netlink neighbour notification (Run calls it; exported for callers
// that run their own subscription). Entries of untracked next hops are ignored.
func (r *Resolver) HandleUpdate(u netlink.NeighUpdate) {
	ip, ok := neighIP(&u.Neigh)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	slot, ok := r.byNeigh[neighKey{link: u.LinkIndex, ip: ip}]
	if !ok {
		return
	}
	now := r.clock()
	if u.Type == unix.RTM_DELNEIGH {
		r.applyLocked(slot, 0, nil)
	} else {
		r.applyLocked(slot, u.State, u.HardwareAddr)
	}
	r.maybeProbeLocked(slot.index(), now)
}

// Refresh re-reads the neighbour tables and the routes of every destination (moving a
// destination to a new next hop when its route changed; the old next hop keeps its slot until
// Prune finds no destination going through it) and probes unusable next hops.
func (r *Resolver) Refresh() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	var errs []error
	seen := make(map[neighKey]int, len(r.byNeigh))
	hw := make(map[neighKey]net.HardwareAddr, len(r.byNeigh))
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		neighs, err := r.k.NeighList(0, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("list neighbours (family %d): %w", fam, err))
			continue
		}
		for i := range neighs {
			ip, ok := neighIP(&neighs[i])
			if !ok {
				continue
			}
			key := neighKey{link: neighs[i].LinkIndex, ip: ip}
			if _, tracked := r.byNeigh[key]; tracked {
				seen[key], hw[key] = neighs[i].State, neighs[i].HardwareAddr
			}
		}
	}
	if len(errs) == 0 {
		for key, slot := range r.byNeigh {
			r.applyLocked(slot, seen[key], hw[key])
		}
	}
	changed := false
	for dst, old := range r.dests {
		key, err := r.nextHop(dst)
		if err != nil {
			errs = append(errs, err) // keep the old next hop: better than none
			continue
		}
		if key == r.info[old.index()].key {
			continue
		}
		slot, err := r.slotLocked(key, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("re-route %v via %v: %w", dst, key.ip, err))
			continue
		}
		r.dests[dst] = slot
		changed = true
	}
	if changed {
		r.publishLocked()
	}
	r.probeAllLocked(now)
	return errors.Join(errs...)
}

func (r *Resolver) probeAllLocked(now time.Time) {
	for index := uint32(1); int(index) < len(r.info); index++ {
		r.maybeProbeLocked(index, now)
	}
}

// Run keeps the slots in step with the kernel until ctx ends: it subscribes to neighbour
// notifications of cfg.NetNS (re-subscribing after an overflow), re-dumps every
// RefreshInterval, probes every ProbeInterval and serves Request. It returns ctx's error.
func (r *Resolver) Run(ctx context.Context) error {
	refresh := time.NewTicker(r.cfg.RefreshInterval)
	defer refresh.Stop()
	probe := time.NewTicker(r.cfg.ProbeInterval)
	defer probe.Stop()

	var updates chan netlink.NeighUpdate
	var done chan struct{}
	subscribe := func() {
		updates, done = make(chan netlink.NeighUpdate, 256), make(chan struct{})
		opts := netlink.NeighSubscribeOptions{
			Namespace: r.cfg.NetNS,
			ErrorCallback: func(err error) {
				if ctx.Err() == nil {
					r.log.Warn("neighbour notifications", "err", err)
				}
			},
		}
		if err := netlink.NeighSubscribeWithOptions(updates, done, opts); err != nil {
			r.log.Warn("subscribe to neighbour notifications", "err", err)
			close(done)
			updates, done = nil, nil // the refresh ticker retries
		}
	}
	unsubscribe := func() {
		if done == nil {
			return
		}
		close(done)
		for range updates { // the library's goroutine closes updates once its socket is closed
		}
		updates, done = nil, nil
	}
	defer unsubscribe()

	subscribe()
	if err := r.Refresh(); err != nil {
		r.log.Warn("refresh neighbours", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok { // overflow or error: resubscribe and re-dump to catch what was missed
				close(done)
				updates, done = nil, nil
				subscribe()
				if err := r.Refresh(); err != nil {
					r.log.Warn("refresh neighbours", "err", err)
				}
				continue
			}
			r.HandleUpdate(u)
		case dst := <-r.requests:
			r.serveRequests(dst)
		case <-refresh.C:
			if updates == nil {
				subscribe()
			}
			if err := r.Refresh(); err != nil {
				r.log.Warn("refresh neighbours", "err", err)
			}
		case now := <-probe.C:
			r.mu.Lock()
			r.probeAllLocked(now)
			r.mu.Unlock()
		}
	}
}

// serveRequests resolves first and every request already queued, then publishes once.
func (r *Resolver) serveRequests(first netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	changedAny := false
	dst := first
	for {
		_, changed, err := r.resolveLocked(dst, now)
		if err != nil {
			r.log.Debug("resolve requested destination", "backend", dst.String(), "err", err)
		}
		changedAny = changedAny || changed
		select {
		case dst = <-r.requests:
			continue
		default:
		}
		break
	}
	if changedAny {
		r.publishLocked()
	}
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// neighIP returns the IPv4/IPv6 address of a neighbour entry (false for bridge FDB entries and
// malformed addresses).
func neighIP(n *netlink.Neigh) (netip.Addr, bool) {
	if n.Family != netlink.FAMILY_V4 && n.Family != netlink.FAMILY_V6 && n.Family != 0 {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
