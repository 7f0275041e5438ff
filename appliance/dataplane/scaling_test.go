package dataplane

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// BenchmarkPipelineScaling measures how the data plane's own work scales with cores: 1, 2, 4 ...
// up to GOMAXPROCS workers, each on its own queue (as with one AF_XDP queue per core, flows spread
// by RSS), polling in parallel over one shared flow table, Maglev tables and SNAT port space. The
// frames come from memory, so this is the pipeline alone (parse, conntrack, NAT, rewrite, the
// copy between ports), not the kernel's I/O path. Compare pkt/s of workers=N with workers=1 in
// the same run.
//
//   - established: every worker's 256 UDP flows exist; each frame is a conntrack hit.
//   - churn: every frame opens a new UDP flow to the LoadBalancer VIP (conntrack insert, Maglev,
//     an SNAT port), and expiry removes flows as fast as they are opened (the clock jumps past the
//     UDP timeout between batches), so the table and the port space stay in steady state.
func BenchmarkPipelineScaling(b *testing.B) {
	for _, kind := range []string{"established", "churn"} {
		for n := 1; n <= runtime.GOMAXPROCS(0); n *= 2 {
			b.Run(fmt.Sprintf("%s/workers=%d", kind, n), func(b *testing.B) { benchScaling(b, kind, n) })
		}
	}
}

func benchScaling(b *testing.B, kind string, workers int) {
	r := newRig(b, testManifests, func(c *Config) {
		c.FloatingSNAT = true // LoadBalancer flows SNAT to the VIP, as in production
		c.Conntrack.MaxEntries = 1 << 16
		c.ExpireBudget = 4 * BatchSize // the churn case: expiry frees flows 4× as fast as a batch opens them
	})
	churn := kind == "churn"
	if churn {
		// The churn frames are patched in place per batch; their checksums are not fixed up.
		r.dp.cfg.VerifyChecksums = false
	}
	ios := make([]*scaleIO, workers)
	ws := make([]*Worker, workers)
	for i := range workers {
		var frames [][]byte
		for j := range BatchSize {
			// Worker i's clients are 198.18.0.(100+i); ports differ per frame.
			src := fmt.Sprintf("198.18.0.%d", 100+i)
			frames = append(frames, frame(b, clientMAC, extMAC, src, "198.19.1.1", packet.ProtoUDP, uint16(10000+j), 9000, "", make([]byte, 18)))
		}
		ios[i] = &scaleIO{fakeIO: newReplayIO(frames), churn: churn, worker: uint32(i)}
		w, err := r.dp.AddWorker(i+1, []FrameIO{ios[i], newReplayIO(nil)})
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = w
		if !churn {
			ws[i].Poll(r.now) // open the flows
		}
	}
	step := int64(0)
	if churn {
		step = int64(10 * time.Minute) // past the UDP timeout: last batch's flows are expired
	}
	pkts := make([]int, workers)
	tx0 := make([]uint64, workers)
	for i := range workers {
		tx0[i] = ws[i].c.tx.Load()
	}
	// b.Loop runs on the benchmark's goroutine, which drives worker 0; the other workers poll
	// freely on their own goroutines until it is done. ns/pkt is the elapsed time over the
	// frames all workers received: their aggregate rate.
	var wg sync.WaitGroup
	var stop atomic.Bool
	for i := 1; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := r.now
			for !stop.Load() {
				now += step
				pkts[i] += ws[i].Poll(now)
			}
		}()
	}
	b.ReportAllocs()
	now := r.now
	for b.Loop() {
		now += step
		pkts[0] += ws[0].Poll(now)
	}
	stop.Store(true)
	wg.Wait()
	b.StopTimer()
	total, tx := 0, uint64(0)
	for i := range workers {
		total += pkts[i]
		tx += ws[i].c.tx.Load() - tx0[i]
	}
	if !churn && tx != uint64(total) {
		b.Fatalf("forwarded %d of %d (drops %v)", tx, total, dumpDrops(ws[0]))
	}
	// Churn: some frames may find their SNAT port or table slot taken; most must pass.
	if churn && tx < uint64(total)*9/10 {
		b.Fatalf("forwarded %d of %d new flows (drops %v)", tx, total, dumpDrops(ws[0]))
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(total)
	b.ReportMetric(ns, "ns/pkt")
	b.ReportMetric(1e9/ns, "pkt/s")
}

// scaleIO is a replaying fakeIO whose churn mode gives every frame of every batch a new 5-tuple from a
// per-worker counter: client address 198.18.(64+w).x (w the worker, x the counter's bits 12-19; away
// from the lab's node and cluster addresses, which are martian or cluster sources on the external
// port) and source port (its bits 0-11 and 20-23), so 16M frames per worker before a tuple comes
// back. A client address changes every 4096 frames, within the per-source burst of new flows.
type scaleIO struct {
	*fakeIO
	churn  bool
	worker uint32
	seq    uint32
}

func (s *scaleIO) Receive(frames []Frame) int {
	n := s.fakeIO.Receive(frames)
	if !s.churn {
		return n
	}
	for i := range n {
		s.seq++
		d := frames[i].Data
		binary.BigEndian.PutUint32(d[26:], 0xc6120000|(64+s.worker)<<8|(s.seq>>12)&0xff)
		binary.BigEndian.PutUint16(d[34:], uint16(s.seq&0xfff|(s.seq>>20)<<12))
	}
	return n
}
