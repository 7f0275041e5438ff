package conntrack

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// TestMemory10M allocates a 10M-flow IPv4 table (pages are touched lazily, so this is quick)
// and checks that it takes no more than 1 GiB, by the table's own accounting and by the heap.
func TestMemory10M(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 1 GiB of address space")
	}
	const n = 10_000_000
	c := DefaultConfig()
	c.MaxEntries, c.MaxEntriesIPv6 = n, 0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	mem := tb.MemoryBytes()
	t.Logf("10M IPv4 flows: MemoryBytes %d (%.1f B/flow), heap grew %d (%.1f B/flow)",
		mem, float64(mem)/n, heap, float64(heap)/n)
	if mem > 1<<30 || heap > 1<<30 {
		t.Fatalf("10M flows take %d bytes (heap %d), above 1 GiB", mem, heap)
	}
	if heap < mem-mem/100 {
		t.Fatalf("heap grew %d, less than MemoryBytes %d: accounting is wrong", heap, mem)
	}
	runtime.KeepAlive(tb)
}

func benchFlow(i int) NewFlow {
	var f NewFlow
	f.Orig = packet.FlowKey{Proto: packet.ProtoTCP, Family: packet.FamilyIPv4, DstPort: 80}
	// Clients 198.18.0.0/15 spread over addresses and ports; frontend 198.19.1.1:80.
	binary.BigEndian.PutUint32(f.Orig.SrcAddr[:4], 0xc6120000|uint32(i>>14)&0x1ffff)
	f.Orig.SrcPort = uint16(1024 + i&0x3fff)
	copy(f.Orig.DstAddr[:4], []byte{198, 19, 1, 1})
	copy(f.BackendAddr[:4], []byte{198, 18, 1, byte(10 + i%64)})
	f.BackendPort = 8080
	copy(f.SNATAddr[:4], []byte{198, 18, 1, byte(2 + (i/64)%16)})
	f.TCPFlags = TCPFlagSYN
	return f
}

// fill builds a table of n established-looking flows and returns the keys of both directions.
func fill(b *testing.B, n int) (*Table, []packet.FlowKey) {
	c := DefaultConfig()
	c.MaxEntries, c.MaxEntriesIPv6 = n, 0
	c.SNATPortMin, c.SNATPortMax = 1024, 65535
	tb, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]packet.FlowKey, 0, 2*n)
	var out packet.FlowKey
	for i := 0; i < n; i++ {
		f := benchFlow(i)
		h, res := tb.Insert(&f, sec)
		if res != Inserted {
			b.Fatalf("fill %d: %v", i, res)
		}
		tb.Translate(h, &out)
		keys = append(keys, f.Orig, out.Reverse())
	}
	// Shuffle so that consecutive lookups hit unrelated memory.
	r := uint64(0x9e3779b97f4a7c15)
	for i := len(keys) - 1; i > 0; i-- {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		j := int(r % uint64(i+1))
		keys[i], keys[j] = keys[j], keys[i]
	}
	return tb, keys
}

func sizes(b *testing.B) []int {
	return []int{1_000, 1_000_000, 10_000_000}
}

// BenchmarkTableLookup looks up random keys (both directions) of a table of 1k, 1M and 10M flows.
func BenchmarkTableLookup(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			tb, keys := fill(b, n)
			mask := len(keys)
			b.ReportAllocs()
			c0 := cpuTime()
			hits, i := 0, 0
			for b.Loop() {
				if _, ok := tb.Lookup(&keys[i%mask], sec); ok {
					hits++
				}
				i++
			}
			b.StopTimer()
			reportCPU(b, c0)
			if hits != b.N {
				b.Fatalf("%d hits of %d", hits, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(tb.MemoryBytes())/float64(n), "B/flow")
		})
	}
}

// BenchmarkTableLookupBatch is BenchmarkTableLookup through LookupBatch in batches of 64
// random keys, as an RX batch is looked up; an op is one batch, ns/key is per key.
func BenchmarkTableLookupBatch(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			tb, keys := fill(b, n)
			out := make([]Handle, batchMax)
			b.ReportAllocs()
			c0 := cpuTime()
			hits, off := 0, 0
			for b.Loop() {
				if off+batchMax > len(keys) {
					off = 0
				}
				hits += tb.LookupBatch(keys[off:off+batchMax], sec, out)
				off += batchMax
			}
			b.StopTimer()
			reportCPU(b, c0)
			if want := b.N * batchMax; hits != want {
				b.Fatalf("%d hits of %d", hits, want)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(hits), "ns/key")
			b.ReportMetric(float64(hits)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkTableLookupUpdate is the whole hit path: lookup, translate, update.
func BenchmarkTableLookupUpdate(b *testing.B) {
	tb, keys := fill(b, 1_000_000)
	var out packet.FlowKey
	b.ReportAllocs()
	c0 := cpuTime()
	i := 0
	for b.Loop() {
		h, ok := tb.Lookup(&keys[i%len(keys)], sec)
		if !ok || !tb.Translate(h, &out) || !tb.Update(h, TCPFlagACK, sec+int64(i)) {
			b.Fatal("miss")
		}
		i++
	}
	reportCPU(b, c0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkTableInsert inserts new flows (both directions, SNAT port allocated) into a table of
// 1M entries kept half full: each iteration inserts one flow and deletes the one inserted
// capacity/2 iterations earlier.
func BenchmarkTableInsert(b *testing.B) {
	const n = 1_000_000
	c := DefaultConfig()
	c.MaxEntries, c.MaxEntriesIPv6 = n, 0
	c.SNATPortMin, c.SNATPortMax = 1024, 65535
	tb, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	flows := make([]NewFlow, n)
	for i := range flows {
		flows[i] = benchFlow(i)
	}
	ring := make([]Handle, n/2)
	b.ReportAllocs()
	c0 := cpuTime()
	i := 0
	for b.Loop() {
		slot := i % len(ring)
		if i >= len(ring) {
			tb.Delete(ring[slot])
		}
		h, res := tb.Insert(&flows[i%n], sec)
		if res != Inserted {
			b.Fatalf("insert %d: %v", i, res)
		}
		ring[slot] = h
		i++
	}
	reportCPU(b, c0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(tb.MemoryBytes())/n, "B/flow")
}

// cpuTime is the process's user+system CPU time: on a shared, loaded machine it says more about
// the cost of an operation than wall-clock ns/op, which includes time spent descheduled.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkTableInsertOnly inserts new flows (both directions, SNAT port) into an empty table of
// insertOnlyFlows entries: the cost of Insert alone, without the Delete of BenchmarkTableInsert.
// When the table is full it is emptied with the timer stopped.
func BenchmarkTableInsertOnly(b *testing.B) {
	const insertOnlyFlows = 1 << 20
	c := DefaultConfig()
	c.MaxEntries, c.MaxEntriesIPv6 = insertOnlyFlows, 0
	c.SNATPortMin, c.SNATPortMax = 1024, 65535
	tb, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	flows := make([]NewFlow, insertOnlyFlows)
	for i := range flows {
		flows[i] = benchFlow(i)
	}
	handles := make([]Handle, insertOnlyFlows)
	b.ReportAllocs()
	c0 := cpuTime()
	i := 0
	for b.Loop() {
		if i == insertOnlyFlows {
			b.StopTimer()
			for _, h := range handles {
				tb.Delete(h)
			}
			i = 0
			b.StartTimer()
		}
		h, res := tb.Insert(&flows[i], sec)
		if res != Inserted {
			b.Fatalf("insert %d: %v", i, res)
		}
		handles[i] = h
		i++
	}
	reportCPU(b, c0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
