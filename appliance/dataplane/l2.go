package dataplane

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
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

// l2Table maps IPv4 next hops to MACs: entries learned from frames (a client's source MAC when
// its flow starts, which is its gateway's MAC when it is routed) and from the NeighborSource.
// Workers keep direct-mapped caches in front of it and drop them when gen changes.
type l2Table struct {
	mu  sync.RWMutex
	m   map[uint32][6]byte
	gen atomic.Uint32
	src NeighborSource
}

func newL2Table(src NeighborSource) *l2Table {
	return &l2Table{m: make(map[uint32][6]byte), src: src}
}

// learn records ip → mac, bumping the generation when an existing entry changes.
func (t *l2Table) learn(ip uint32, mac [6]byte) {
	t.mu.RLock()
	old, ok := t.m[ip]
	t.mu.RUnlock()
	if ok && old == mac {
		return
	}
	t.mu.Lock()
	t.m[ip] = mac
	t.mu.Unlock()
	if ok {
		t.gen.Add(1)
	}
}

// lookup is the slow path behind a worker's cache.
func (t *l2Table) lookup(ip uint32) ([6]byte, bool) {
	t.mu.RLock()
	mac, ok := t.m[ip]
	t.mu.RUnlock()
	if ok {
		return mac, true
	}
	if t.src != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], ip)
		return t.src.Lookup(netip.AddrFrom4(b))
	}
	return [6]byte{}, false
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
	ip  uint32
	gen uint32
	ok  bool
	mac [6]byte
}

func (c *neighCache) get(t *l2Table, ip uint32, gen uint32) ([6]byte, bool) {
	s := &c.slots[(ip*2654435761)>>22]
	if s.ok && s.ip == ip && s.gen == gen {
		return s.mac, true
	}
	mac, ok := t.lookup(ip)
	if !ok {
		return mac, false
	}
	*s = neighSlot{ip: ip, gen: gen, ok: true, mac: mac}
	return mac, true
}
