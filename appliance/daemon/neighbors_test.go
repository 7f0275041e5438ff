package daemon

import (
	"net/netip"
	"testing"

	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

// fakeFlows is a flow table of fixed flows.
type fakeFlows []conntrack.Flow

func (f fakeFlows) Range(_ int64, fn func(*conntrack.Flow) bool) {
	for i := range f {
		if !fn(&f[i]) {
			return
		}
	}
}

func flowKey(src, dst string) packet.FlowKey {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	k := packet.FlowKey{Family: packet.FamilyIPv4, Proto: 6, SrcPort: 40000, DstPort: 80}
	if s.Is6() {
		k.Family = packet.FamilyIPv6
		k.SrcAddr, k.DstAddr = s.As16(), d.As16()
		return k
	}
	s4, d4 := s.As4(), d.As4()
	copy(k.SrcAddr[:], s4[:])
	copy(k.DstAddr[:], d4[:])
	return k
}

// TestNeighborsInUse: the destinations kept by a prune are the plan's endpoints and the clients
// and backends of live flows (both families); anything else is forgotten.
func TestNeighborsInUse(t *testing.T) {
	eps := []netip.Addr{netip.MustParseAddr("198.18.1.21"), netip.MustParseAddr("2001:2::21")}
	flows := fakeFlows{
		{Orig: flowKey("198.18.0.100", "198.19.1.1"), Reply: flowKey("198.18.1.30", "198.18.1.11")},
		{Orig: flowKey("2001:2::100", "2001:2:0:1::1"), Reply: flowKey("2001:2::31", "2001:2::11")},
	}
	in := neighborsInUse(eps, flows, 0)
	for _, a := range []string{"198.18.1.21", "2001:2::21", "198.18.0.100", "198.18.1.30", "2001:2::100", "2001:2::31"} {
		if !in[netip.MustParseAddr(a)] {
			t.Errorf("%s not in use, want kept", a)
		}
	}
	for _, a := range []string{"198.18.1.22", "198.18.0.101", "2001:2::22"} {
		if in[netip.MustParseAddr(a)] {
			t.Errorf("%s in use, want pruned", a)
		}
	}
	if in := neighborsInUse(eps, nil, 0); len(in) != 2 {
		t.Errorf("without a flow table: %d in use, want the 2 endpoints", len(in))
	}
}
