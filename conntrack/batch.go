package conntrack

import (
	"sync/atomic"

	"github.com/xdpsvc/lb/packet"
)

// LookupBatch looks up keys[i] into out[i] for i < min(len(keys), len(out)) and returns the
// number of hits; a miss leaves out[i] invalid (Handle.Valid is false). It does what Lookup does
// for each key, but first touches the index slots of all keys, then their candidate entries, so
// that the cache misses of a whole RX batch overlap instead of queueing one after another. Use it
// from workers that hold a batch of keys; it takes no lock and does not allocate.
func (t *Table) LookupBatch(keys []packet.FlowKey, now int64, out []Handle) int {
	n := min(len(keys), len(out))
	hits := 0
	for base := 0; base < n; base += batchMax {
		end := min(base+batchMax, n)
		if t.v4 != nil {
			t.v4.prefetch(keys[base:end])
		}
		for i := base; i < end; i++ {
			h, ok := t.Lookup(&keys[i], now)
			out[i] = h
			if ok {
				hits++
			}
		}
	}
	return hits
}

const batchMax = 64

// prefetch loads the home slot of every IPv4 key, then the meta word of each slot's entry when
// the slot's hash bits match, without branching on loaded values in between (so the loads are
// issued back to back). The loaded values are discarded.
func (t *flowTable[K]) prefetch(keys []packet.FlowKey) {
	var slotIdx [batchMax]uint32
	var his [batchMax]uint32
	for i := range keys {
		if keys[i].Family != packet.FamilyIPv4 {
			slotIdx[i] = 0
			continue
		}
		pk := packKey4(&keys[i])
		h := hashKey(&pk, t.seed)
		hi := uint32(h >> 32)
		his[i] = hi
		slotIdx[i] = (hi>>t.slotBits&t.shardMask)<<t.slotBits | hi&t.slotMask
	}
	var vals [batchMax]uint64
	for i := range keys {
		vals[i] = atomic.LoadUint64(&t.slots[slotIdx[i]])
	}
	var sink uint64
	for i := range keys {
		v := vals[i]
		if v != 0 && uint32(v>>32) == his[i] {
			sink += t.entries[refIndex(uint32(v))].meta.Load()
		}
	}
	if sink == 0x5bd1e9955bd1e995 { // practically never: keeps the loads observable without a shared write
		prefetchSink.Store(sink)
	}
}

// prefetchSink is the (almost never written) target of prefetch's loads.
var prefetchSink atomic.Uint64

// Valid reports whether the handle came from a hit.
func (h Handle) Valid() bool { return h.fam != packet.FamilyNone }
