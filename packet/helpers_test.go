package packet

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses of the lab ranges (198.18.0.0/15) and the IPv6 benchmarking prefix 2001:2::/48.
var (
	macClient = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macLB     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ipClient  = net.IP{198, 18, 0, 10}
	ipVIP     = net.IP{198, 19, 1, 1}
	ipSNAT    = net.IP{198, 18, 1, 2}
	ipBackend = net.IP{198, 18, 1, 20}
	ip6Client = net.ParseIP("2001:2::10")
	ip6VIP    = net.ParseIP("2001:2:0:1::1")
	ip6SNAT   = net.ParseIP("2001:2:0:2::2")
	ip6Back   = net.ParseIP("2001:2:0:2::20")
)

func a4(ip net.IP) (a [4]byte)   { copy(a[:], ip.To4()); return a }
func a16(ip net.IP) (a [16]byte) { copy(a[:], ip.To16()); return a }

// serialize builds a frame from gopacket layers with lengths and checksums computed by gopacket.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

type frameOpts struct {
	vlan    bool
	options bool // IPv4 router-alert option
	payload int
	ttl     uint8
}

func eth(o frameOpts, et layers.EthernetType) []gopacket.SerializableLayer {
	e := &layers.Ethernet{SrcMAC: macClient, DstMAC: macLB, EthernetType: et}
	if !o.vlan {
		return []gopacket.SerializableLayer{e}
	}
	e.EthernetType = layers.EthernetTypeDot1Q
	return []gopacket.SerializableLayer{e, &layers.Dot1Q{VLANIdentifier: 42, Type: et}}
}

func ip4(o frameOpts, proto layers.IPProtocol, src, dst net.IP) *layers.IPv4 {
	ttl := o.ttl
	if ttl == 0 {
		ttl = 64
	}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: proto, SrcIP: src, DstIP: dst, Flags: layers.IPv4DontFragment, Id: 0x1234}
	if o.options {
		ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	return ip
}

func ip6(o frameOpts, next layers.IPProtocol, src, dst net.IP) *layers.IPv6 {
	hl := o.ttl
	if hl == 0 {
		hl = 64
	}
	return &layers.IPv6{Version: 6, NextHeader: next, HopLimit: hl, SrcIP: src, DstIP: dst, FlowLabel: 0x12345}
}

func payload(n int) gopacket.Payload {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

func tcpLayer(flags string) *layers.TCP {
	t := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 5000, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	for _, f := range flags {
		switch f {
		case 'S':
			t.SYN = true
		case 'A':
			t.ACK = true
		case 'F':
			t.FIN = true
		case 'R':
			t.RST = true
		case 'P':
			t.PSH = true
		}
	}
	return t
}

func tcp4Frame(tb testing.TB, o frameOpts, flags string) []byte {
	ip := ip4(o, layers.IPProtocolTCP, ipClient, ipVIP)
	t := tcpLayer(flags)
	t.SetNetworkLayerForChecksum(ip)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv4), ip, t, payload(o.payload))...)
}

func udp4Frame(tb testing.TB, o frameOpts) []byte {
	ip := ip4(o, layers.IPProtocolUDP, ipClient, ipVIP)
	u := &layers.UDP{SrcPort: 40001, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv4), ip, u, payload(o.payload))...)
}

func echo4Frame(tb testing.TB, o frameOpts, typ uint8) []byte {
	ip := ip4(o, layers.IPProtocolICMPv4, ipClient, ipVIP)
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 0x4242, Seq: 7}
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv4), ip, ic, payload(o.payload))...)
}

// innerUDP4 is the packet the appliance forwarded (SNAT address to backend), as quoted by an error.
func innerUDP4(tb testing.TB, n int) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP, SrcIP: ipSNAT, DstIP: ipBackend}
	u := &layers.UDP{SrcPort: 50000, DstPort: 5353}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(tb, ip, u, payload(n))
}

func innerTCP4(tb testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolTCP, SrcIP: ipSNAT, DstIP: ipBackend}
	t := tcpLayer("S")
	t.SrcPort, t.DstPort = 50000, 8080
	t.SetNetworkLayerForChecksum(ip)
	return serialize(tb, ip, t)
}

func innerEcho4(tb testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolICMPv4, SrcIP: ipSNAT, DstIP: ipBackend}
	return serialize(tb, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0x777, Seq: 1}, payload(8))
}

// icmpErr4Frame is an ICMP error from the backend about inner (quoted whole, or cut to quote bytes).
func icmpErr4Frame(tb testing.TB, o frameOpts, typ, code uint8, inner []byte) []byte {
	ip := ip4(o, layers.IPProtocolICMPv4, ipBackend, ipSNAT)
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv4), ip, ic, gopacket.Payload(inner))...)
}

func tcp6Frame(tb testing.TB, o frameOpts, flags string) []byte {
	ip := ip6(o, layers.IPProtocolTCP, ip6Client, ip6VIP)
	t := tcpLayer(flags)
	t.SetNetworkLayerForChecksum(ip)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv6), ip, t, payload(o.payload))...)
}

func udp6Frame(tb testing.TB, o frameOpts) []byte {
	ip := ip6(o, layers.IPProtocolUDP, ip6Client, ip6VIP)
	u := &layers.UDP{SrcPort: 40001, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv6), ip, u, payload(o.payload))...)
}

func echo6Frame(tb testing.TB, o frameOpts, typ uint8) []byte {
	ip := ip6(o, layers.IPProtocolICMPv6, ip6Client, ip6VIP)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	ic.SetNetworkLayerForChecksum(ip)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv6), ip, ic,
		&layers.ICMPv6Echo{Identifier: 0x4242, SeqNumber: 7}, payload(o.payload))...)
}

func innerTCP6(tb testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 63, SrcIP: ip6SNAT, DstIP: ip6Back}
	t := tcpLayer("S")
	t.SrcPort, t.DstPort = 50000, 8080
	t.SetNetworkLayerForChecksum(ip)
	return serialize(tb, ip, t, payload(10))
}

func innerUDP6(tb testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 63, SrcIP: ip6SNAT, DstIP: ip6Back}
	u := &layers.UDP{SrcPort: 50000, DstPort: 5353}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(tb, ip, u, payload(12))
}

func icmpErr6Frame(tb testing.TB, o frameOpts, typ, code uint8, rest uint32, inner []byte) []byte {
	ip := ip6(o, layers.IPProtocolICMPv6, ip6Back, ip6SNAT)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ic.SetNetworkLayerForChecksum(ip)
	body := binary.BigEndian.AppendUint32(nil, rest)
	return serialize(tb, append(eth(o, layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(append(body, inner...)))...)
}

func arpFrame(tb testing.TB, op uint16) []byte {
	return serialize(tb, &layers.Ethernet{SrcMAC: macClient, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: macClient, SourceProtAddress: ipClient, DstHwAddress: make([]byte, 6), DstProtAddress: ipVIP})
}

// withExt6 inserts IPv6 extension headers (type, total length in bytes) after the IPv6 header
// at l3 and fixes the chain and the payload length; L4 checksums do not cover them.
func withExt6(frame []byte, l3 int, exts ...[2]int) []byte {
	var ext []byte
	next := frame[l3+6]
	for i := len(exts) - 1; i >= 0; i-- {
		h := make([]byte, exts[i][1])
		h[0] = next
		h[1] = byte(exts[i][1]/8 - 1)
		if exts[i][0] == 0 || exts[i][0] == 60 { // PadN option filling the rest
			h[2], h[3] = 1, byte(len(h)-4)
		}
		next = byte(exts[i][0])
		ext = append(h, ext...)
	}
	out := append([]byte(nil), frame[:l3+40]...)
	out[l3+6] = next
	binary.BigEndian.PutUint16(out[l3+4:], binary.BigEndian.Uint16(out[l3+4:])+uint16(len(ext)))
	out = append(out, ext...)
	return append(out, frame[l3+40:]...)
}

// refSum is an independent, naive ones' complement sum over the concatenation of chunks.
func refSum(chunks ...[]byte) uint16 {
	var all []byte
	for _, c := range chunks {
		all = append(all, c...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		if s > 0xffff {
			s = s&0xffff + 1
		}
	}
	return uint16(s)
}

func refPseudo4(src, dst []byte, proto uint8, n int) []byte {
	p := append(append([]byte{}, src[:4]...), dst[:4]...)
	return append(p, 0, proto, byte(n>>8), byte(n))
}

func refPseudo6(src, dst []byte, proto uint8, n int) []byte {
	p := append(append([]byte{}, src[:16]...), dst[:16]...)
	return append(p, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// Checksum states reported by refCheck: not applicable, bad, good.
const (
	csNA = iota
	csBad
	csGood
)

func good(ok bool) int {
	if ok {
		return csGood
	}
	return csBad
}

// refCheck verifies, from scratch, the IP header, L4, quoted IP header and (when quoted whole)
// quoted L4 checksums of a parsed frame.
func refCheck(frame []byte, h *Headers) (st [4]int) {
	l4 := frame[h.L4Off:h.L3End]
	switch h.Key.Family {
	case FamilyIPv4:
		ip := frame[h.L3Off:h.L4Off]
		st[0] = good(refSum(ip) == 0xffff)
		switch h.L4Proto {
		case ProtoICMP:
			st[1] = good(refSum(l4) == 0xffff)
		case ProtoUDP:
			if l4[6] == 0 && l4[7] == 0 {
				break
			}
			fallthrough
		default:
			st[1] = good(refSum(refPseudo4(ip[12:], ip[16:], h.L4Proto, len(l4)), l4) == 0xffff)
		}
	case FamilyIPv6:
		ip := frame[h.L3Off:]
		st[1] = good(refSum(refPseudo6(ip[8:], ip[24:], h.L4Proto, len(l4)), l4) == 0xffff)
	default:
		return st
	}
	if !h.Inner.Valid {
		return st
	}
	in := frame[h.Inner.L3Off:h.L3End]
	il4 := frame[h.Inner.L4Off:h.L3End]
	var whole bool
	var pseudo []byte
	proto := h.Inner.Key.Proto
	if h.Key.Family == FamilyIPv4 {
		st[2] = good(refSum(in[:h.Inner.L4Off-h.Inner.L3Off]) == 0xffff)
		whole = int(binary.BigEndian.Uint16(in[2:])) == len(in)
		pseudo = refPseudo4(in[12:], in[16:], proto, len(il4))
		if proto == ProtoICMP {
			pseudo = nil
		}
	} else {
		whole = int(binary.BigEndian.Uint16(in[4:]))+40 == len(in)
		pseudo = refPseudo6(in[8:], in[24:], proto, len(il4))
	}
	if whole && !(proto == ProtoUDP && il4[6] == 0 && il4[7] == 0) {
		st[3] = good(refSum(pseudo, il4) == 0xffff)
	}
	return st
}

// gopacketChecksums decodes frame with gopacket and returns its checksum fields by layer name,
// plus those gopacket computes from scratch when it serializes the same layers again. Quoted
// packets in ICMP errors are decoded and recomputed too (prefix "inner-").
func gopacketChecksums(tb testing.TB, frame []byte) (got, want map[string]uint16) {
	tb.Helper()
	got, want = map[string]uint16{}, map[string]uint16{}
	decodeAndRecompute(tb, frame, layers.LayerTypeEthernet, "", got, want)
	return got, want
}

func decodeAndRecompute(tb testing.TB, data []byte, first gopacket.LayerType, prefix string, got, want map[string]uint16) {
	tb.Helper()
	p := gopacket.NewPacket(data, first, gopacket.Default)
	var sl []gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	var inner []byte
	var innerType gopacket.LayerType
layerLoop:
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			got[prefix+"ipv4"] = v.Checksum
			netLayer = v
			innerType = layers.LayerTypeIPv4
		case *layers.IPv6:
			netLayer = v
			innerType = layers.LayerTypeIPv6
		case *layers.TCP:
			got[prefix+"tcp"] = v.Checksum
			v.SetNetworkLayerForChecksum(netLayer)
		case *layers.UDP:
			got[prefix+"udp"] = v.Checksum
			v.SetNetworkLayerForChecksum(netLayer)
		case *layers.ICMPv4:
			got[prefix+"icmpv4"] = v.Checksum
			if t := v.TypeCode.Type(); t == 3 || t == 11 || t == 12 {
				inner = v.Payload
			}
		case *layers.ICMPv6:
			got[prefix+"icmpv6"] = v.Checksum
			v.SetNetworkLayerForChecksum(netLayer)
			if t := v.TypeCode.Type(); t >= 1 && t <= 4 && len(v.Payload) >= 4 {
				inner = v.Payload[4:]
			}
			// gopacket v1.1.19's ICMPv6Echo decoder loses its bytes: reserialize the raw body.
			sl = append(sl, v, gopacket.Payload(v.Payload))
			break layerLoop
		}
		if df, ok := l.(*gopacket.DecodeFailure); ok { // an application payload gopacket guessed wrong
			sl = append(sl, gopacket.Payload(df.LayerContents()))
			continue
		}
		s, ok := l.(gopacket.SerializableLayer)
		if !ok {
			tb.Fatalf("%slayer %v is not serializable", prefix, l.LayerType())
		}
		sl = append(sl, s)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, sl...); err != nil {
		tb.Fatalf("%sreserialize: %v", prefix, err)
	}
	q := gopacket.NewPacket(buf.Bytes(), first, gopacket.Default)
	for _, l := range q.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			want[prefix+"ipv4"] = v.Checksum
		case *layers.TCP:
			want[prefix+"tcp"] = v.Checksum
		case *layers.UDP:
			want[prefix+"udp"] = v.Checksum
		case *layers.ICMPv4:
			want[prefix+"icmpv4"] = v.Checksum
		case *layers.ICMPv6:
			want[prefix+"icmpv6"] = v.Checksum
		}
	}
	if inner != nil && prefix == "" {
		decodeAndRecompute(tb, inner, innerType, "inner-", got, want)
	}
}

// sameChecksum treats 0x0000 and 0xFFFF as the same ones' complement zero, except for UDP where
// zero means "no checksum".
func sameChecksum(name string, a, b uint16) bool {
	if a == b {
		return true
	}
	if bytes.HasSuffix([]byte(name), []byte("udp")) {
		return false
	}
	return (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

// checkGopacket fails the test when any checksum in frame differs from the one gopacket computes.
// skip lists fields that cannot be recomputed (a quoted TCP segment cut short, a zero UDP sum).
func checkGopacket(tb testing.TB, frame []byte, skip ...string) {
	tb.Helper()
	got, want := gopacketChecksums(tb, frame)
	if len(got) == 0 {
		tb.Fatalf("no checksummed layer decoded")
	}
outer:
	for name, g := range got {
		for _, s := range skip {
			if s == name {
				continue outer
			}
		}
		w, ok := want[name]
		if !ok {
			tb.Errorf("%s: not recomputed by gopacket", name)
			continue
		}
		if !sameChecksum(name, g, w) {
			tb.Errorf("%s checksum %#04x, gopacket computes %#04x", name, g, w)
		}
	}
}
