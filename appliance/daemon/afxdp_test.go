package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/appliance/steer"
	"github.com/xdpsvc/lb/bench/tstest"
)

// TestSteeringFor: the SNAT ports are one range per distinct node address (no per-port
// frontend entries), and each node address gets an ICMP-error entry of its own family.
// (Before SetPortRanges, steeringFor's predecessor added a TCP and a UDP entry per SNAT port
// and gave IPv6 addresses an IPv4 ICMP entry, which steer refuses.)
func TestSteeringFor(t *testing.T) {
	ports := []dataplane.Port{
		{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24"), netip.MustParsePrefix("2001:2::11/64")}},
		{Name: "b", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.2.11/24"), netip.MustParsePrefix("198.18.1.11/24")}},
	}
	dcfg := dataplane.DefaultConfig()
	dcfg.Ports = ports[:1]
	dp, err := dataplane.New(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := dp.Apply(&service.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	s := steeringFor(plan, ports, 61000, 65535)
	wantRanges := []steer.PortRange{
		{Addr: netip.MustParseAddr("198.18.1.11"), First: 61000, Last: 65535},
		{Addr: netip.MustParseAddr("2001:2::11"), First: 61000, Last: 65535},
		{Addr: netip.MustParseAddr("198.18.2.11"), First: 61000, Last: 65535},
	}
	if !slices.Equal(s.ranges, wantRanges) {
		t.Errorf("ranges %v, want %v", s.ranges, wantRanges)
	}
	wantFront := []steer.Frontend{
		{Addr: netip.MustParseAddr("198.18.1.11"), Proto: steer.ProtoICMP, Flags: steer.FlagICMPError},
		{Addr: netip.MustParseAddr("2001:2::11"), Proto: steer.ProtoICMPv6, Flags: steer.FlagICMPError},
		{Addr: netip.MustParseAddr("198.18.2.11"), Proto: steer.ProtoICMP, Flags: steer.FlagICMPError},
	}
	if !slices.Equal(s.frontends, wantFront) {
		t.Errorf("frontends %v, want %v", s.frontends, wantFront)
	}
}

// failingMaps refuses SetVIPs while failVIPs is set.
type failingMaps struct {
	fakeSteerMaps
	failVIPs bool
}

func (f *failingMaps) SetVIPs(v []netip.Addr) error {
	if f.failVIPs {
		return errors.New("set VIPs: refused")
	}
	return f.fakeSteerMaps.SetVIPs(v)
}

// TestApplySteeringRestores: when one interface refuses part of a plan, every interface,
// including the ones already written and the refusing one's other maps, is put back to the
// previous plan's steering, and the error names the interface.
func TestApplySteeringRestores(t *testing.T) {
	a := netip.MustParseAddr("198.18.1.11")
	prev := steering{
		frontends: []steer.Frontend{{Addr: a, Port: 80, Proto: steer.ProtoTCP}},
		ranges:    []steer.PortRange{{Addr: a, First: 61000, Last: 65535}},
	}
	next := steering{
		frontends: []steer.Frontend{{Addr: a, Port: 443, Proto: steer.ProtoTCP}},
		ranges:    []steer.PortRange{{Addr: a, First: 62000, Last: 62999}},
		vips:      []netip.Addr{netip.MustParseAddr("198.19.1.1")},
	}
	one := &failingMaps{fakeSteerMaps: fakeSteerMaps{maxFrontends: 10}}
	two := &failingMaps{fakeSteerMaps: fakeSteerMaps{maxFrontends: 10}}
	targets := []steeringTarget{{name: "one", maps: one}, {name: "two", maps: two}}
	if err := applySteering(targets, steering{}, prev); err != nil {
		t.Fatal(err)
	}
	two.failVIPs = true
	two.vips = nil
	err := applySteering(targets, prev, next)
	if err == nil || !strings.Contains(err.Error(), "steering on two") {
		t.Fatalf("err %v, want the refusal on two", err)
	}
	for name, m := range map[string]*failingMaps{"one": one, "two": two} {
		if !slices.Equal(m.frontends, prev.frontends) || !slices.Equal(m.ranges, prev.ranges) || len(m.vips) != 0 {
			t.Errorf("%s holds %v %v %v, want the previous steering", name, m.frontends, m.ranges, m.vips)
		}
	}
}

func TestChooseSNATAddresses(t *testing.T) {
	pf := netip.MustParsePrefix
	ports := []dataplane.Port{
		{Name: "ext", Role: dataplane.RoleExternal, Prefixes: []netip.Prefix{pf("198.18.0.11/24")}},
		{Name: "int", Role: dataplane.RoleCluster, Prefixes: []netip.Prefix{pf("198.18.1.11/24"), pf("198.18.1.12/24"), pf("198.18.1.13/24")}},
	}
	ip := netip.MustParseAddr
	cases := []struct {
		name    string
		addrs   []netip.Addr
		want    []netip.Prefix // int's prefixes
		wantErr string
	}{
		{name: "none configured: unchanged", want: ports[1].Prefixes},
		{name: "third address first", addrs: []netip.Addr{ip("198.18.1.13")}, want: []netip.Prefix{pf("198.18.1.13/24"), pf("198.18.1.11/24"), pf("198.18.1.12/24")}},
		{name: "first listed that the port has", addrs: []netip.Addr{ip("198.18.9.9"), ip("198.18.1.12"), ip("198.18.1.13")},
			want: []netip.Prefix{pf("198.18.1.12/24"), pf("198.18.1.11/24"), pf("198.18.1.13/24")}},
		{name: "cluster port without one", addrs: []netip.Addr{ip("198.18.0.11")}, wantErr: "interface int has none of network.snat.addresses"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := chooseSNATAddresses(ports, c.addrs)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[1].Prefixes, c.want) || !slices.Equal(got[0].Prefixes, ports[0].Prefixes) {
				t.Fatalf("prefixes %v / %v, want ext unchanged and int %v", got[0].Prefixes, got[1].Prefixes, c.want)
			}
		})
	}
	if ports[1].Prefixes[0] != pf("198.18.1.11/24") {
		t.Fatalf("input ports modified: %v", ports[1].Prefixes)
	}
}

// TestSyncRealPrograms runs afxdp.Sync against loaded steering programs (not attached): node
// addresses of both families are accepted (an IPv6 ICMP entry in ICMPv6), and a plan with more
// frontends than MaxFrontends fails on the interface that cannot hold it.
func TestSyncRealPrograms(t *testing.T) {
	tstest.RequireRoot(t)
	ports := []dataplane.Port{{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24"), netip.MustParsePrefix("2001:2::11/64")}}}
	a := &afxdp{ports: ports, snatLo: 61000, snatHi: 65535}
	for i, maxFront := range []int{64, 4} {
		cfg := steer.DefaultConfig()
		cfg.MaxFrontends = maxFront
		prog, err := steer.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = prog.Close() })
		a.steering = append(a.steering, steeringTarget{name: []string{"roomy", "small"}[i], maps: prog})
	}
	dcfg := dataplane.DefaultConfig()
	dcfg.Ports = ports
	dp, err := dataplane.New(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	small, err := dp.Apply(&service.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(small); err != nil {
		t.Fatalf("sync of the node addresses alone: %v", err)
	}
	big, err := dp.Apply(&service.Snapshot{Services: []*service.Service{
		{Name: "web", Namespace: "default", ClusterIPs: []netip.Addr{netip.MustParseAddr("198.19.0.10")},
			Ports: []service.Port{{ID: 1, Protocol: service.TCP, Port: 80}, {ID: 2, Protocol: service.TCP, Port: 81}, {ID: 3, Protocol: service.TCP, Port: 82}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(big); err == nil || !strings.Contains(err.Error(), "steering on small") {
		t.Fatalf("sync of %d frontends into a map of 4: %v", len(big.Frontends()), err)
	}
	if !slices.Equal(a.applied.frontends, steeringFor(small, ports, 61000, 65535).frontends) {
		t.Fatalf("applied %v after the refused sync, want the previous plan's", a.applied.frontends)
	}
}
