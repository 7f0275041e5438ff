package service

import (
	"net/netip"
	"strings"
	"testing"
)

// TestReservedValues checks that values the cluster reserves for another Service are neither
// kept from the previous state nor auto-allocated, that a Service keeps values reserved for
// itself, and that explicit requests are not affected.
func TestReservedValues(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	docs := strings.Join([]string{svcYAML("a", "LoadBalancer", port80), svcYAML("b", "LoadBalancer", port80)}, "---\n")
	b := NewBuilder(cfg)
	snap, st, err := b.Build(mustObjects(t, docs), nil)
	if err != nil {
		t.Fatal(err)
	}
	a0 := snap.Lookup("default/a")
	ip, np, lb := a0.ClusterIPs[0], a0.Ports[0].NodePort, a0.ExternalIP

	t.Run("reserved for another service: reallocated", func(t *testing.T) {
		b := NewBuilder(cfg)
		b.SetReserved(Reserved{IPs: map[netip.Addr]string{ip: "other/x", lb: "other/x"}, NodePorts: map[uint16]string{np: "other/x"}})
		snap, _, err := b.Build(mustObjects(t, docs), st)
		if err != nil {
			t.Fatal(err)
		}
		a := snap.Lookup("default/a")
		if a.ClusterIPs[0] == ip || a.Ports[0].NodePort == np || a.ExternalIP == lb {
			t.Fatalf("kept reserved values: %v %d %v", a.ClusterIPs, a.Ports[0].NodePort, a.ExternalIP)
		}
		if !a.ExternalIP.IsValid() {
			t.Fatal("no external IP allocated")
		}
	})
	t.Run("reserved for itself: kept", func(t *testing.T) {
		b := NewBuilder(cfg)
		b.SetReserved(Reserved{IPs: map[netip.Addr]string{ip: "default/a", lb: "default/a"}, NodePorts: map[uint16]string{np: "default/a"}})
		snap, _, err := b.Build(mustObjects(t, docs), st)
		if err != nil {
			t.Fatal(err)
		}
		a := snap.Lookup("default/a")
		if a.ClusterIPs[0] != ip || a.Ports[0].NodePort != np || a.ExternalIP != lb {
			t.Fatalf("changed: %v %d %v", a.ClusterIPs, a.Ports[0].NodePort, a.ExternalIP)
		}
	})
	t.Run("explicit request wins over a reservation", func(t *testing.T) {
		b := NewBuilder(cfg)
		b.SetReserved(Reserved{IPs: map[netip.Addr]string{netip.MustParseAddr("198.19.0.77"): "other/x"}})
		snap, _, err := b.Build(mustObjects(t, svcYAML("c", "ClusterIP", "  clusterIP: 198.19.0.77\n"+port80)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.Lookup("default/c").ClusterIPs[0]; got.String() != "198.19.0.77" {
			t.Fatalf("clusterIP %v", got)
		}
	})
}
