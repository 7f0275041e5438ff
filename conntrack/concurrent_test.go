package conntrack

import (
	"sync"
	"testing"

	"github.com/xdpsvc/lb/packet"
)

// TestConcurrentWorkers runs several goroutines as queue workers on one table at once: each
// inserts flows, looks up and updates both directions of its own and other workers' flows
// (a reply can land on another queue), deletes some, and expires. Run with -race. Every hit
// must translate consistently: the original direction to SNAT → backend, and the reply key found
// from that translation must lead back to the same entry.
func TestConcurrentWorkers(t *testing.T) {
	const (
		workers = 4
		perW    = 1500
		rounds  = 2
	)
	c := testConfig(workers * perW / 2) // smaller than the load: eviction and refusal happen too
	c.SNATPortMin, c.SNATPortMax = 61000, 61999
	tb := newTable(t, c)
	flowOf := func(w, i int) NewFlow {
		return NewFlow{
			Orig:        key("198.18.0.100", uint16(1024+i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: uint16(8000 + i%4),
			SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN, ServiceID: uint32(w),
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			fail := func(msg string) {
				select {
				case errs <- msg:
				default:
				}
			}
			now := sec
			var out, back packet.FlowKey
			for r := 0; r < rounds; r++ {
				for i := 0; i < perW; i++ {
					now += 1000
					f := flowOf(w, i)
					f.Orig.SrcAddr[3] = byte(100 + w)
					h, res := tb.Insert(&f, now)
					if res != Inserted && res != InsertExists && res != InsertFull && res != InsertNoPort {
						fail("insert: " + res.String())
						return
					}
					// Look up another worker's flow, as the reply queue would.
					g := flowOf((w+1)%workers, i)
					g.Orig.SrcAddr[3] = byte(100 + (w+1)%workers)
					if ho, ok := tb.Lookup(&g.Orig, now); ok {
						if ho.Dir() != DirOriginal {
							fail("orig key matched reply direction")
							return
						}
						if tb.Translate(ho, &out) {
							if out.DstPort != g.BackendPort || out.SrcAddr != g.SNATAddr {
								fail("translation of another flow returned")
								return
							}
							rk := out.Reverse()
							if hr, ok := tb.Lookup(&rk, now); ok && hr.Index() == ho.Index() {
								if tb.Translate(hr, &back) && back != g.Orig.Reverse() {
									fail("reply translation mismatch")
									return
								}
								tb.Update(hr, TCPFlagSYN|TCPFlagACK, now)
							}
						}
						tb.Update(ho, TCPFlagACK, now)
					}
					if res == Inserted && i%7 == 0 {
						tb.Delete(h)
					}
					if i%64 == 0 {
						tb.Expire(now, 64)
					}
				}
				now += 200 * sec // everything unestablished expires between rounds
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	// The index and the entries agree: every live entry is found by both keys.
	live := 0
	tb.Range(sec, func(f *Flow) bool {
		live++
		ho, ok1 := tb.Lookup(&f.Orig, 0)
		hr, ok2 := tb.Lookup(&f.Reply, 0)
		if !ok1 || !ok2 || ho.Index() != f.Handle.Index() || hr.Index() != f.Handle.Index() {
			t.Errorf("index points elsewhere for %+v", f.Orig)
		}
		return true
	})
	if live != tb.Len() {
		t.Fatalf("Range saw %d live flows, Len %d", live, tb.Len())
	}
	if tb.Len() > c.MaxEntries {
		t.Fatalf("Len %d above capacity", tb.Len())
	}
}
