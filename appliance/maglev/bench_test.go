package maglev

import (
	"testing"

	"github.com/xdpsvc/lb/packet"
)

// BenchmarkMaglevBuild rebuilds a 100-backend table of 65537 entries into a recycled Table, as
// the snapshot builder does on every endpoint change (target: < 2 ms, 0 allocs).
func BenchmarkMaglevBuild(b *testing.B) {
	bs := backendsN(100)
	bld, err := NewBuilder(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var tab Table
	b.ReportAllocs()
	for b.Loop() {
		if err := bld.BuildInto(&tab, bs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaglevBuildFresh is Build with new scratch and table each time.
func BenchmarkMaglevBuildFresh(b *testing.B) {
	bs := backendsN(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(bs, DefaultConfig()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaglevLookup is HashFlow plus Lookup per packet over a spread of flows.
func BenchmarkMaglevLookup(b *testing.B) {
	tab := mustBuild(b, backendsN(100))
	k := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, DstPort: 80}
	copy(k.SrcAddr[:], []byte{198, 18, 0, 100})
	copy(k.DstAddr[:], []byte{198, 19, 0, 10})
	sum := 0
	b.ReportAllocs()
	for b.Loop() {
		k.SrcPort++
		sum += tab.Lookup(HashFlow(&k))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/pkt")
	if sum < 0 {
		b.Fatal(sum)
	}
}
