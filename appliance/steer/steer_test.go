package steer

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	vip  = netip.MustParseAddr("198.19.1.1")
	cip  = netip.MustParseAddr("198.19.0.10")
	node = netip.MustParseAddr("198.18.0.1")
	v6   = netip.MustParseAddr("2001:db8::10")
)

// testFrontends is the set the table cases run against.
var testFrontends = []Frontend{
	{Addr: cip, Port: 80, Proto: ProtoTCP},
	{Addr: cip, Port: 53, Proto: ProtoUDP},
	{Addr: cip, Proto: ProtoICMP, Flags: FlagEcho | FlagICMPError},
	{Addr: node, Port: 30080, Proto: ProtoTCP},
	{Addr: node, Proto: ProtoICMP, Flags: FlagICMPError},
	{Addr: v6, Port: 443, Proto: ProtoTCP},
	{Addr: v6, Proto: ProtoICMPv6, Flags: FlagEcho},
}

// goLookup is the Go side of the maps for Classify.
type goLookup struct {
	f4   map[key4]uint32
	f6   map[key6]uint32
	vips map[[4]byte]bool
}

func newGoLookup(t testing.TB, fs []Frontend, vips []netip.Addr) *goLookup {
	l := &goLookup{f4: map[key4]uint32{}, f6: map[key6]uint32{}, vips: map[[4]byte]bool{}}
	for _, f := range fs {
		v, err := f.validate()
		if err != nil {
			t.Fatal(err)
		}
		if f.Addr.Is4() {
			l.f4[encodeKey4(f.Addr.As4(), f.Port, f.Proto)] = v
		} else {
			l.f6[encodeKey6(f.Addr.As16(), f.Port, f.Proto)] = v
		}
	}
	for _, a := range vips {
		l.vips[a.As4()] = true
	}
	return l
}

func (l *goLookup) Frontend4(k [8]byte) (uint32, bool)  { v, ok := l.f4[k]; return v, ok }
func (l *goLookup) Frontend6(k [20]byte) (uint32, bool) { v, ok := l.f6[k]; return v, ok }
func (l *goLookup) VIP(a [4]byte) bool                  { return l.vips[a] }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macB, DstMAC: macA, EthernetType: t}
}

func ip4(dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IP{198, 18, 0, 2}, DstIP: dst.AsSlice()}
}

func ip6(dst netip.Addr, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("2001:db8::2"), DstIP: dst.AsSlice()}
}

func udpTo(t testing.TB, dst netip.Addr, port uint16) []byte {
	ip := ip4(dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv4), ip, u, gopacket.Payload("hello"))
}

func tcpTo(t testing.TB, dst netip.Addr, port uint16) []byte {
	var ipl gopacket.SerializableLayer
	var et layers.EthernetType
	tc := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), SYN: true, Window: 1000}
	if dst.Is4() {
		ip := ip4(dst, layers.IPProtocolTCP)
		_ = tc.SetNetworkLayerForChecksum(ip)
		ipl, et = ip, layers.EthernetTypeIPv4
	} else {
		ip := ip6(dst, layers.IPProtocolTCP)
		_ = tc.SetNetworkLayerForChecksum(ip)
		ipl, et = ip, layers.EthernetTypeIPv6
	}
	return serialize(t, eth(et), ipl, tc)
}

func icmp4(t testing.TB, dst netip.Addr, typ uint8) []byte {
	return serialize(t, eth(layers.EthernetTypeIPv4), ip4(dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}, gopacket.Payload("12345678"))
}

func icmp6(t testing.TB, dst netip.Addr, typ uint8) []byte {
	ip := ip6(dst, layers.IPProtocolICMPv6)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload("12345678"))
}

func arp(t testing.TB, op uint16, sender, target netip.Addr) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: macB, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: macB, SourceProtAddress: sender.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()})
}

type frameCase struct {
	name  string
	frame []byte
	want  Reason
}

func frameCases(t testing.TB) []frameCase {
	vlan := func(b []byte) []byte { // insert an 802.1Q tag after the MACs
		out := append([]byte(nil), b[:12]...)
		out = append(out, 0x81, 0x00, 0x00, 0x07)
		return append(out, b[12:]...)
	}
	withIHL6 := func(b []byte) []byte { // IPv4 header with 4 bytes of options (NOPs)
		out := append([]byte(nil), b[:14]...)
		hdr := append([]byte(nil), b[14:34]...)
		hdr[0] = 0x46
		hdr[3] += 4
		out = append(out, hdr...)
		out = append(out, 1, 1, 1, 1)
		return append(out, b[34:]...)
	}
	frag := func(b []byte, off uint16) []byte {
		out := append([]byte(nil), b...)
		out[20], out[21] = byte(off>>8), byte(off)
		return out
	}
	return []frameCase{
		{"udp to frontend", udpTo(t, cip, 53), RedirectFrontend},
		{"udp to other port", udpTo(t, cip, 54), PassNoFrontend},
		{"tcp to frontend", tcpTo(t, cip, 80), RedirectFrontend},
		{"tcp ssh to node", tcpTo(t, node, 22), PassNoFrontend},
		{"tcp nodeport", tcpTo(t, node, 30080), RedirectFrontend},
		{"udp to tcp-only port", udpTo(t, node, 30080), PassNoFrontend},
		{"vlan udp to frontend", vlan(udpTo(t, cip, 53)), RedirectFrontend},
		{"vlan udp other port", vlan(udpTo(t, cip, 9)), PassNoFrontend},
		{"ipv4 options", withIHL6(tcpTo(t, cip, 80)), RedirectFrontend},
		{"first fragment", frag(udpTo(t, cip, 53), 0x2000), RedirectFrontend},
		{"non-first fragment", frag(udpTo(t, cip, 53), 0x0010), PassFragment},
		{"echo to held VIP", icmp4(t, vip, 8), RedirectICMP},
		{"tcp to any port of a held VIP (floating SNAT reply port)", tcpTo(t, vip, 62000), RedirectFrontend},
		{"udp to any port of a held VIP", udpTo(t, vip, 61001), RedirectFrontend},
		{"echo to clusterIP", icmp4(t, cip, 8), RedirectICMP},
		{"echo to node", icmp4(t, node, 8), PassNoFrontend},
		{"unreachable to node", icmp4(t, node, 3), RedirectICMP},
		{"time exceeded to node", icmp4(t, node, 11), RedirectICMP},
		{"echo reply to node", icmp4(t, node, 0), PassNoFrontend},
		{"unreachable elsewhere", icmp4(t, netip.MustParseAddr("198.18.0.9"), 3), PassNoFrontend},
		{"tcp v6 frontend", tcpTo(t, v6, 443), RedirectFrontend},
		{"tcp v6 other", tcpTo(t, v6, 444), PassNoFrontend},
		{"echo v6 frontend", icmp6(t, v6, 128), RedirectICMP},
		{"too big v6 no error flag", icmp6(t, v6, 2), PassNoFrontend},
		{"neighbour solicitation", icmp6(t, v6, 135), PassNoFrontend},
		{"arp request for VIP", arp(t, 1, node, vip), RedirectARP},
		{"arp request for node", arp(t, 1, netip.MustParseAddr("198.18.0.2"), node), PassARP},
		{"arp reply from VIP", arp(t, 2, vip, node), RedirectARP},
		{"gre", serialize(t, eth(layers.EthernetTypeIPv4), ip4(cip, layers.IPProtocolGRE), gopacket.Payload("abcdefgh")), PassOtherL4},
		{"lldp ethertype", serialize(t, eth(layers.EthernetType(0x88cc)), gopacket.Payload("abcdefghijklmnop")), PassNotIP},
		{"truncated ipv4", udpTo(t, cip, 53)[:30], PassMalformed},
		{"truncated l4", udpTo(t, cip, 53)[:35], PassMalformed},
		{"truncated vlan", vlan(udpTo(t, cip, 53))[:16], PassMalformed},
		{"truncated arp", arp(t, 1, node, vip)[:40], PassMalformed},
		{"ethernet only", udpTo(t, cip, 53)[:14], PassMalformed},
	}
}

func TestClassify(t *testing.T) {
	l := newGoLookup(t, testFrontends, []netip.Addr{vip})
	for _, c := range frameCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := Classify(c.frame, l); got != c.want {
				t.Fatalf("Classify = %s, want %s", got, c.want)
			}
		})
	}
}

func TestKeyEncoding(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"v4 tcp 80", func() []byte { k := encodeKey4([4]byte{198, 19, 0, 10}, 80, ProtoTCP); return k[:] }(), []byte{198, 19, 0, 10, 0, 80, 6, 0}},
		{"v4 icmp", func() []byte { k := encodeKey4([4]byte{1, 2, 3, 4}, 0, ProtoICMP); return k[:] }(), []byte{1, 2, 3, 4, 0, 0, 1, 0}},
		{"v6 udp 0x1234", func() []byte { k := encodeKey6(v6.As16(), 0x1234, ProtoUDP); return k[:] }(),
			append(v6.AsSlice(), 0x12, 0x34, 17, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if string(c.got) != string(c.want) {
				t.Fatalf("key % x, want % x", c.got, c.want)
			}
		})
	}
}

func TestFrontendValidate(t *testing.T) {
	cases := []struct {
		name    string
		f       Frontend
		want    uint32
		wantErr bool
	}{
		{"tcp", Frontend{Addr: cip, Port: 80, Proto: ProtoTCP}, uint32(FlagsAll), false},
		{"icmp flags kept", Frontend{Addr: node, Proto: ProtoICMP, Flags: FlagICMPError}, uint32(FlagICMPError), false},
		{"icmp with port", Frontend{Addr: node, Port: 1, Proto: ProtoICMP}, 0, true},
		{"icmp on v6", Frontend{Addr: v6, Proto: ProtoICMP}, 0, true},
		{"icmpv6 on v4", Frontend{Addr: node, Proto: ProtoICMPv6}, 0, true},
		{"sctp", Frontend{Addr: node, Port: 1, Proto: 132}, 0, true},
		{"no address", Frontend{Port: 1, Proto: ProtoTCP}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.f.validate()
			if (err != nil) != c.wantErr || v != c.want {
				t.Fatalf("validate = %d, %v; want %d, error %v", v, err, c.want, c.wantErr)
			}
		})
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs: run as root to test the steering program on this kernel")
	}
}

func loadTest(t testing.TB) *Program {
	t.Helper()
	requireRoot(t)
	cfg := DefaultConfig()
	cfg.MaxFrontends = 1024
	p, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.SetFrontends(testFrontends); err != nil {
		t.Fatal(err)
	}
	if err := p.SetVIPs([]netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	return p
}

// runReason runs frame through the loaded program (BPF_PROG_TEST_RUN) and returns the reason
// whose counter moved.
func runReason(t testing.TB, p *Program, frame []byte) Reason {
	t.Helper()
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	ret, err := p.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	if ret != xdpPass {
		t.Fatalf("return %d, want XDP_PASS (no socket registered: redirect falls back to pass)", ret)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	got := NumReasons
	for r := Reason(0); r < NumReasons; r++ {
		if d := after[r] - before[r]; d == 1 && got == NumReasons {
			got = r
		} else if d != 0 {
			t.Fatalf("counter %s moved by %d", r, d)
		}
	}
	return got
}

func TestProgramMatchesSpec(t *testing.T) {
	p := loadTest(t)
	for _, c := range frameCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := runReason(t, p, c.frame); got != c.want {
				t.Fatalf("program counted %s, want %s", got, c.want)
			}
		})
	}
}

func TestSetFrontendsExact(t *testing.T) {
	p := loadTest(t)
	steps := []struct {
		name string
		set  []Frontend
		want map[string]Reason
	}{
		{"initial", testFrontends, map[string]Reason{"a": RedirectFrontend, "b": PassNoFrontend}},
		{"add b remove a", []Frontend{{Addr: cip, Port: 81, Proto: ProtoTCP}}, map[string]Reason{"a": PassNoFrontend, "b": RedirectFrontend}},
		{"empty", nil, map[string]Reason{"a": PassNoFrontend, "b": PassNoFrontend}},
		{"both", []Frontend{{Addr: cip, Port: 80, Proto: ProtoTCP}, {Addr: cip, Port: 81, Proto: ProtoTCP}}, map[string]Reason{"a": RedirectFrontend, "b": RedirectFrontend}},
	}
	frames := map[string][]byte{"a": tcpTo(t, cip, 80), "b": tcpTo(t, cip, 81)}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := p.SetFrontends(s.set); err != nil {
				t.Fatal(err)
			}
			for k, want := range s.want {
				if got := runReason(t, p, frames[k]); got != want {
					t.Errorf("frame %s: %s, want %s", k, got, want)
				}
			}
			var n int
			var k key4
			var v uint32
			it := p.front4.Iterate()
			for it.Next(&k, &v) {
				n++
			}
			if n != len(p.cur4) {
				t.Errorf("kernel map has %d entries, shadow %d", n, len(p.cur4))
			}
		})
	}
	if err := p.SetVIPs(nil); err != nil {
		t.Fatal(err)
	}
	if got := runReason(t, p, arp(t, 1, node, vip)); got != PassARP {
		t.Fatalf("ARP for a released VIP: %s, want %s", got, PassARP)
	}
}

func FuzzProgramMatchesSpec(f *testing.F) {
	for _, c := range frameCases(f) {
		f.Add(c.frame)
	}
	var p *Program
	if os.Geteuid() == 0 {
		p = loadTest(f)
	}
	l := newGoLookup(f, testFrontends, []netip.Addr{vip})
	f.Fuzz(func(t *testing.T, frame []byte) {
		want := Classify(frame, l)
		if p == nil || len(frame) < 14 || len(frame) > 1500 {
			return // the kernel's test run needs an Ethernet header and an MTU-sized frame
		}
		if got := runReason(t, p, frame); got != want {
			t.Fatalf("program %s, spec %s for % x", got, want, frame)
		}
	})
}
