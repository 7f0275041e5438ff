package lab

import (
	"net/netip"
	"testing"

	"github.com/xdpsvc/lb/appliance/config"
)

// TestApplianceConfigParses checks that the lab's appliance config is one the appliance accepts,
// with gossip bound on the node's external address, joining the other nodes, and the key file.
func TestApplianceConfigParses(t *testing.T) {
	node := func(i byte) *NS {
		return &NS{Ifaces: []Iface{{Name: NodeExternalIface, Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, 10 + i}), 24)},
			{Name: NodeClusterIface, Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, 10 + i}), 24)}}}
	}
	nodes := []*NS{node(1), node(2), node(3)}
	c, err := config.Parse([]byte(ApplianceConfig("lb-2", nodes[1], nodes, "", "gossip.key")), "/tmp/lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "lb-2" || c.Cluster.Bind != "198.18.0.12:7946" || c.Admin.Listen != "127.0.0.1:9100" ||
		len(c.Cluster.Join) != 2 || c.Cluster.Join[0] != "198.18.0.11:7946" || c.Cluster.Join[1] != "198.18.0.13:7946" ||
		c.Cluster.SecretKeyFile != "/tmp/gossip.key" || len(c.Interfaces) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	c, err = config.Parse([]byte(ApplianceConfig("bench-lb", nodes[0], nil, "127.0.0.1:9111", "")), "/tmp/lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cluster.Join) != 0 || c.Cluster.SecretKeyFile != "" || c.Admin.Listen != "127.0.0.1:9111" {
		t.Fatalf("lone node parsed %+v", c)
	}
}
