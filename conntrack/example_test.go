package conntrack_test

import (
	"fmt"
	"net/netip"

	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

// Insert the first packet's flow of a client to a Service, then look up its reply (from the
// backend to the SNAT address) and translate it back to what the client expects.
func Example_insertAndLookup() {
	cfg := conntrack.DefaultConfig()
	cfg.MaxEntries, cfg.MaxEntriesIPv6 = 1024, 0
	cfg.SNATPortMin, cfg.SNATPortMax = 30000, 30000 // one SNAT port, so the example prints it
	table, err := conntrack.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	const now = int64(1e12) // nanoseconds on the data plane's clock

	client, vip := netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("198.19.1.1")
	backend, snat := netip.MustParseAddr("198.18.1.21"), netip.MustParseAddr("198.18.1.2")
	f := conntrack.NewFlow{BackendPort: 8080, TCPFlags: conntrack.TCPFlagSYN}
	f.Orig = packet.FlowKey{Proto: packet.ProtoTCP, Family: packet.FamilyIPv4, SrcPort: 40000, DstPort: 80}
	copy(f.Orig.SrcAddr[:4], client.AsSlice())
	copy(f.Orig.DstAddr[:4], vip.AsSlice())
	copy(f.BackendAddr[:4], backend.AsSlice())
	copy(f.SNATAddr[:4], snat.AsSlice())

	h, res := table.Insert(&f, now)
	fmt.Println("insert:", res)
	var out packet.FlowKey
	table.Translate(h, &out)
	fmt.Printf("to backend: %v:%d -> %v:%d\n", netip.AddrFrom4(out.SrcAddr4()), out.SrcPort,
		netip.AddrFrom4(out.DstAddr4()), out.DstPort)

	// The backend's answer comes back to the SNAT address and port.
	reply := out.Reverse()
	h, ok := table.Lookup(&reply, now)
	fmt.Println("reply found:", ok, "reply direction:", h.Dir() == conntrack.DirReply)
	table.Translate(h, &out)
	fmt.Printf("to client: %v:%d -> %v:%d\n", netip.AddrFrom4(out.SrcAddr4()), out.SrcPort,
		netip.AddrFrom4(out.DstAddr4()), out.DstPort)
	// Output:
	// insert: inserted
	// to backend: 198.18.1.2:30000 -> 198.18.1.21:8080
	// reply found: true reply direction: true
	// to client: 198.19.1.1:80 -> 198.18.0.100:40000
}
