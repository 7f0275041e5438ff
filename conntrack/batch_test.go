package conntrack

import (
	"testing"

	"github.com/xdpsvc/lb/packet"
)

// TestLookupBatch: LookupBatch agrees with Lookup for hits and misses of both families and both
// directions, across more than one internal batch, and does not allocate.
func TestLookupBatch(t *testing.T) {
	tb := newTable(t, testConfig(256))
	var keys []packet.FlowKey
	var out packet.FlowKey
	for i := 0; i < 50; i++ {
		f := NewFlow{Orig: key("198.18.0.100", uint16(1000+i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
		g := NewFlow{Orig: key("2001:db8::100", uint16(1000+i), "2001:db8:1::1", 80, packet.ProtoUDP),
			BackendAddr: addr("2001:db8:2::10"), BackendPort: 80, SNATAddr: addr("2001:db8:2::2")}
		h, _ := tb.Insert(&f, sec)
		tb.Translate(h, &out)
		keys = append(keys, f.Orig, out.Reverse(), g.Orig)
		miss := f.Orig
		miss.DstPort = 81
		keys = append(keys, miss)
		if i%2 == 0 {
			tb.Insert(&g, sec)
		}
	}
	res := make([]Handle, len(keys))
	hits := tb.LookupBatch(keys, sec, res)
	want := 0
	for i := range keys {
		h, ok := tb.Lookup(&keys[i], sec)
		if ok {
			want++
		}
		if ok != res[i].Valid() || h != res[i] {
			t.Fatalf("key %d: batch %+v, single %+v %v", i, res[i], h, ok)
		}
	}
	if hits != want || want != 125 {
		t.Fatalf("hits %d, want %d (125)", hits, want)
	}
	if a := testing.AllocsPerRun(100, func() { tb.LookupBatch(keys, sec, res) }); a != 0 {
		t.Fatalf("LookupBatch allocates %v", a)
	}
}
