package dataplane

import (
	"encoding/binary"
	"testing"

	"github.com/xdpsvc/lb/packet"
)

// BenchmarkPipeline runs the whole per-packet pipeline without I/O: parse, conntrack, (on a
// miss) frontend lookup, policy, Maglev and insert, rewrite with checksums, MACs.
func BenchmarkPipeline(b *testing.B) {
	b.Run("conntrack_hit", func(b *testing.B) {
		r := newRig(b, testManifests)
		r.ext.push(frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
		r.run(b)
		ack := frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", make([]byte, 6))
		bc := batchContext{plan: r.dp.plan.Load(), now: r.now}
		buf := make([]byte, 2048)
		b.ReportAllocs()
		for b.Loop() {
			n := copy(buf, ack)
			if v := r.w.process(&bc, 0, buf[:n]); v.act != actTx {
				b.Fatal("hit was not forwarded")
			}
		}
		report(b)
	})
	b.Run("conntrack_miss_new_flow", func(b *testing.B) {
		r := newRig(b, testManifests)
		// The loop patches the client address and port without fixing the checksum.
		r.dp.cfg.VerifyChecksums = false
		syn := frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil)
		bc := batchContext{plan: r.dp.plan.Load(), now: r.now}
		buf := make([]byte, 2048)
		ct := r.dp.Conntrack()
		var h packet.Headers
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			n := copy(buf, syn)
			// A new client port every time (the checksum is not verified on the way in), and a
			// new client address (198.18.64.0/18) every 10,000 flows: within the per-source burst of new flows
			// (the clock does not move in this loop), so the limiter is asked but never refuses.
			binary.BigEndian.PutUint16(buf[34:], uint16(1024+i%10000))
			binary.BigEndian.PutUint32(buf[26:], 0xc6124000|uint32(i/10000)&0x3fff) // 198.18.64.0/18: no node or cluster address
			packet.Parse(buf[:n], &h)
			key := h.Key
			if v := r.w.process(&bc, 0, buf[:n]); v.act != actTx {
				b.Fatalf("new flow %d was not forwarded", i)
			}
			// Keep the table small: this measures insert, not a full table.
			if hd, ok := ct.Lookup(&key, r.now); ok {
				ct.Delete(hd)
			}
			i++
		}
		report(b)
	})
}

func report(b *testing.B) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns, "ns/pkt")
	b.ReportMetric(1e9/ns, "pkt/s")
}

// BenchmarkPipelineBatch runs Poll over batches of 64 established flows arriving on the external
// port and leaving on the cluster port (one copy between ports, as with two UMEMs).
func BenchmarkPipelineBatch(b *testing.B) {
	r := newRig(b, testManifests)
	var frames [][]byte
	for i := range BatchSize {
		syn := frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "S", nil)
		r.ext.push(syn)
		frames = append(frames, frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "A", make([]byte, 6)))
	}
	r.run(b)
	if got := len(r.int.take()); got != BatchSize {
		b.Fatalf("%d of %d flows opened", got, BatchSize)
	}
	ext, int0 := newReplayIO(frames), newReplayIO(nil)
	w, err := r.dp.AddWorker(1, []FrameIO{ext, int0})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	pkts := 0
	for b.Loop() {
		pkts += w.Poll(r.now)
	}
	b.StopTimer()
	if w.c.tx.Load() != uint64(pkts) {
		b.Fatalf("forwarded %d of %d", w.c.tx.Load(), pkts)
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(pkts)
	b.ReportMetric(ns, "ns/pkt")
	b.ReportMetric(1e9/ns, "pkt/s")
}
