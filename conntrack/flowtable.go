package conntrack

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one flow: both directions' keys and everything the data plane needs. It holds no
// pointers, so the GC never scans the entry array. Fields read concurrently with writers are
// accessed only with sync/atomic. An IPv4 entry is 64 bytes (one cache line), an IPv6 entry 112.
type entry[K keyWords] struct {
	// meta is gen(16) | flags(8) | state(8) | lastSeen tick(32). gen is odd while the entry is
	// live and even while it is free; it changes on every insert and delete, so a Handle that
	// carries it detects reuse. Updates are CAS loops on the whole word.
	meta    atomic.Uint64
	orig    K             // original direction key (client → frontend), atomic words
	reply   K             // reply direction key (backend → SNAT address), atomic words
	ids     atomic.Uint64 // ServiceID<<32 | BackendID
	ifidx   atomic.Uint32 // ingress ifindex<<16 | egress ifindex
	changed atomic.Uint32 // tick of insert or last state change (for export of changed flows)
	pkts    [2]atomic.Uint32
}

func makeMeta(gen uint16, fl uint8, s State, last uint32) uint64 {
	return uint64(gen)<<48 | uint64(fl)<<40 | uint64(s)<<32 | uint64(last)
}
func metaGen(m uint64) uint16    { return uint16(m >> 48) }
func metaFlags(m uint64) uint8   { return uint8(m >> 40) }
func metaState(m uint64) State   { return State(m >> 32) }
func metaLast(m uint64) uint32   { return uint32(m) }
func metaLive(m uint64) bool     { return metaGen(m)&1 == 1 }
func refIndex(ref uint32) uint32 { return ref>>1 - 1 }
func makeRef(idx uint32, d Dir) uint32 {
	return (idx+1)<<1 | uint32(d)
}

// shard guards one region of the hash index. Writers (insert, delete) hold mu; a delete moves
// slots (backward shift) and makes seq odd while doing so, so lock-free readers retry.
type shard struct {
	mu    sync.Mutex
	seq   atomic.Uint32
	count atomic.Int32 // used slots, written under mu
	_     [48]byte     // keep shards on separate cache lines
}

// flowTable is the table of one address family. See doc.go for the concurrency model.
type flowTable[K keyWords] struct {
	entries  []entry[K]
	freeNext []uint32      // free list links, 1-based (0 ends the list), atomic
	freeHead atomic.Uint64 // ABA tag<<32 | first free index+1

	// slots is the open-addressing index (linear probing inside a shard): 0 is empty, otherwise
	// hash>>32 in the high half and makeRef(idx, dir) in the low half. The high half also gives
	// the slot's home position and shard, so deletes can shift slots without rehashing keys.
	slots      []uint64
	shards     []shard
	slotBits   uint32
	slotMask   uint32
	shardMask  uint32
	shardLimit int32

	seed     uint64
	timeouts [numStates]uint32 // idle timeout per state, ticks
	// unreplied caps the timeout of a TCP flow that has seen no reply, ticks.
	unreplied uint32
	twReuse   uint32 // ticks a closed TCP flow idles before a SYN may take its tuple; 0: never

	live         atomic.Int64
	reclaimed    atomic.Uint64 // unreplied flows that gave up their SNAT port to a new flow
	expireCursor atomic.Uint32
	evictCursor  atomic.Uint32
}

func newFlowTable[K keyWords](n int, seed uint64, timeouts [numStates]uint32) *flowTable[K] {
	totalBits := uint32(bits.Len64(uint64(n)*3 - 1)) // slots >= 1.5 * 2 keys per flow
	if totalBits < 10 {
		totalBits = 10
	}
	shardBits := uint32(0)
	if totalBits > 10 {
		shardBits = min(totalBits-10, 12)
	}
	t := &flowTable[K]{
		entries:  make([]entry[K], n),
		freeNext: make([]uint32, n),
		slots:    make([]uint64, 1<<totalBits),
		shards:   make([]shard, 1<<shardBits),
		slotBits: totalBits - shardBits,
		seed:     seed,
		timeouts: timeouts,
	}
	adviseHugePages(t.entries)
	adviseHugePages(t.freeNext)
	adviseHugePages(t.slots)
	populate(t.entries)
	populate(t.slots)
	t.slotMask = 1<<t.slotBits - 1
	t.shardMask = 1<<shardBits - 1
	perShard := int32(1) << t.slotBits
	t.shardLimit = perShard - perShard/8
	for i := range t.freeNext {
		t.freeNext[i] = uint32(i + 2)
	}
	t.freeNext[n-1] = 0
	t.freeHead.Store(1)
	return t
}

func (t *flowTable[K]) shardOf(h uint64) uint32 {
	return uint32(h>>32) >> t.slotBits & t.shardMask
}

// find looks a key up without locks. It returns the slot's ref and the entry's meta word as read
// while the key matched.
func (t *flowTable[K]) find(k *K, h uint64) (ref uint32, m uint64, ok bool) {
	hi := uint32(h >> 32)
	si := hi >> t.slotBits & t.shardMask
	sh := &t.shards[si]
	base := si << t.slotBits
	for spins := 0; ; spins++ {
		s1 := sh.seq.Load()
		if s1&1 == 0 {
			ref, m, ok = t.probe(k, hi, base)
			if sh.seq.Load() == s1 {
				return ref, m, ok
			}
		}
		if spins&63 == 63 {
			runtime.Gosched()
		}
	}
}

func (t *flowTable[K]) probe(k *K, hi, base uint32) (uint32, uint64, bool) {
	pos := hi & t.slotMask
	for n := uint32(0); n <= t.slotMask; n++ {
		v := atomic.LoadUint64(&t.slots[base+pos])
		if v == 0 {
			return 0, 0, false
		}
		if uint32(v>>32) == hi {
			ref := uint32(v)
			e := &t.entries[refIndex(ref)]
			m := e.meta.Load()
			stored := &e.orig
			if ref&1 == 1 {
				stored = &e.reply
			}
			if metaLive(m) && keyEqual(stored, k) && metaGen(e.meta.Load()) == metaGen(m) {
				return ref, m, true
			}
		}
		pos = (pos + 1) & t.slotMask
	}
	return 0, 0, false
}

func keyEqual[K keyWords](stored, k *K) bool {
	for i := 0; i < len(*k); i++ {
		if atomic.LoadUint64(&(*stored)[i]) != (*k)[i] {
			return false
		}
	}
	return true
}

func loadKey[K keyWords](stored *K) K {
	var k K
	for i := 0; i < len(k); i++ {
		k[i] = atomic.LoadUint64(&(*stored)[i])
	}
	return k
}

func storeKey[K keyWords](stored, k *K) {
	for i := 0; i < len(*k); i++ {
		atomic.StoreUint64(&(*stored)[i], (*k)[i])
	}
}

func (t *flowTable[K]) expired(m uint64, tick uint32) bool {
	return int32(tick-metaLast(m)) > int32(t.timeout(m))
}

// timeout is the idle timeout of a flow in ticks: its state's, capped at the unreplied timeout
// for a TCP flow past SYN_SENT that has never seen a reply (a loose pickup). SYN_SENT keeps its
// own, already short, timeout.
func (t *flowTable[K]) timeout(m uint64) uint32 {
	s := metaState(m) % numStates
	to := t.timeouts[s]
	if s.isTCP() && s != TCPSynSent && metaFlags(m)&flagSeenReply == 0 && to > t.unreplied {
		return t.unreplied
	}
	return to
}

// reclaimable reports whether a live flow may give up its SNAT port to a new flow when the
// range is full: it has never seen a packet from its backend, is not assured, and has been idle
// for at least reclaimGraceTicks, so that a handshake in flight is not cut short by a flood.
func reclaimable(m uint64, tick uint32) bool {
	return metaFlags(m)&(flagSeenReply|flagAssured) == 0 && int32(tick-metaLast(m)) >= reclaimGraceTicks
}

// reclaimGraceTicks is one second: far above a backend's answer time on a LAN.
const reclaimGraceTicks = int32(time.Second>>tickShift) + 1

func (t *flowTable[K]) evictable(m uint64, tick uint32) bool {
	return metaFlags(m)&flagAssured == 0 || t.expired(m, tick)
}

func (t *flowTable[K]) lock2(a, b uint32) {
	if a == b {
		t.shards[a].mu.Lock()
		return
	}
	if a > b {
		a, b = b, a
	}
	t.shards[a].mu.Lock()
	t.shards[b].mu.Lock()
}

func (t *flowTable[K]) unlock2(a, b uint32) {
	t.shards[a].mu.Unlock()
	if a != b {
		t.shards[b].mu.Unlock()
	}
}

// insertSlot adds a slot; the caller holds the shard's lock. Filling an empty slot needs no
// seqlock bump: readers either see it or not, and nothing moves.
func (t *flowTable[K]) insertSlot(h uint64, ref uint32) {
	hi := uint32(h >> 32)
	si := hi >> t.slotBits & t.shardMask
	base := si << t.slotBits
	pos := hi & t.slotMask
	for atomic.LoadUint64(&t.slots[base+pos]) != 0 {
		pos = (pos + 1) & t.slotMask
	}
	atomic.StoreUint64(&t.slots[base+pos], uint64(hi)<<32|uint64(ref))
	t.shards[si].count.Add(1)
}

// removeSlot deletes the slot holding ref by backward shifting (no tombstones, so probe lengths
// never degrade); the caller holds the shard's lock.
func (t *flowTable[K]) removeSlot(h uint64, ref uint32) {
	hi := uint32(h >> 32)
	si := hi >> t.slotBits & t.shardMask
	sh := &t.shards[si]
	base := si << t.slotBits
	i := hi & t.slotMask
	for n := uint32(0); ; n++ {
		v := atomic.LoadUint64(&t.slots[base+i])
		if uint32(v) == ref {
			break
		}
		if v == 0 || n > t.slotMask {
			panic("conntrack: index slot of a live entry is missing") // invariant broken: a bug, not input
		}
		i = (i + 1) & t.slotMask
	}
	sh.seq.Add(1)
	j := i
	for {
		j = (j + 1) & t.slotMask
		v := atomic.LoadUint64(&t.slots[base+j])
		if v == 0 {
			break
		}
		home := uint32(v>>32) & t.slotMask
		// v stays if its home lies cyclically in (i, j].
		if i <= j {
			if i < home && home <= j {
				continue
			}
		} else if i < home || home <= j {
			continue
		}
		atomic.StoreUint64(&t.slots[base+i], v)
		i = j
	}
	atomic.StoreUint64(&t.slots[base+i], 0)
	sh.seq.Add(1)
	sh.count.Add(-1)
}

func (t *flowTable[K]) pop() (uint32, bool) {
	for {
		h := t.freeHead.Load()
		i := uint32(h)
		if i == 0 {
			return 0, false
		}
		next := atomic.LoadUint32(&t.freeNext[i-1])
		if t.freeHead.CompareAndSwap(h, (h>>32+1)<<32|uint64(next)) {
			return i - 1, true
		}
	}
}

func (t *flowTable[K]) push(idx uint32) {
	for {
		h := t.freeHead.Load()
		atomic.StoreUint32(&t.freeNext[idx], uint32(h))
		if t.freeHead.CompareAndSwap(h, (h>>32+1)<<32|uint64(idx+1)) {
			return
		}
	}
}

type removeMode uint8

const (
	removeAny removeMode = iota
	removeExpired
	removeEvictable
	removeReusable  // a closed TCP flow whose SNAT tuple a new SYN may take over
	removeUnreplied // a flow that never saw a reply, whose SNAT port a new flow takes when the range is full
)

func (t *flowTable[K]) wants(m uint64, gen uint16, mode removeMode, tick uint32) bool {
	if !metaLive(m) || metaGen(m) != gen {
		return false
	}
	switch mode {
	case removeExpired:
		return t.expired(m, tick)
	case removeEvictable:
		return t.evictable(m, tick)
	case removeReusable:
		return t.reusable(m, tick)
	case removeUnreplied:
		return reclaimable(m, tick)
	}
	return true
}

// reusable reports whether a flow is a closed TCP connection (TIME_WAIT or CLOSE) idle for at
// least the reuse delay: its SNAT tuple may then carry a new connection's SYN, as Linux allows
// with tcp_tw_reuse and nf_nat's TIME_WAIT takeover. Both ends have finished; the delay lets the
// last retransmitted ACK or FIN of the old connection drain first.
func (t *flowTable[K]) reusable(m uint64, tick uint32) bool {
	s := metaState(m)
	return t.twReuse != 0 && (s == TCPTimeWait || s == TCPClose) && tick-metaLast(m) >= t.twReuse
}

// remove deletes entry idx if it still carries gen and matches mode. Safe from any goroutine.
func (t *flowTable[K]) remove(idx uint32, gen uint16, mode removeMode, tick uint32) bool {
	e := &t.entries[idx]
	if !t.wants(e.meta.Load(), gen, mode, tick) {
		return false
	}
	ko, kr := loadKey(&e.orig), loadKey(&e.reply)
	hO, hR := hashKey(&ko, t.seed), hashKey(&kr, t.seed)
	sO, sR := t.shardOf(hO), t.shardOf(hR)
	t.lock2(sO, sR)
	for {
		m := e.meta.Load()
		if !t.wants(m, gen, mode, tick) {
			// Deleted by someone else (keys may have changed since), or refreshed meanwhile.
			t.unlock2(sO, sR)
			return false
		}
		if e.meta.CompareAndSwap(m, makeMeta(gen+1, 0, StateNone, 0)) {
			break
		}
	}
	t.removeSlot(hO, makeRef(idx, DirOriginal))
	t.removeSlot(hR, makeRef(idx, DirReply))
	t.unlock2(sO, sR)
	t.live.Add(-1)
	t.push(idx)
	return true
}

// newEntry carries what insert writes besides the keys.
type newEntry struct {
	ids      uint64
	ifidx    uint32
	flags    uint8
	state    State
	tick     uint32
	portLo   uint32 // first SNAT port
	portN    uint32 // number of SNAT ports; 0: the reply key is fixed
	icmp     bool   // the SNAT port is an ICMP echo identifier (both ports of the reply key)
	attempts int
	evict    int // entries to scan for a victim when full
}

// insert adds a flow. It returns the existing flow's ref when the original key is already live.
func (t *flowTable[K]) insert(orig, reply *K, ne *newEntry) (ref uint32, gen uint16, res InsertResult, evicted bool) {
	hO := hashKey(orig, t.seed)
	for try := 0; ; try++ {
		r, m, ok := t.find(orig, hO)
		if !ok {
			break
		}
		if !t.expired(m, ne.tick) || try == 2 {
			return r, metaGen(m), InsertExists, false
		}
		t.remove(refIndex(r), metaGen(m), removeExpired, ne.tick)
	}
	idx, ok := t.pop()
	if !ok {
		if idx, ok = t.evict(ne.tick, ne.evict); !ok {
			return 0, 0, InsertFull, false
		}
		evicted = true
	}
	sO := t.shardOf(hO)
	attempts := ne.attempts
	if ne.portN == 0 {
		attempts = 1
	}
	// victim is the first candidate tuple held by a flow that never saw a reply: when every
	// candidate is taken, that flow gives up its port (the range is full, and unanswered flows
	// are the first to go).
	victim, victimGen, victimAttempt := uint32(0), uint16(0), -1
	retried := false
	for a := 0; a < attempts; a++ {
		if ne.portN > 0 {
			p := ne.portLo + uint32(mix(hO+uint64(a)*hashM1, hashM3)%uint64(ne.portN))
			setReplyPort(reply, uint16(p), ne.icmp)
		}
		if *reply == *orig {
			t.push(idx)
			return 0, 0, InsertInvalid, evicted
		}
		hR := hashKey(reply, t.seed)
		sR := t.shardOf(hR)
		t.lock2(sO, sR)
		if r, m, ok := t.find(orig, hO); ok {
			t.unlock2(sO, sR)
			t.push(idx)
			return r, metaGen(m), InsertExists, evicted
		}
		if r, m, ok := t.find(reply, hR); ok {
			t.unlock2(sO, sR)
			// An expired flow still holds the key until removed: remove it and retry the
			// same candidate once. So does a closed TCP connection past the reuse delay when
			// the new flow opens with a SYN.
			if (t.expired(m, ne.tick) && t.remove(refIndex(r), metaGen(m), removeExpired, ne.tick) ||
				ne.state == TCPSynSent && t.reusable(m, ne.tick) && t.remove(refIndex(r), metaGen(m), removeReusable, ne.tick)) && !retried {
				retried = true
				a--
				continue
			}
			retried = false
			if victimAttempt == -1 && ne.portN > 0 && reclaimable(m, ne.tick) {
				victim, victimGen, victimAttempt = refIndex(r), metaGen(m), a
			}
			if a == attempts-1 && victimAttempt >= 0 {
				// Every candidate is taken: reclaim the victim's tuple and try it once more.
				if t.remove(victim, victimGen, removeUnreplied, ne.tick) {
					t.reclaimed.Add(1)
				}
				a, victimAttempt = victimAttempt-1, -2 // -2: reclaimed once, never again
			}
			continue
		}
		if t.shards[sO].count.Load() >= t.shardLimit || t.shards[sR].count.Load() >= t.shardLimit {
			t.unlock2(sO, sR)
			t.push(idx)
			return 0, 0, InsertFull, evicted
		}
		gen = t.store(idx, orig, reply, ne)
		t.insertSlot(hO, makeRef(idx, DirOriginal))
		t.insertSlot(hR, makeRef(idx, DirReply))
		t.unlock2(sO, sR)
		t.live.Add(1)
		return makeRef(idx, DirOriginal), gen, Inserted, evicted
	}
	t.push(idx)
	if ne.portN == 0 {
		return 0, 0, InsertClash, evicted
	}
	return 0, 0, InsertNoPort, evicted
}

// store writes a new flow into free entry idx and returns its generation. The caller holds the
// locks of both keys' shards and publishes the index slots afterwards.
func (t *flowTable[K]) store(idx uint32, orig, reply *K, ne *newEntry) uint16 {
	e := &t.entries[idx]
	gen := metaGen(e.meta.Load()) + 1
	storeKey(&e.orig, orig)
	storeKey(&e.reply, reply)
	e.ids.Store(ne.ids)
	e.ifidx.Store(ne.ifidx)
	e.changed.Store(ne.tick)
	e.pkts[0].Store(0)
	e.pkts[1].Store(0)
	e.meta.Store(makeMeta(gen, ne.flags, ne.state, ne.tick))
	return gen
}

// evict frees an entry that is expired or not yet assured, scanning at most scan entries from a
// shared cursor, and takes a free entry for the caller.
func (t *flowTable[K]) evict(tick uint32, scan int) (uint32, bool) {
	n := uint32(len(t.entries))
	start := (t.evictCursor.Add(uint32(scan)) - uint32(scan)) % n
	idx := start
	for i := 0; i < scan; i++ {
		m := t.entries[idx].meta.Load()
		if metaLive(m) && t.evictable(m, tick) && t.remove(idx, metaGen(m), removeEvictable, tick) {
			if j, ok := t.pop(); ok {
				return j, true
			}
		}
		if idx++; idx == n {
			idx = 0
		}
	}
	return t.pop()
}

// expire deletes expired entries among the next budget entries of the shared cursor.
func (t *flowTable[K]) expire(tick uint32, budget int) int {
	if t.live.Load() == 0 {
		return 0 // nothing to expire: do not walk an empty table
	}
	n := uint32(len(t.entries))
	if budget <= 0 {
		return 0
	}
	if budget > int(n) {
		budget = int(n)
	}
	idx := (t.expireCursor.Add(uint32(budget)) - uint32(budget)) % n
	done := 0
	for i := 0; i < budget; i++ {
		m := t.entries[idx].meta.Load()
		if metaLive(m) && t.expired(m, tick) && t.remove(idx, metaGen(m), removeExpired, tick) {
			done++
		}
		if idx++; idx == n {
			idx = 0
		}
	}
	return done
}

// update applies one packet of direction dir to a live entry. It fails when the entry was
// deleted or reused since the handle was made.
func (t *flowTable[K]) update(idx uint32, gen uint16, dir Dir, tf uint8, tick uint32) bool {
	e := &t.entries[idx]
	for {
		m := e.meta.Load()
		if metaGen(m) != gen || !metaLive(m) {
			return false
		}
		s, fl := metaState(m), metaFlags(m)
		ns, nfl := transition(s, fl, dir, tf)
		last := metaLast(m)
		if int32(tick-last) > 0 {
			last = tick
		}
		nm := makeMeta(gen, nfl, ns, last)
		if nm == m {
			break
		}
		if e.meta.CompareAndSwap(m, nm) {
			if ns != s {
				e.changed.Store(tick)
			}
			break
		}
	}
	e.pkts[dir&1].Add(1)
	return true
}

// memoryBytes is the size of everything allocated for this family.
func (t *flowTable[K]) memoryBytes() int64 {
	return int64(len(t.entries))*entrySize[K]() + int64(len(t.freeNext))*4 +
		int64(len(t.slots))*8 + int64(len(t.shards))*64
}

// entrySize is the size of entry[K] in bytes: meta, two keys, ids, ifidx, changed, pkts
// (checked against unsafe.Sizeof in the tests).
func entrySize[K keyWords]() int64 {
	var k K
	return 8 + 2*8*int64(len(k)) + 8 + 4 + 4 + 8
}
