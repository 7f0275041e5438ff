package steer

import (
	"maps"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpsvc/lb/bench/tstest"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	vip  = netip.MustParseAddr("198.19.1.1")
	cip  = netip.MustParseAddr("198.19.0.10")
	node = netip.MustParseAddr("198.18.0.1")
	v6   = netip.MustParseAddr("2001:db8::10")
	v6n  = netip.MustParseAddr("2001:db8::20") // an IPv6 node address with SNAT ports
	peer = netip.MustParseAddr("198.18.0.9")   // a remote host the node talks to
)

// The SNAT ports steered on the node addresses in the table cases.
const snatFirst, snatLast = 61000, 61999

// testRanges is the port-range set the table cases run against.
var testRanges = []PortRange{
	{Addr: node, First: snatFirst, Last: snatLast},
	{Addr: v6n, First: snatFirst, Last: snatLast},
}

// testFrontends is the set the table cases run against.
var testFrontends = []Frontend{
	{Addr: cip, Port: 80, Proto: ProtoTCP},
	{Addr: cip, Port: 53, Proto: ProtoUDP},
	{Addr: cip, Proto: ProtoICMP, Flags: FlagEcho | FlagICMPError},
	{Addr: node, Port: 30080, Proto: ProtoTCP},
	{Addr: node, Proto: ProtoICMP, Flags: FlagICMPError},
	{Addr: v6, Port: 443, Proto: ProtoTCP},
	{Addr: v6, Proto: ProtoICMPv6, Flags: FlagEcho},
	{Addr: vip, Proto: ProtoICMP, Flags: FlagICMPError},
	{Addr: v6n, Port: 8443, Proto: ProtoTCP},
	{Addr: v6n, Proto: ProtoICMPv6, Flags: FlagICMPError},
}

// goLookup is the Go side of the maps for Classify.
type goLookup struct {
	f4     map[key4]uint32
	f6     map[key6]uint32
	vips   map[[4]byte]bool
	ranges map[netip.Addr]PortRange
}

func newGoLookup(t testing.TB, fs []Frontend, vips []netip.Addr, ranges []PortRange) *goLookup {
	l := &goLookup{f4: map[key4]uint32{}, f6: map[key6]uint32{}, vips: map[[4]byte]bool{}, ranges: map[netip.Addr]PortRange{}}
	for _, r := range ranges {
		l.ranges[r.Addr] = r
	}
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
func (l *goLookup) PortRange4(a [4]byte) (uint16, uint16, bool) {
	r, ok := l.ranges[netip.AddrFrom4(a)]
	return r.First, r.Last, ok
}
func (l *goLookup) PortRange6(a [16]byte) (uint16, uint16, bool) {
	r, ok := l.ranges[netip.AddrFrom16(a)]
	return r.First, r.Last, ok
}

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

// sentPacket is an IP packet (no Ethernet header) the node sent from src:sport to dst:dport:
// what an ICMP error quotes.
func sentPacket(t testing.TB, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto layers.IPProtocol) []byte {
	var ipl gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ipl, nl = ip, ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ipl, nl = ip, ip
	}
	var l4 gopacket.SerializableLayer
	switch proto {
	case layers.IPProtocolTCP:
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Window: 1000}
		_ = tc.SetNetworkLayerForChecksum(nl)
		l4 = tc
	case layers.IPProtocolUDP:
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = u.SetNetworkLayerForChecksum(nl)
		l4 = u
	default:
		l4 = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}
	}
	return serialize(t, ipl, l4, gopacket.Payload(make([]byte, 64)))
}

// icmpErr4 is an ICMP error (type, code) from a router to dst quoting the packet q.
func icmpErr4(t testing.TB, dst netip.Addr, typ, code uint8, q []byte) []byte {
	return serialize(t, eth(layers.EthernetTypeIPv4), ip4(dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400}, gopacket.Payload(q))
}

// icmpErr6 is an ICMPv6 error (type, code) to dst quoting the packet q.
func icmpErr6(t testing.TB, dst netip.Addr, typ, code uint8, q []byte) []byte {
	ip := ip6(dst, layers.IPProtocolICMPv6)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append([]byte{0, 0, 0x05, 0x00}, q...)))
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
		{"unreachable to node without a quoted packet", icmp4(t, node, 3), PassMalformed},
		{"frag needed quoting the host's ssh connection", icmpErr4(t, node, 3, 4, sentPacket(t, node, 22, peer, 50000, layers.IPProtocolTCP)), PassICMPNotOurs},
		{"frag needed quoting the host's api client port", icmpErr4(t, node, 3, 4, sentPacket(t, node, 45000, peer, 6443, layers.IPProtocolTCP)), PassICMPNotOurs},
		{"frag needed quoting an SNAT tuple", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatFirst+7, peer, 8080, layers.IPProtocolTCP)), RedirectICMP},
		{"frag needed quoting the first SNAT port", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatFirst, peer, 8080, layers.IPProtocolTCP)), RedirectICMP},
		{"frag needed quoting the last SNAT port", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatLast, peer, 8080, layers.IPProtocolTCP)), RedirectICMP},
		{"frag needed quoting a port below the SNAT range", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatFirst-1, peer, 8080, layers.IPProtocolTCP)), PassICMPNotOurs},
		{"frag needed quoting a port above the SNAT range", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatLast+1, peer, 8080, layers.IPProtocolTCP)), PassICMPNotOurs},
		{"frag needed quoting a nodeport reply", icmpErr4(t, node, 3, 4, sentPacket(t, node, 30080, peer, 50000, layers.IPProtocolTCP)), RedirectICMP},
		{"frag needed quoting a frontend reply", icmpErr4(t, cip, 3, 4, sentPacket(t, cip, 80, peer, 50000, layers.IPProtocolTCP)), RedirectICMP},
		{"unreachable quoting a held VIP's floating SNAT port", icmpErr4(t, vip, 3, 3, sentPacket(t, vip, 1234, peer, 53, layers.IPProtocolUDP)), RedirectICMP},
		{"time exceeded quoting an SNAT udp tuple", icmpErr4(t, node, 11, 0, sentPacket(t, node, snatLast, peer, 53, layers.IPProtocolUDP)), RedirectICMP},
		{"time exceeded quoting the host's gossip", icmpErr4(t, node, 11, 0, sentPacket(t, node, 7946, peer, 7946, layers.IPProtocolUDP)), PassICMPNotOurs},
		{"parameter problem quoting an SNAT tuple", icmpErr4(t, node, 12, 0, sentPacket(t, node, snatFirst, peer, 80, layers.IPProtocolTCP)), RedirectICMP},
		{"unreachable quoting an echo", icmpErr4(t, node, 3, 1, sentPacket(t, node, 0, peer, 0, layers.IPProtocolICMPv4)), PassICMPNotOurs},
		{"unreachable quoting a truncated header", icmpErr4(t, node, 3, 4, sentPacket(t, node, snatFirst, peer, 80, layers.IPProtocolTCP)[:22]), PassMalformed},
		{"tcp to the first SNAT port of a node", tcpTo(t, node, snatFirst), RedirectFrontend},
		{"udp to the last SNAT port of a node", udpTo(t, node, snatLast), RedirectFrontend},
		{"tcp below the SNAT range", tcpTo(t, node, snatFirst-1), PassNoFrontend},
		{"udp above the SNAT range", udpTo(t, node, snatLast+1), PassNoFrontend},
		{"tcp v6 SNAT port", tcpTo(t, v6n, snatFirst+1), RedirectFrontend},
		{"tcp v6 outside the SNAT range", tcpTo(t, v6n, 22), PassNoFrontend},
		{"too big v6 quoting the host's ssh", icmpErr6(t, v6n, 2, 0, sentPacket(t, v6n, 22, v6, 50000, layers.IPProtocolTCP)), PassICMPNotOurs},
		{"too big v6 quoting an SNAT tuple", icmpErr6(t, v6n, 2, 0, sentPacket(t, v6n, snatLast, v6, 80, layers.IPProtocolTCP)), RedirectICMP},
		{"too big v6 quoting a frontend reply", icmpErr6(t, v6n, 2, 0, sentPacket(t, v6n, 8443, v6, 50000, layers.IPProtocolTCP)), RedirectICMP},
		{"unreachable v6 quoting the host's udp", icmpErr6(t, v6n, 1, 4, sentPacket(t, v6n, 5353, v6, 53, layers.IPProtocolUDP)), PassICMPNotOurs},
		{"too big v6 truncated quote", icmpErr6(t, v6n, 2, 0, sentPacket(t, v6n, snatLast, v6, 80, layers.IPProtocolTCP)[:30]), PassMalformed},
		{"echo reply to node", icmp4(t, node, 0), PassNoFrontend},
		{"unreachable elsewhere", icmpErr4(t, peer, 3, 4, sentPacket(t, peer, snatFirst, node, 80, layers.IPProtocolTCP)), PassNoFrontend},
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
	l := newGoLookup(t, testFrontends, []netip.Addr{vip}, testRanges)
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

func loadTest(t testing.TB) *Program {
	t.Helper()
	tstest.RequireRoot(t)
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
	if err := p.SetPortRanges(testRanges); err != nil {
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
	if tstest.IsRoot() {
		p = loadTest(f)
	}
	l := newGoLookup(f, testFrontends, []netip.Addr{vip}, testRanges)
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

// kernelKeys4 returns the IPv4 frontend map's keys as the kernel holds them.
func kernelKeys4(t *testing.T, p *Program) map[key4]uint32 {
	t.Helper()
	got := map[key4]uint32{}
	var k key4
	var v uint32
	it := p.front4.Iterate()
	for it.Next(&k, &v) {
		got[k] = v
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// manyFrontends is n TCP frontends on distinct ports of addr, from port first.
func manyFrontends(addr netip.Addr, first, n int) []Frontend {
	set := make([]Frontend, n)
	for i := range set {
		set[i] = Frontend{Addr: addr, Port: uint16(first + i), Proto: ProtoTCP}
	}
	return set
}

func TestPlanTooBigKeepsPreviousPlan(t *testing.T) {
	p := loadTest(t) // MaxFrontends 1024, holding testFrontends
	before := kernelKeys4(t, p)
	tooBig := append(manyFrontends(node, 1000, p.cfg.MaxFrontends), testFrontends...)
	if err := p.SetFrontends(tooBig); err == nil {
		t.Fatal("SetFrontends of a plan larger than MaxFrontends: no error")
	}
	if got := kernelKeys4(t, p); !maps.Equal(got, before) {
		t.Fatalf("after a refused plan the kernel map has %d entries, want the previous %d", len(got), len(before))
	}
	if !maps.Equal(p.cur4, before) {
		t.Fatalf("shadow copy has %d entries, kernel map %d", len(p.cur4), len(before))
	}
	if got := runReason(t, p, tcpTo(t, cip, 80)); got != RedirectFrontend {
		t.Fatalf("a previous frontend after a refused plan: %s, want %s", got, RedirectFrontend)
	}

	tooManyRanges := make([]PortRange, p.cfg.MaxPortRanges+1)
	for i := range tooManyRanges {
		tooManyRanges[i] = PortRange{Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), First: 1000, Last: 2000}
	}
	if err := p.SetPortRanges(tooManyRanges); err == nil {
		t.Fatal("SetPortRanges larger than MaxPortRanges: no error")
	}
	if got := runReason(t, p, tcpTo(t, node, snatFirst)); got != RedirectFrontend {
		t.Fatalf("a previous SNAT port after a refused plan: %s, want %s", got, RedirectFrontend)
	}
	if got := runReason(t, p, tcpTo(t, node, 1500)); got != PassNoFrontend {
		t.Fatalf("a port of the refused plan: %s, want %s", got, PassNoFrontend)
	}
}

func TestPlanFillingTheMapReplacesTheOld(t *testing.T) {
	p := loadTest(t)
	// Old and new together exceed the map; the new alone fills it exactly: gone entries are
	// deleted first.
	full := manyFrontends(node, 1000, p.cfg.MaxFrontends)
	if err := p.SetFrontends(full); err != nil {
		t.Fatalf("SetFrontends of exactly MaxFrontends: %v", err)
	}
	if got := len(kernelKeys4(t, p)); got != p.cfg.MaxFrontends {
		t.Fatalf("kernel map has %d entries, want %d", got, p.cfg.MaxFrontends)
	}
	for _, c := range []struct {
		frame []byte
		want  Reason
	}{{tcpTo(t, node, 1000), RedirectFrontend}, {tcpTo(t, node, uint16(999+p.cfg.MaxFrontends)), RedirectFrontend}, {tcpTo(t, cip, 80), PassNoFrontend}} {
		if got := runReason(t, p, c.frame); got != c.want {
			t.Fatalf("%s, want %s", got, c.want)
		}
	}
}

func TestFailedWriteRestoresPreviousEntries(t *testing.T) {
	p := loadTest(t)
	before := kernelKeys4(t, p)
	// Claim more room than the kernel map has, so the kernel refuses a put midway.
	want := map[key4]uint32{}
	for _, f := range manyFrontends(node, 1000, p.cfg.MaxFrontends+10) {
		want[encodeKey4(f.Addr.As4(), f.Port, f.Proto)] = 1
	}
	p.mu.Lock()
	err := syncMap(p.front4, p.cur4, want, 4*p.cfg.MaxFrontends)
	p.mu.Unlock()
	if err == nil {
		t.Fatal("a write past the kernel map's capacity: no error")
	}
	if got := kernelKeys4(t, p); !maps.Equal(got, before) {
		t.Fatalf("after a failed write the kernel map has %d entries, want the previous %d", len(got), len(before))
	}
	if !maps.Equal(p.cur4, before) {
		t.Fatalf("shadow copy has %d entries, want %d", len(p.cur4), len(before))
	}
}

func TestSetPortRangesValidates(t *testing.T) {
	p := loadTest(t)
	cases := []struct {
		name   string
		ranges []PortRange
	}{
		{"first after last", []PortRange{{Addr: node, First: 2, Last: 1}}},
		{"no address", []PortRange{{First: 1, Last: 2}}},
		{"two ranges for one address", []PortRange{{Addr: node, First: 1, Last: 2}, {Addr: node, First: 3, Last: 4}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := p.SetPortRanges(c.ranges); err == nil {
				t.Fatal("no error")
			}
			if got := runReason(t, p, udpTo(t, node, snatFirst)); got != RedirectFrontend {
				t.Fatalf("previous range after a refused set: %s, want %s", got, RedirectFrontend)
			}
		})
	}
	if err := p.SetPortRanges(nil); err != nil {
		t.Fatal(err)
	}
	if got := runReason(t, p, udpTo(t, node, snatFirst)); got != PassNoFrontend {
		t.Fatalf("after clearing the ranges: %s, want %s", got, PassNoFrontend)
	}
}
