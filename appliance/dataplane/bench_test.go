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
		plan := r.dp.plan.Load()
		buf := make([]byte, 2048)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			n := copy(buf, ack)
			if act, _, _ := r.w.process(plan, 0, buf[:n], r.now, 0); act != actTx {
				b.Fatal("hit was not forwarded")
			}
		}
		report(b)
	})
	b.Run("conntrack_miss_new_flow", func(b *testing.B) {
		r := newRig(b, testManifests)
		syn := frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil)
		plan := r.dp.plan.Load()
		buf := make([]byte, 2048)
		ct := r.dp.Conntrack()
		var h packet.Headers
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			n := copy(buf, syn)
			// A new client port every time (the checksum is not verified on the way in).
			binary.BigEndian.PutUint16(buf[34:], uint16(1024+i%60000))
			binary.BigEndian.PutUint32(buf[26:], 0xc6120000|uint32(i/60000)&0xffff)
			packet.Parse(buf[:n], &h)
			key := h.Key
			if act, _, _ := r.w.process(plan, 0, buf[:n], r.now, 0); act != actTx {
				b.Fatalf("new flow %d was not forwarded", i)
			}
			// Keep the table small: this measures insert, not a full table.
			if hd, ok := ct.Lookup(&key, r.now); ok {
				ct.Delete(hd)
			}
		}
		report(b)
	})
}

func report(b *testing.B) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns, "ns/pkt")
	b.ReportMetric(1e9/ns, "pkt/s")
}
