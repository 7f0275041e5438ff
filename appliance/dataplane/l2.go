package dataplane

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// NeighborSource resolves next-hop MACs from outside the data plane (the kernel's neighbour
// table through appliance/neigh). Called only on a neighbour-cache miss, never per packet.
type NeighborSource interface {
	// Lookup returns the MAC of ip if it is known and usable.
	Lookup(ip netip.Addr) ([6]byte, bool)
	// Probe asks for ip to be resolved; it must not block.
	Probe(ip netip.Addr)
	// Generation changes whenever a MAC it returned may have changed (read once per batch).
	Generation() uint64
}

// Sizes of the table of MACs learned from clients' frames.
const (
	// learnedSlots is how many client MACs the data plane remembers (fixed; a new client
	// evicts the one in its slot).
	learnedSlots = 4096
	// DefaultLearnedMACMaxAge is how long a learned client MAC is used without a new flow
	// from that client refreshing it.
	DefaultLearnedMACMaxAge = 5 * time.Minute
)

// l2Table maps IPv4 next hops to MACs. In order of trust:
//
//   - static: entries given on the control path (DataPlane.Learn);
//   - the NeighborSource (the kernel's neighbour table);
//   - learned: a client's source MAC, taken from the first frame of a flow the client opened
//     on an external-role port, so that the first reply needs no ARP round trip. A learned
//     entry is used only for frames leaving through the port it was learned on, ages out after
//     maxAge without refresh, lives in a fixed-size table, and is never taken for an address
//     the plan knows (cluster CIDRs, node addresses, VIPs, ClusterIPs, backends): a spoofed
//     SYN cannot redirect traffic for those.
//
// Workers keep direct-mapped caches in front of it and drop them when gen changes.
type l2Table struct {
	mu      sync.RWMutex
	static  map[uint32][6]byte
	learned [learnedSlots]learnedMAC // guarded by mu
	gen     atomic.Uint32
	src     NeighborSource
	maxAge  int64 // ns
}

// learnedMAC is one learned client MAC: usable on port until expires (ns).
type learnedMAC struct {
	ip      uint32
	port    uint16
	mac     [6]byte
	expires int64
}

func newL2Table(src NeighborSource, maxAge time.Duration) *l2Table {
	return &l2Table{static: make(map[uint32][6]byte), src: src, maxAge: int64(maxAge)}
}

// set records a trusted ip → mac (control path), bumping the generation when it changes.
func (t *l2Table) set(ip uint32, mac [6]byte) {
	t.mu.Lock()
	old, ok := t.static[ip]
	t.static[ip] = mac
	t.mu.Unlock()
	if ok && old != mac {
		t.gen.Add(1)
	}
}

func learnedSlot(ip uint32) int { return int((ip * 2654435761) >> 20 % learnedSlots) }

// learn records that client ip was seen behind mac on port at now. The caller has checked that
// the port is external and ip is no address the plan knows.
func (t *l2Table) learn(ip uint32, port int, mac [6]byte, now int64) {
	s := learnedSlot(ip)
	exp := now + t.maxAge
	t.mu.RLock()
	e := t.learned[s]
	t.mu.RUnlock()
	same := e.ip == ip && e.port == uint16(port) && e.mac == mac && e.expires > now
	// Refresh at most once per second of age: a busy client does not take the write lock on
	// every new flow.
	if same && exp-e.expires < int64(time.Second) {
		return
	}
	t.mu.Lock()
	t.learned[s] = learnedMAC{ip: ip, port: uint16(port), mac: mac, expires: exp}
	t.mu.Unlock()
	// Only a changed MAC or port of the same client invalidates the workers' caches: a slot
	// taken over by another client leaves cached copies of the old one valid until they expire,
	// so that many new clients cannot make every worker miss its cache.
	if !same && e.ip == ip && e.expires > now {
		t.gen.Add(1)
	}
}

// lookup is the slow path behind a worker's cache: the MAC of ip for a frame leaving through
// port out at now, and until when it may be used (0: until the generation changes).
func (t *l2Table) lookup(ip uint32, out int, now int64) (mac [6]byte, expires int64, ok bool) {
	t.mu.RLock()
	mac, ok = t.static[ip]
	t.mu.RUnlock()
	if ok {
		return mac, 0, true
	}
	if t.src != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], ip)
		if mac, ok = t.src.Lookup(netip.AddrFrom4(b)); ok {
			return mac, 0, true
		}
	}
	t.mu.RLock()
	e := t.learned[learnedSlot(ip)]
	t.mu.RUnlock()
	if e.ip == ip && int(e.port) == out && e.expires > now {
		return e.mac, e.expires, true
	}
	return [6]byte{}, 0, false
}

// current is the cache generation a batch runs with: learned changes plus the neighbour
// source's own generation, so a MAC that changes in the kernel's table reaches the workers.
func (t *l2Table) current() uint32 {
	g := t.gen.Load()
	if t.src != nil {
		g += uint32(t.src.Generation())
	}
	return g
}

func (t *l2Table) probe(ip uint32) {
	if t.src != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], ip)
		t.src.Probe(netip.AddrFrom4(b))
	}
}

// neighCache is a worker's direct-mapped cache of l2Table.
type neighCache struct {
	slots [1024]neighSlot
}

type neighSlot struct {
	ip      uint32
	gen     uint32
	ok      bool
	port    int32 // the port a learned entry is restricted to; -1: any
	expires int64 // a learned entry's end of life; 0: none
	mac     [6]byte
}

func (c *neighCache) get(t *l2Table, ip uint32, out int, gen uint32, now int64) ([6]byte, bool) {
	s := &c.slots[(ip*2654435761)>>22]
	if s.ok && s.ip == ip && s.gen == gen && (s.port < 0 || int(s.port) == out) && (s.expires == 0 || now < s.expires) {
		return s.mac, true
	}
	mac, exp, ok := t.lookup(ip, out, now)
	if !ok {
		return mac, false
	}
	port := int32(-1)
	if exp != 0 {
		port = int32(out)
	}
	*s = neighSlot{ip: ip, gen: gen, ok: true, port: port, expires: exp, mac: mac}
	return mac, true
}
