package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// Table is the connection-tracking table of one node: an IPv4 and an IPv6 flow table, each a
// preallocated, pointer-free block of fixed capacity. All methods are safe for concurrent use by
// any number of goroutines (see doc.go for what each costs).
type Table struct {
	v4 *flowTable[key4]
	v6 *flowTable[key6]

	loose     bool
	portLo    uint32
	portN     uint32
	attempts  int
	evictScan int
	timeouts  [numStates]uint32

	stats tableStats
}

type tableStats struct {
	inserted, exists, full, noPort, clash, invalid atomic.Uint64
	evicted, expired, imported, importSkipped      atomic.Uint64
}

// Stats are cumulative counters of a Table.
type Stats struct {
	Live          int    // flows in the table now (both families)
	Inserted      uint64 // flows inserted (including imported ones)
	Exists        uint64 // Insert calls that found the flow already present
	Full          uint64 // new flows refused: no free or evictable entry (or index region full)
	NoPort        uint64 // new flows refused: no free SNAT port after SNATAttempts tries
	Clash         uint64 // new flows refused: the fixed reply key (no SNAT) is in use by another flow
	Invalid       uint64 // Insert calls with a key or first packet that cannot start a flow
	Evicted       uint64 // unassured or expired entries removed to make room
	Expired       uint64 // entries removed by Expire
	Imported      uint64 // records inserted by Import
	ImportSkipped uint64 // well-formed records Import did not insert (present, clash, full)
	SNATReclaimed uint64 // flows that never saw a reply and gave up their SNAT port to a new flow (range full)
}

// InsertResult tells what Insert did.
type InsertResult uint8

const (
	// Inserted: a new flow was added; the handle refers to it (original direction).
	Inserted InsertResult = iota
	// InsertExists: the key is already live; the handle refers to the existing flow.
	InsertExists
	// InsertFull: no free entry and none evictable within EvictScanEntries (counted in Stats.Full).
	InsertFull
	// InsertNoPort: every SNAT port tried would give a reply key that is in use.
	InsertNoPort
	// InsertClash: the reply key of a flow without SNAT is in use by another flow.
	InsertClash
	// InsertInvalid: unsupported family or protocol, bad flags, or a TCP first segment that
	// cannot open a connection (RST, SYN-ACK, or non-SYN without loose pickup).
	InsertInvalid
)

var insertResultNames = [...]string{"inserted", "exists", "full", "no-port", "clash", "invalid"}

func (r InsertResult) String() string {
	if int(r) < len(insertResultNames) {
		return insertResultNames[r]
	}
	return fmt.Sprintf("InsertResult(%d)", uint8(r))
}

// Handle names one direction of a live flow. It carries the entry's generation, so using a
// handle of a flow that has since been deleted fails instead of touching another flow.
type Handle struct {
	idx uint32
	gen uint16
	dir Dir
	fam packet.Family
}

// Dir returns which direction of the flow the looked-up key matched.
func (h Handle) Dir() Dir { return h.dir }

// Family returns the flow's address family.
func (h Handle) Family() packet.Family { return h.fam }

// Index returns the flow's slot in its family's entry array (stable while the flow lives).
func (h Handle) Index() uint32 { return h.idx }

func handleOf(ref uint32, gen uint16, fam packet.Family) Handle {
	return Handle{idx: refIndex(ref), gen: gen, dir: Dir(ref & 1), fam: fam}
}

// New allocates a table with the capacity and timeouts of cfg.
func New(cfg Config) (*Table, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("conntrack config: %w", err)
	}
	seed := cfg.HashSeed
	if seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("conntrack hash seed: %w", err)
		}
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	t := &Table{
		loose:     cfg.TCPLoosePickup,
		portLo:    uint32(cfg.SNATPortMin),
		portN:     uint32(cfg.SNATPortMax) - uint32(cfg.SNATPortMin) + 1,
		attempts:  cfg.SNATAttempts,
		evictScan: cfg.EvictScanEntries,
	}
	for s, d := range map[State]time.Duration{
		TCPSynSent: cfg.TCPSynSentTimeout, TCPSynRecv: cfg.TCPSynRecvTimeout,
		TCPEstablished: cfg.TCPEstablishedTimeout, TCPFinWait: cfg.TCPFinWaitTimeout,
		TCPCloseWait: cfg.TCPCloseWaitTimeout, TCPLastAck: cfg.TCPLastAckTimeout,
		TCPTimeWait: cfg.TCPTimeWaitTimeout, TCPClose: cfg.TCPCloseTimeout,
		UDPUnreplied: cfg.UDPTimeout, UDPStream: cfg.UDPStreamTimeout, ICMPEcho: cfg.ICMPTimeout,
	} {
		t.timeouts[s] = durationTicks(d)
	}
	twReuse := uint32(0)
	if cfg.TCPTimeWaitReuseAfter > 0 {
		twReuse = max(1, durationTicks(cfg.TCPTimeWaitReuseAfter))
	}
	unrepliedTicks := durationTicks(cfg.TCPUnrepliedTimeout)
	if cfg.MaxEntries > 0 {
		t.v4 = newFlowTable[key4](cfg.MaxEntries, seed, t.timeouts)
		t.v4.twReuse = twReuse
		t.v4.unreplied = unrepliedTicks
	}
	if cfg.MaxEntriesIPv6 > 0 {
		t.v6 = newFlowTable[key6](cfg.MaxEntriesIPv6, seed^hashM2, t.timeouts)
		t.v6.twReuse = twReuse
		t.v6.unreplied = unrepliedTicks
	}
	return t, nil
}

// Lookup finds the flow that key k (either direction) belongs to. An expired flow is a miss
// (lazy expiry; the next Insert or Expire removes it). It takes no lock and does not allocate.
func (t *Table) Lookup(k *packet.FlowKey, now int64) (Handle, bool) {
	tick := toTick(now)
	switch k.Family {
	case packet.FamilyIPv4:
		if t.v4 == nil {
			return Handle{}, false
		}
		pk := packKey4(k)
		ref, m, ok := t.v4.find(&pk, hashKey(&pk, t.v4.seed))
		if !ok || t.v4.expired(m, tick) {
			return Handle{}, false
		}
		return handleOf(ref, metaGen(m), packet.FamilyIPv4), true
	case packet.FamilyIPv6:
		if t.v6 == nil {
			return Handle{}, false
		}
		pk := packKey6(k)
		ref, m, ok := t.v6.find(&pk, hashKey(&pk, t.v6.seed))
		if !ok || t.v6.expired(m, tick) {
			return Handle{}, false
		}
		return handleOf(ref, metaGen(m), packet.FamilyIPv6), true
	}
	return Handle{}, false
}

// NewFlow describes a flow to insert: the first packet's key and the data plane's decision.
type NewFlow struct {
	// Orig is the key of the first packet, client → frontend (VIP, ClusterIP or node IP:NodePort).
	Orig packet.FlowKey
	// BackendAddr is the chosen endpoint's address (same family as Orig).
	BackendAddr [16]byte
	// BackendPort is the endpoint's target port (ignored for ICMP echo, which keeps its identifier).
	BackendPort uint16
	// SNATAddr is the source address the backend sees; ignored with FlagNoSNAT.
	SNATAddr [16]byte
	// ServiceID and BackendID are the data plane's small integer names for per-Service counters.
	ServiceID, BackendID uint32
	// Flags is a combination of FlagNoSNAT and FlagTerminating.
	Flags uint8
	// TCPFlags are the first packet's TCP flags (0 for other protocols).
	TCPFlags uint8
	// IngressIfindex and EgressIfindex are the interfaces of the original direction.
	IngressIfindex, EgressIfindex uint16
	// SNATPortMin and SNATPortMax, when SNATPortMax is set, replace the table's SNAT port range
	// for this flow: an address no local socket uses (a floating SNAT address such as a VIP)
	// can hand out every port.
	SNATPortMin, SNATPortMax uint16
}

// Insert adds a flow with both directions. Without FlagNoSNAT it picks a SNAT port so that the
// reply key backend:port → SNATAddr:port is not in use by any live flow. It does not allocate.
// On InsertExists the returned handle refers to the live flow that owns f.Orig.
func (t *Table) Insert(f *NewFlow, now int64) (Handle, InsertResult) {
	h, res := t.insert(f, now)
	t.count(res)
	return h, res
}

func (t *Table) count(res InsertResult) {
	switch res {
	case Inserted:
		t.stats.inserted.Add(1)
	case InsertExists:
		t.stats.exists.Add(1)
	case InsertFull:
		t.stats.full.Add(1)
	case InsertNoPort:
		t.stats.noPort.Add(1)
	case InsertClash:
		t.stats.clash.Add(1)
	case InsertInvalid:
		t.stats.invalid.Add(1)
	}
}

func (t *Table) insert(f *NewFlow, now int64) (Handle, InsertResult) {
	o := &f.Orig
	if f.Flags&^userFlags != 0 {
		return Handle{}, InsertInvalid
	}
	icmp := false
	switch {
	case o.Proto == protoTCP || o.Proto == protoUDP:
	case o.Proto == protoICMP && o.Family == packet.FamilyIPv4, o.Proto == protoICMPv6 && o.Family == packet.FamilyIPv6:
		icmp = true
	default:
		return Handle{}, InsertInvalid
	}
	st, ok := initialState(o.Proto, f.TCPFlags, t.loose)
	if !ok {
		return Handle{}, InsertInvalid
	}
	reply := packet.FlowKey{
		SrcAddr: f.BackendAddr, DstAddr: f.SNATAddr,
		SrcPort: f.BackendPort, Proto: o.Proto, Family: o.Family,
	}
	ne := newEntry{
		ids:      uint64(f.ServiceID)<<32 | uint64(f.BackendID),
		ifidx:    uint32(f.IngressIfindex)<<16 | uint32(f.EgressIfindex),
		state:    st,
		tick:     toTick(now),
		portLo:   t.portLo,
		portN:    t.portN,
		icmp:     icmp,
		attempts: t.attempts,
		evict:    t.evictScan,
	}
	// Apply the first packet itself, e.g. a loose pickup that carries FIN.
	ne.state, ne.flags = transition(st, f.Flags, DirOriginal, f.TCPFlags)
	if f.SNATPortMax != 0 {
		if f.SNATPortMin == 0 || f.SNATPortMin > f.SNATPortMax {
			return Handle{}, InsertInvalid
		}
		ne.portLo, ne.portN = uint32(f.SNATPortMin), uint32(f.SNATPortMax)-uint32(f.SNATPortMin)+1
	}
	if icmp {
		reply.SrcPort = o.SrcPort
	}
	if f.Flags&FlagNoSNAT != 0 {
		reply.DstAddr = o.SrcAddr
		reply.DstPort = o.SrcPort
		ne.portN = 0
	}
	return t.insertKeys(o, &reply, &ne)
}

func (t *Table) insertKeys(o, reply *packet.FlowKey, ne *newEntry) (Handle, InsertResult) {
	var (
		ref     uint32
		gen     uint16
		res     InsertResult
		evicted bool
	)
	switch o.Family {
	case packet.FamilyIPv4:
		if t.v4 == nil {
			return Handle{}, InsertInvalid
		}
		ko, kr := packKey4(o), packKey4(reply)
		ref, gen, res, evicted = t.v4.insert(&ko, &kr, ne)
	case packet.FamilyIPv6:
		if t.v6 == nil {
			return Handle{}, InsertInvalid
		}
		ko, kr := packKey6(o), packKey6(reply)
		ref, gen, res, evicted = t.v6.insert(&ko, &kr, ne)
	default:
		return Handle{}, InsertInvalid
	}
	if evicted {
		t.stats.evicted.Add(1)
	}
	if res != Inserted && res != InsertExists {
		return Handle{}, res
	}
	return handleOf(ref, gen, o.Family), res
}

// Update applies one packet of the handle's direction to its flow: TCP state from tcpFlags
// (0 for UDP/ICMP), last-seen time, packet counter. It returns false when the flow has been
// deleted since the handle was made (treat the packet as a miss). Lock-free, no allocation.
func (t *Table) Update(h Handle, tcpFlags uint8, now int64) bool {
	switch h.fam {
	case packet.FamilyIPv4:
		return t.v4 != nil && int(h.idx) < len(t.v4.entries) && t.v4.update(h.idx, h.gen, h.dir, tcpFlags, toTick(now))
	case packet.FamilyIPv6:
		return t.v6 != nil && int(h.idx) < len(t.v6.entries) && t.v6.update(h.idx, h.gen, h.dir, tcpFlags, toTick(now))
	}
	return false
}

// Translate writes into out the key a packet of the handle's direction must carry after
// rewriting: for DirOriginal SNAT address:port → backend, for DirReply frontend → client. It
// returns false when the flow has been deleted since the handle was made.
func (t *Table) Translate(h Handle, out *packet.FlowKey) bool {
	switch h.fam {
	case packet.FamilyIPv4:
		if t.v4 == nil || int(h.idx) >= len(t.v4.entries) {
			return false
		}
		e := &t.v4.entries[h.idx]
		src := &e.reply
		if h.dir == DirReply {
			src = &e.orig
		}
		k := loadKey(src)
		if metaGen(e.meta.Load()) != h.gen {
			return false
		}
		unpackKey4(&k, out)
	case packet.FamilyIPv6:
		if t.v6 == nil || int(h.idx) >= len(t.v6.entries) {
			return false
		}
		e := &t.v6.entries[h.idx]
		src := &e.reply
		if h.dir == DirReply {
			src = &e.orig
		}
		k := loadKey(src)
		if metaGen(e.meta.Load()) != h.gen {
			return false
		}
		unpackKey6(&k, out)
	default:
		return false
	}
	out.SrcAddr, out.DstAddr = out.DstAddr, out.SrcAddr
	out.SrcPort, out.DstPort = out.DstPort, out.SrcPort
	return true
}

// FlowMeta is the small per-flow metadata the data plane reads on a hit.
type FlowMeta struct {
	ServiceID, BackendID          uint32
	IngressIfindex, EgressIfindex uint16 // of the original direction
	Flags                         uint8  // FlagNoSNAT, FlagTerminating (other bits internal)
	State                         State
}

// Meta returns the flow's metadata; false when the flow has been deleted since the handle was made.
func (t *Table) Meta(h Handle) (FlowMeta, bool) {
	switch h.fam {
	case packet.FamilyIPv4:
		if t.v4 != nil && int(h.idx) < len(t.v4.entries) {
			return metaOf(&t.v4.entries[h.idx], h.gen)
		}
	case packet.FamilyIPv6:
		if t.v6 != nil && int(h.idx) < len(t.v6.entries) {
			return metaOf(&t.v6.entries[h.idx], h.gen)
		}
	}
	return FlowMeta{}, false
}

func metaOf[K keyWords](e *entry[K], gen uint16) (FlowMeta, bool) {
	ids, ifx := e.ids.Load(), e.ifidx.Load()
	m := e.meta.Load()
	if metaGen(m) != gen || !metaLive(m) {
		return FlowMeta{}, false
	}
	return FlowMeta{
		ServiceID: uint32(ids >> 32), BackendID: uint32(ids),
		IngressIfindex: uint16(ifx >> 16), EgressIfindex: uint16(ifx),
		Flags: metaFlags(m) & userFlags, State: metaState(m),
	}, true
}

// Delete removes the flow now (e.g. its backend was removed); false if it was already gone.
func (t *Table) Delete(h Handle) bool {
	switch h.fam {
	case packet.FamilyIPv4:
		return t.v4 != nil && int(h.idx) < len(t.v4.entries) && t.v4.remove(h.idx, h.gen, removeAny, 0)
	case packet.FamilyIPv6:
		return t.v6 != nil && int(h.idx) < len(t.v6.entries) && t.v6.remove(h.idx, h.gen, removeAny, 0)
	}
	return false
}

// Expire examines the next budget entries of each family (a cursor shared by all callers walks
// the whole table round-robin) and deletes those idle longer than their state's timeout. Workers
// call it once per batch with a small budget; it never sweeps the whole table at once. It returns
// how many flows it deleted.
func (t *Table) Expire(now int64, budget int) int {
	tick, n := toTick(now), 0
	if t.v4 != nil {
		n += t.v4.expire(tick, budget)
	}
	if t.v6 != nil {
		n += t.v6.expire(tick, budget)
	}
	if n > 0 {
		t.stats.expired.Add(uint64(n))
	}
	return n
}

// Len returns the number of live flows (both families; expired ones count until removed).
func (t *Table) Len() int {
	n := int64(0)
	if t.v4 != nil {
		n += t.v4.live.Load()
	}
	if t.v6 != nil {
		n += t.v6.live.Load()
	}
	return int(n)
}

// MemoryBytes returns the bytes New allocated for entries, free lists, index and shards.
func (t *Table) MemoryBytes() int64 {
	n := int64(0)
	if t.v4 != nil {
		n += t.v4.memoryBytes()
	}
	if t.v6 != nil {
		n += t.v6.memoryBytes()
	}
	return n
}

// Stats returns a snapshot of the table's counters.
func (t *Table) Stats() Stats {
	s := &t.stats
	return Stats{
		Live: t.Len(), Inserted: s.inserted.Load(), Exists: s.exists.Load(), Full: s.full.Load(),
		NoPort: s.noPort.Load(), Clash: s.clash.Load(), Invalid: s.invalid.Load(),
		Evicted: s.evicted.Load(), Expired: s.expired.Load(),
		Imported: s.imported.Load(), ImportSkipped: s.importSkipped.Load(),
		SNATReclaimed: t.reclaimed(),
	}
}

func (t *Table) reclaimed() uint64 {
	var n uint64
	if t.v4 != nil {
		n += t.v4.reclaimed.Load()
	}
	if t.v6 != nil {
		n += t.v6.reclaimed.Load()
	}
	return n
}

// Timeout returns the idle timeout of a state.
func (t *Table) Timeout(s State) time.Duration {
	return time.Duration(t.timeouts[s%numStates]) << tickShift
}

// Flow is a copy of one flow for the control plane (admin API, tests).
type Flow struct {
	Handle                        Handle
	Orig, Reply                   packet.FlowKey
	State                         State
	Flags                         uint8 // FlagNoSNAT, FlagTerminating
	Assured                       bool  // seen both ways (TCP: handshake done); never evicted
	ServiceID, BackendID          uint32
	IngressIfindex, EgressIfindex uint16
	Packets                       [2]uint32 // per direction, wrapping
	Idle                          time.Duration
	ExpiresIn                     time.Duration // 0 or negative: expired, awaiting removal
}

// Flow returns a copy of the handle's flow; false if it has been deleted.
func (t *Table) Flow(h Handle, now int64) (Flow, bool) {
	switch h.fam {
	case packet.FamilyIPv4:
		if t.v4 != nil && int(h.idx) < len(t.v4.entries) {
			return flowOf(t.v4, h, now, unpackKey4)
		}
	case packet.FamilyIPv6:
		if t.v6 != nil && int(h.idx) < len(t.v6.entries) {
			return flowOf(t.v6, h, now, unpackKey6)
		}
	}
	return Flow{}, false
}

func flowOf[K keyWords](ft *flowTable[K], h Handle, now int64, unpack func(*K, *packet.FlowKey)) (Flow, bool) {
	e := &ft.entries[h.idx]
	ko, kr := loadKey(&e.orig), loadKey(&e.reply)
	meta, ok := metaOf(e, h.gen)
	if !ok {
		return Flow{}, false
	}
	m := e.meta.Load()
	if metaGen(m) != h.gen {
		return Flow{}, false
	}
	f := Flow{
		Handle: h, State: meta.State, Flags: meta.Flags, Assured: metaFlags(m)&flagAssured != 0,
		ServiceID: meta.ServiceID, BackendID: meta.BackendID,
		IngressIfindex: meta.IngressIfindex, EgressIfindex: meta.EgressIfindex,
		Packets: [2]uint32{e.pkts[0].Load(), e.pkts[1].Load()},
	}
	unpack(&ko, &f.Orig)
	unpack(&kr, &f.Reply)
	idle := int32(toTick(now) - metaLast(m))
	f.Idle = time.Duration(idle) << tickShift
	f.ExpiresIn = time.Duration(int64(ft.timeout(m))-int64(idle)) << tickShift
	return f, true
}

// Range calls fn for every live flow until fn returns false. It walks the whole table: control
// path only (admin API), never from a packet worker.
func (t *Table) Range(now int64, fn func(*Flow) bool) {
	for _, fam := range []packet.Family{packet.FamilyIPv4, packet.FamilyIPv6} {
		n := 0
		switch {
		case fam == packet.FamilyIPv4 && t.v4 != nil:
			n = len(t.v4.entries)
		case fam == packet.FamilyIPv6 && t.v6 != nil:
			n = len(t.v6.entries)
		}
		for i := 0; i < n; i++ {
			var m uint64
			if fam == packet.FamilyIPv4 {
				m = t.v4.entries[i].meta.Load()
			} else {
				m = t.v6.entries[i].meta.Load()
			}
			if !metaLive(m) {
				continue
			}
			f, ok := t.Flow(Handle{idx: uint32(i), gen: metaGen(m), fam: fam}, now)
			if ok && !fn(&f) {
				return
			}
		}
	}
}
