package steer

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime"
	"sync"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
)

// Config sizes the steering program's maps.
type Config struct {
	// MaxQueues is the XSKMAP size: the highest queue index that can get a socket, plus one.
	MaxQueues int
	// MaxFrontends is the capacity of each of the IPv4 and IPv6 frontend maps.
	MaxFrontends int
	// MaxVIPs is the capacity of the held-VIP map (IPv4 addresses answered by ARP).
	MaxVIPs int
	// MaxPortRanges is the capacity of each of the IPv4 and IPv6 port-range maps (one entry
	// per address whose range of TCP/UDP ports is steered: a node address and its SNAT ports).
	MaxPortRanges int
	// Logger receives attach/detach events; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns maps sized for 64 queues, 65536 frontends per family, 4096 VIPs and
// 1024 port-range addresses per family.
func DefaultConfig() Config {
	return Config{MaxQueues: 64, MaxFrontends: 65536, MaxVIPs: 4096, MaxPortRanges: 1024}
}

// Mode is how the program is attached to an interface.
type Mode int

// Attach modes.
const (
	ModeAuto    Mode = iota // native, falling back to generic
	ModeNative              // driver XDP (XDP_FLAGS_DRV_MODE)
	ModeGeneric             // generic/SKB XDP (XDP_FLAGS_SKB_MODE)
)

func (m Mode) String() string {
	switch m {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	default:
		return "auto"
	}
}

func (m Mode) flags() int {
	if m == ModeGeneric {
		return nl.XDP_FLAGS_SKB_MODE
	}
	return nl.XDP_FLAGS_DRV_MODE
}

// Program is the loaded steering program and its maps.
type Program struct {
	cfg      Config
	log      *slog.Logger
	prog     *ebpf.Program
	progID   ebpf.ProgramID
	xsks     *ebpf.Map
	front4   *ebpf.Map
	front6   *ebpf.Map
	vips     *ebpf.Map
	ranges4  *ebpf.Map
	ranges6  *ebpf.Map
	counters *ebpf.Map

	mu        sync.Mutex // guards everything below and serialises map rewrites
	cur4      map[key4]uint32
	cur6      map[key6]uint32
	curVIPs   map[[4]byte]uint32
	curRange4 map[[4]byte]uint32
	curRange6 map[[16]byte]uint32
	attached  map[int]attachment
}

type attachment struct {
	mode Mode
	ns   netns.NsHandle // the namespace the interface is in (the attaching thread's)
}

// Load creates the maps and loads (verifies) the program. Nothing is attached yet.
func Load(cfg Config) (*Program, error) {
	if cfg.MaxQueues <= 0 || cfg.MaxFrontends <= 0 || cfg.MaxVIPs <= 0 || cfg.MaxPortRanges <= 0 {
		return nil, fmt.Errorf("load steering program: map sizes must be positive: %+v", cfg)
	}
	p := &Program{
		cfg: cfg, log: cfg.Logger,
		cur4: map[key4]uint32{}, cur6: map[key6]uint32{}, curVIPs: map[[4]byte]uint32{},
		curRange4: map[[4]byte]uint32{}, curRange6: map[[16]byte]uint32{},
		attached: map[int]attachment{},
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	specs := []struct {
		m    **ebpf.Map
		spec ebpf.MapSpec
	}{
		{&p.xsks, ebpf.MapSpec{Name: "steer_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(cfg.MaxQueues)}},
		{&p.front4, ebpf.MapSpec{Name: "steer_front4", Type: ebpf.Hash, KeySize: 8, ValueSize: 4, MaxEntries: uint32(cfg.MaxFrontends)}},
		{&p.front6, ebpf.MapSpec{Name: "steer_front6", Type: ebpf.Hash, KeySize: 20, ValueSize: 4, MaxEntries: uint32(cfg.MaxFrontends)}},
		{&p.vips, ebpf.MapSpec{Name: "steer_vips", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: uint32(cfg.MaxVIPs)}},
		{&p.ranges4, ebpf.MapSpec{Name: "steer_ranges4", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: uint32(cfg.MaxPortRanges)}},
		{&p.ranges6, ebpf.MapSpec{Name: "steer_ranges6", Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: uint32(cfg.MaxPortRanges)}},
		{&p.counters, ebpf.MapSpec{Name: "steer_counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(NumReasons)}},
	}
	for _, s := range specs {
		m, err := ebpf.NewMap(&s.spec)
		if err != nil {
			p.closeObjects()
			return nil, fmt.Errorf("load steering program: create map %s: %w", s.spec.Name, err)
		}
		*s.m = m
	}
	ins := instructions(programMaps{
		xsks: p.xsks, front4: p.front4, front6: p.front6, vips: p.vips,
		ranges4: p.ranges4, ranges6: p.ranges6, counters: p.counters,
	})
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "steer",
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: ins,
	})
	if err != nil {
		p.closeObjects()
		return nil, fmt.Errorf("load steering program: %w", err)
	}
	p.prog = prog
	info, err := prog.Info()
	if err != nil {
		p.closeObjects()
		return nil, fmt.Errorf("load steering program: program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		p.closeObjects()
		return nil, errors.New("load steering program: kernel reports no program ID")
	}
	p.progID = id
	return p, nil
}

// FD is the program's file descriptor.
func (p *Program) FD() int { return p.prog.FD() }

// ID is the kernel's ID of the program (as shown by `ip link` and bpftool).
func (p *Program) ID() uint32 { return uint32(p.progID) }

// XDPProgram returns the program in asavie/xdp's shape (its Register fills Queues too, so a
// small array is given for it). The caller must not Close it: Program.Close owns the objects.
func (p *Program) XDPProgram() (*xdp.Program, error) {
	q, err := ebpf.NewMap(&ebpf.MapSpec{Name: "steer_qidconf", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: uint32(p.cfg.MaxQueues)})
	if err != nil {
		return nil, fmt.Errorf("asavie program view: %w", err)
	}
	return &xdp.Program{Program: p.prog, Queues: q, Sockets: p.xsks}, nil
}

// SetFrontends makes the frontend maps hold exactly set, or returns an error and leaves them
// holding the previous set: a set that does not fit MaxFrontends is refused before anything is
// written, and a write the kernel refuses midway is undone. New and changed entries are written
// before gone ones are deleted (gone ones first only when both would not fit at once), so no
// entry that stays is ever missing.
func (p *Program) SetFrontends(set []Frontend) error {
	want4 := make(map[key4]uint32, len(set))
	want6 := map[key6]uint32{}
	for _, f := range set {
		v, err := f.validate()
		if err != nil {
			return fmt.Errorf("set frontends: %w", err)
		}
		a := f.Addr.Unmap()
		if a.Is4() {
			want4[encodeKey4(a.As4(), f.Port, f.Proto)] = v
		} else {
			want6[encodeKey6(a.As16(), f.Port, f.Proto)] = v
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := fits(len(want4), len(want6), p.cfg.MaxFrontends, "MaxFrontends"); err != nil {
		return fmt.Errorf("set frontends: %w", err)
	}
	old4 := maps.Clone(p.cur4)
	if err := syncMap(p.front4, p.cur4, want4, p.cfg.MaxFrontends); err != nil {
		return fmt.Errorf("set frontends: IPv4 map: %w", err)
	}
	if err := syncMap(p.front6, p.cur6, want6, p.cfg.MaxFrontends); err != nil {
		err = fmt.Errorf("set frontends: IPv6 map: %w", err)
		if rerr := syncMap(p.front4, p.cur4, old4, p.cfg.MaxFrontends); rerr != nil {
			return errors.Join(err, fmt.Errorf("restore IPv4 map: %w", rerr))
		}
		return err
	}
	return nil
}

// SetVIPs makes the held-VIP map hold exactly vips (IPv4 only; others are an error), or returns
// an error and leaves the previous set, as SetFrontends.
func (p *Program) SetVIPs(vips []netip.Addr) error {
	want := make(map[[4]byte]uint32, len(vips))
	for _, a := range vips {
		a = a.Unmap()
		if !a.Is4() {
			return fmt.Errorf("set VIPs: %s: only IPv4 VIPs are answered by ARP", a)
		}
		want[a.As4()] = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := fits(len(want), 0, p.cfg.MaxVIPs, "MaxVIPs"); err != nil {
		return fmt.Errorf("set VIPs: %w", err)
	}
	if err := syncMap(p.vips, p.curVIPs, want, p.cfg.MaxVIPs); err != nil {
		return fmt.Errorf("set VIPs: %w", err)
	}
	return nil
}

// PortRange steers TCP and UDP to every port from First to Last (inclusive) of Addr: a node
// address and the SNAT ports that backends' replies come back to. One map entry per address
// however wide the range, checked by comparison in the program.
type PortRange struct {
	Addr        netip.Addr
	First, Last uint16
}

// encode is the range's map value: a host-order u32, low half First, high half Last.
func (r PortRange) encode() uint32 { return uint32(r.First) | uint32(r.Last)<<16 }

// SetPortRanges makes the port-range maps hold exactly ranges (at most one range per address),
// or returns an error and leaves the previous ranges, as SetFrontends.
func (p *Program) SetPortRanges(ranges []PortRange) error {
	want4 := map[[4]byte]uint32{}
	want6 := map[[16]byte]uint32{}
	for _, r := range ranges {
		if !r.Addr.IsValid() || r.First > r.Last {
			return fmt.Errorf("set port ranges: %s ports %d-%d: need an address and First <= Last", r.Addr, r.First, r.Last)
		}
		a, v := r.Addr.Unmap(), r.encode()
		var prev uint32
		var dup bool
		if a.Is4() {
			prev, dup = want4[a.As4()]
			want4[a.As4()] = v
		} else {
			prev, dup = want6[a.As16()]
			want6[a.As16()] = v
		}
		if dup && prev != v {
			return fmt.Errorf("set port ranges: %s has two ranges (ports %d-%d and %d-%d): one range per address", a, prev&0xffff, prev>>16, r.First, r.Last)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := fits(len(want4), len(want6), p.cfg.MaxPortRanges, "MaxPortRanges"); err != nil {
		return fmt.Errorf("set port ranges: %w", err)
	}
	old4 := maps.Clone(p.curRange4)
	if err := syncMap(p.ranges4, p.curRange4, want4, p.cfg.MaxPortRanges); err != nil {
		return fmt.Errorf("set port ranges: IPv4 map: %w", err)
	}
	if err := syncMap(p.ranges6, p.curRange6, want6, p.cfg.MaxPortRanges); err != nil {
		err = fmt.Errorf("set port ranges: IPv6 map: %w", err)
		if rerr := syncMap(p.ranges4, p.curRange4, old4, p.cfg.MaxPortRanges); rerr != nil {
			return errors.Join(err, fmt.Errorf("restore IPv4 map: %w", rerr))
		}
		return err
	}
	return nil
}

// fits refuses a plan whose IPv4 or IPv6 entries exceed a map's capacity (field names the
// Config field to raise), before anything is written.
func fits(n4, n6, capacity int, field string) error {
	if n4 > capacity || n6 > capacity {
		return fmt.Errorf("plan needs %d IPv4 and %d IPv6 entries, the maps hold %d each (Config.%s): previous entries kept", n4, n6, capacity, field)
	}
	return nil
}

// syncMap makes m hold exactly want (len(want) <= capacity), keeping cur equal to the kernel
// map. When a write fails it restores the previous contents before returning the error.
func syncMap[K comparable](m *ebpf.Map, cur, want map[K]uint32, capacity int) error {
	old := maps.Clone(cur)
	union := len(cur)
	for k := range want {
		if _, ok := cur[k]; !ok {
			union++
		}
	}
	if err := writeMap(m, cur, want, union > capacity); err != nil {
		if rerr := writeMap(m, cur, old, true); rerr != nil {
			return errors.Join(err, fmt.Errorf("restore previous entries: %w", rerr))
		}
		return err
	}
	return nil
}

// writeMap writes want into m: adds and updates then deletes, or deletes first when
// deleteFirst (both sets would not fit at once). cur tracks every write that succeeded.
func writeMap[K comparable](m *ebpf.Map, cur, want map[K]uint32, deleteFirst bool) error {
	put := func() error {
		for k, v := range want {
			if old, ok := cur[k]; ok && old == v {
				continue
			}
			if err := m.Put(k, v); err != nil {
				return fmt.Errorf("put %v: %w", k, err)
			}
			cur[k] = v
		}
		return nil
	}
	del := func() error {
		for k := range cur {
			if _, ok := want[k]; ok {
				continue
			}
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete %v: %w", k, err)
			}
			delete(cur, k)
		}
		return nil
	}
	steps := []func() error{put, del}
	if deleteFirst {
		steps = []func() error{del, put}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// RegisterSocket points queue's XSKMAP slot at the AF_XDP socket fd.
func (p *Program) RegisterSocket(queue, fd int) error {
	if queue < 0 || queue >= p.cfg.MaxQueues {
		return fmt.Errorf("register socket on queue %d: outside the XSKMAP (MaxQueues %d)", queue, p.cfg.MaxQueues)
	}
	if err := p.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("register socket on queue %d: %w", queue, err)
	}
	return nil
}

// UnregisterSocket empties queue's XSKMAP slot (frames then pass to the kernel).
func (p *Program) UnregisterSocket(queue int) error {
	if err := p.xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister socket on queue %d: %w", queue, err)
	}
	return nil
}

// Counters returns the per-reason counts summed over CPUs.
func (p *Program) Counters() ([NumReasons]uint64, error) {
	var out [NumReasons]uint64
	for r := Reason(0); r < NumReasons; r++ {
		var per []uint64
		if err := p.counters.Lookup(uint32(r), &per); err != nil {
			return out, fmt.Errorf("read steering counter %s: %w", r, err)
		}
		for _, v := range per {
			out[r] += v
		}
	}
	return out, nil
}

// Attach attaches the program to the interface ifindex in the calling thread's network
// namespace, replacing any program already there (a crashed run's leftover, or asavie's), and
// returns the mode in use. ModeAuto tries native first, then generic. Callers that switch
// namespaces must hold runtime.LockOSThread across the call.
func (p *Program) Attach(ifindex int, mode Mode) (Mode, error) {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return mode, fmt.Errorf("attach steering program to ifindex %d: %w", ifindex, err)
	}
	name := link.Attrs().Name
	if old := link.Attrs().Xdp; old != nil && old.Attached && old.ProgId != uint32(p.progID) {
		oldMode := ModeNative
		if old.AttachMode == nl.XDP_ATTACHED_SKB {
			oldMode = ModeGeneric
		}
		// Same mode: the attach below replaces it atomically. Another mode cannot coexist with
		// ours, so it goes first (frames pass to the kernel meanwhile).
		if mode != ModeAuto && oldMode != mode || old.AttachMode == nl.XDP_ATTACHED_HW || old.AttachMode > nl.XDP_ATTACHED_HW {
			if err := detachAll(link, old.AttachMode); err != nil {
				return mode, fmt.Errorf("attach steering program to %s: remove leftover program %d: %w", name, old.ProgId, err)
			}
		} else if mode == ModeAuto {
			mode = oldMode
		}
		p.log.Info("replacing leftover XDP program", "iface", name, "prog_id", old.ProgId, "mode", oldMode.String())
	}
	tries := []Mode{mode}
	if mode == ModeAuto {
		tries = []Mode{ModeNative, ModeGeneric}
	}
	var errs []error
	for _, m := range tries {
		err := netlink.LinkSetXdpFdWithFlags(link, p.prog.FD(), m.flags())
		if err == nil {
			ns, nerr := netns.Get()
			if nerr != nil {
				ns = netns.None()
			}
			p.mu.Lock()
			if a, ok := p.attached[ifindex]; ok && a.ns.IsOpen() {
				a.ns.Close()
			}
			p.attached[ifindex] = attachment{mode: m, ns: ns}
			p.mu.Unlock()
			p.log.Info("XDP steering program attached", "iface", name, "mode", m.String())
			return m, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m, err))
	}
	return mode, fmt.Errorf("attach steering program to %s: %w", name, errors.Join(errs...))
}

// detachAll removes whatever program is attached in attachMode (an IFLA_XDP_ATTACHED value).
func detachAll(link netlink.Link, attachMode uint32) error {
	switch attachMode {
	case nl.XDP_ATTACHED_SKB:
		return netlink.LinkSetXdpFdWithFlags(link, -1, nl.XDP_FLAGS_SKB_MODE)
	case nl.XDP_ATTACHED_DRV:
		return netlink.LinkSetXdpFdWithFlags(link, -1, nl.XDP_FLAGS_DRV_MODE)
	default:
		var errs []error
		for _, f := range []int{nl.XDP_FLAGS_SKB_MODE, nl.XDP_FLAGS_DRV_MODE, 1 << 3 /* HW */} {
			if err := netlink.LinkSetXdpFdWithFlags(link, -1, f); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 3 {
			return errors.Join(errs...)
		}
		return nil
	}
}

// Detach removes the program from ifindex if it is still ours there (a program someone else
// attached since is left alone). It enters the namespace the interface was attached in.
func (p *Program) Detach(ifindex int) error {
	p.mu.Lock()
	a, ok := p.attached[ifindex]
	delete(p.attached, ifindex)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return p.detach(ifindex, a)
}

func (p *Program) detach(ifindex int, a attachment) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if a.ns.IsOpen() {
		defer a.ns.Close()
		orig, err := netns.Get()
		if err != nil {
			return fmt.Errorf("detach steering program from ifindex %d: current namespace: %w", ifindex, err)
		}
		defer orig.Close()
		if !orig.Equal(a.ns) {
			if err := netns.Set(a.ns); err != nil {
				return fmt.Errorf("detach steering program from ifindex %d: enter namespace: %w", ifindex, err)
			}
			defer netns.Set(orig) //nolint:errcheck // best effort: the thread stays locked until it is restored
		}
	}
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("detach steering program from ifindex %d: %w", ifindex, err)
	}
	if x := link.Attrs().Xdp; x == nil || !x.Attached || x.ProgId != uint32(p.progID) {
		return nil
	}
	if err := netlink.LinkSetXdpFdWithFlags(link, -1, a.mode.flags()); err != nil {
		return fmt.Errorf("detach steering program from %s: %w", link.Attrs().Name, err)
	}
	p.log.Info("XDP steering program detached", "iface", link.Attrs().Name)
	return nil
}

// Close detaches the program from every interface it was attached to and frees it and its maps.
func (p *Program) Close() error {
	p.mu.Lock()
	att := p.attached
	p.attached = map[int]attachment{}
	p.mu.Unlock()
	var errs []error
	for ifindex, a := range att {
		if err := p.detach(ifindex, a); err != nil {
			errs = append(errs, err)
		}
	}
	p.closeObjects()
	return errors.Join(errs...)
}

func (p *Program) closeObjects() {
	if p.prog != nil {
		p.prog.Close()
	}
	for _, m := range []*ebpf.Map{p.xsks, p.front4, p.front6, p.vips, p.ranges4, p.ranges6, p.counters} {
		if m != nil {
			m.Close()
		}
	}
}
