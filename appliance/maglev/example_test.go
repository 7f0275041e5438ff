package maglev_test

import (
	"fmt"
	"net/netip"

	"github.com/xdpsvc/lb/appliance/maglev"
	"github.com/xdpsvc/lb/packet"
)

// Example builds the table of one Service port from its ready endpoints and picks the backend of
// a TCP flow, as the data plane does for the first packet of a connection.
func Example() {
	backends := []maglev.Backend{
		{Key: "198.18.1.21:8080"},
		{Key: "198.18.1.22:8080"},
		{Key: "198.18.1.23:8080", Weight: 2}, // twice the share of the others
	}
	table, err := maglev.Build(backends, maglev.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}

	flow := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, SrcPort: 40000, DstPort: 80}
	src, dst := netip.MustParseAddr("198.18.0.100").As4(), netip.MustParseAddr("198.19.0.10").As4()
	copy(flow.SrcAddr[:], src[:])
	copy(flow.DstAddr[:], dst[:])
	hash := maglev.HashFlow(&flow)
	i := table.Lookup(hash) // an index into backends
	fmt.Println("flow goes to", backends[i].Key)

	// Another node, which lists the same backends in another order, picks the same one: a flow
	// keeps its backend when its VIP moves between nodes.
	other := []maglev.Backend{backends[2], backends[0], backends[1]}
	otherTable, err := maglev.Build(other, maglev.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("another node picks", other[otherTable.Lookup(hash)].Key)

	// Each backend owns a share of the table's slots that follows its weight.
	for j, b := range backends {
		fmt.Printf("%s owns %.0f%% of the slots\n", b.Key, 100*float64(table.Count(j))/float64(table.Size()))
	}
	// Output:
	// flow goes to 198.18.1.23:8080
	// another node picks 198.18.1.23:8080
	// 198.18.1.21:8080 owns 25% of the slots
	// 198.18.1.22:8080 owns 25% of the slots
	// 198.18.1.23:8080 owns 50% of the slots
}
