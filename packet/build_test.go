package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestBuildARP(t *testing.T) {
	var lbMAC [6]byte
	copy(lbMAC[:], macLB)
	req := mustParse(t, arpFrame(t, 1)).ARP
	tests := []struct {
		name               string
		build              func(dst []byte) (int, error)
		ethDst             net.HardwareAddr
		op                 uint16
		senderHW, targetHW []byte
		senderIP, targetIP net.IP
	}{
		{"reply to request", func(d []byte) (int, error) { return BuildARPReply(d, &req, lbMAC) },
			macClient, 2, macLB, macClient, ipVIP, ipClient},
		{"request", func(d []byte) (int, error) { return BuildARPRequest(d, lbMAC, a4(ipSNAT), a4(ipBackend)) },
			layers.EthernetBroadcast, 1, macLB, make([]byte, 6), ipSNAT, ipBackend},
		{"duplicate address probe", func(d []byte) (int, error) { return BuildARPRequest(d, lbMAC, [4]byte{}, a4(ipVIP)) },
			layers.EthernetBroadcast, 1, macLB, make([]byte, 6), net.IPv4zero.To4(), ipVIP},
		{"gratuitous request", func(d []byte) (int, error) { return BuildGratuitousARP(d, lbMAC, a4(ipVIP), false) },
			layers.EthernetBroadcast, 1, macLB, make([]byte, 6), ipVIP, ipVIP},
		{"gratuitous reply", func(d []byte) (int, error) { return BuildGratuitousARP(d, lbMAC, a4(ipVIP), true) },
			layers.EthernetBroadcast, 2, macLB, layers.EthernetBroadcast, ipVIP, ipVIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 128)
			n, err := tc.build(buf)
			if err != nil || n != MinFrameLen {
				t.Fatalf("n %d err %v", n, err)
			}
			p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
			e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			if e == nil || a == nil {
				t.Fatalf("gopacket decodes %v", p)
			}
			if !bytes.Equal(e.DstMAC, tc.ethDst) || !bytes.Equal(e.SrcMAC, macLB) || a.Operation != tc.op ||
				!bytes.Equal(a.SourceHwAddress, tc.senderHW) || !bytes.Equal(a.DstHwAddress, tc.targetHW) ||
				!net.IP(a.SourceProtAddress).Equal(tc.senderIP) || !net.IP(a.DstProtAddress).Equal(tc.targetIP) {
				t.Errorf("eth %v -> %v arp %+v", e.SrcMAC, e.DstMAC, a)
			}
			if _, err := tc.build(buf[:59]); !errors.Is(err, ErrShortBuffer) {
				t.Errorf("short buffer: %v", err)
			}
		})
	}
}

func TestEchoReply(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		src, dst net.IP
		typ      uint8
	}{
		{"ipv4", echo4Frame(t, frameOpts{payload: 56}, 8), ipVIP, ipClient, 0},
		{"ipv4 vlan options", echo4Frame(t, frameOpts{vlan: true, options: true, payload: 3}, 8), ipVIP, ipClient, 0},
		{"ipv6", echo6Frame(t, frameOpts{payload: 56}, 128), ip6VIP, ip6Client, 129},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			buf := make([]byte, 2048)
			n, err := BuildEchoReply(buf, tc.frame, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := EchoReplyInPlace(tc.frame, h); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], tc.frame[:n]) {
				t.Errorf("BuildEchoReply and EchoReplyInPlace differ")
			}
			expectValid(t, tc.frame)
			rh := mustParse(t, tc.frame)
			s, d, ttl := endpoints(t, tc.frame, layers.LayerTypeEthernet)
			if !sameEP(s, tc.src, 0x4242) || !sameEP(d, tc.dst, 0x4242) || ttl != DefaultTTL || rh.ICMPType != tc.typ {
				t.Errorf("%v -> %v ttl %d type %d", s, d, ttl, rh.ICMPType)
			}
			if !bytes.Equal(tc.frame[0:6], macClient) || !bytes.Equal(tc.frame[6:12], macLB) {
				t.Errorf("macs %x", tc.frame[:12])
			}
			if err := EchoReplyInPlace(tc.frame, rh); !errors.Is(err, ErrNotEchoRequest) {
				t.Errorf("reply to a reply: %v", err)
			}
		})
	}
}

func TestBuildICMPErrors(t *testing.T) {
	big4 := udp4Frame(t, frameOpts{payload: 1400})
	big6 := udp6Frame(t, frameOpts{payload: 1400})
	tests := []struct {
		name     string
		frame    []byte
		build    func(dst, f []byte, h *Headers) (int, error)
		typ      uint8
		code     uint8
		rest     uint32
		from, to net.IP
		wantLen  int
	}{
		{"port unreachable v4", udp4Frame(t, frameOpts{payload: 10}), BuildPortUnreachable4, 3, 3, 0, ipVIP, ipClient, 14 + 28 + 38},
		{"port unreachable v4 vlan, quote cut to 576", func() []byte { return udp4Frame(t, frameOpts{vlan: true, payload: 1400}) }(), BuildPortUnreachable4, 3, 3, 0, ipVIP, ipClient, 18 + 576},
		{"frag needed v4", big4, func(d, f []byte, h *Headers) (int, error) { return BuildFragNeeded4(d, f, h, 1400, a4(ipSNAT)) }, 3, 4, 1400, ipSNAT, ipClient, 14 + 576},
		{"port unreachable v6", udp6Frame(t, frameOpts{payload: 10}), BuildPortUnreachable6, 1, 4, 0, ip6VIP, ip6Client, 14 + 48 + 58},
		{"packet too big v6, quote cut to 1280", big6, func(d, f []byte, h *Headers) (int, error) { return BuildPacketTooBig6(d, f, h, 1280, a16(ip6SNAT)) }, 2, 0, 1280, ip6SNAT, ip6Client, 14 + 1280},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			buf := make([]byte, 2048)
			n, err := tc.build(buf, tc.frame, h)
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.wantLen {
				t.Errorf("length %d, want %d", n, tc.wantLen)
			}
			out := buf[:n]
			rh := mustParse(t, out)
			if !rh.IsICMPError() || rh.ICMPType != tc.typ || rh.ICMPCode != tc.code || rh.HasVLAN != h.HasVLAN {
				t.Errorf("reply type %d code %d inner %v", rh.ICMPType, rh.ICMPCode, rh.Inner.Valid)
			}
			if rest := binary.BigEndian.Uint32(out[rh.L4Off+4:]); rest != tc.rest {
				t.Errorf("rest %d", rest)
			}
			if rh.Inner.Key != h.Key {
				t.Errorf("quoted key %+v, want %+v", rh.Inner.Key, h.Key)
			}
			s, d, _ := endpoints(t, out, layers.LayerTypeEthernet)
			if !s.ip.Equal(tc.from) || !d.ip.Equal(tc.to) {
				t.Errorf("%v -> %v", s, d)
			}
			expectValid(t, out, "inner-udp", "inner-ipv4")
			if r := VerifyChecksums(out, rh); r != OK {
				t.Errorf("VerifyChecksums = %v", r)
			}
			if _, err := tc.build(buf, out, rh); !errors.Is(err, ErrErrorAboutError) {
				t.Errorf("error about error: %v", err)
			}
			if _, err := tc.build(buf[:n-1], tc.frame, h); !errors.Is(err, ErrShortBuffer) {
				t.Errorf("short buffer: %v", err)
			}
		})
	}
}

func TestBuildTCPReset(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		seq, ack uint32
		flags    uint8
		from, to net.IP
	}{
		{"syn v4", tcp4Frame(t, frameOpts{}, "S"), 0, 1001, TCPFlagRST | TCPFlagACK, ipVIP, ipClient},
		{"data with ack v4", tcp4Frame(t, frameOpts{payload: 100}, "PA"), 5000, 0, TCPFlagRST, ipVIP, ipClient},
		{"fin with data, no ack, v4 vlan", tcp4Frame(t, frameOpts{vlan: true, payload: 10}, "F"), 0, 1011, TCPFlagRST | TCPFlagACK, ipVIP, ipClient},
		{"syn v6", tcp6Frame(t, frameOpts{}, "S"), 0, 1001, TCPFlagRST | TCPFlagACK, ip6VIP, ip6Client},
		{"ack v6", tcp6Frame(t, frameOpts{payload: 5}, "A"), 5000, 0, TCPFlagRST, ip6VIP, ip6Client},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			buf := make([]byte, 256)
			n, err := BuildTCPReset(buf, tc.frame, h)
			if err != nil {
				t.Fatal(err)
			}
			out := buf[:n]
			expectValid(t, out)
			rh := mustParse(t, out)
			tcp := out[rh.L4Off:]
			if seq, ack := binary.BigEndian.Uint32(tcp[4:]), binary.BigEndian.Uint32(tcp[8:]); seq != tc.seq || ack != tc.ack || rh.TCPFlags != tc.flags {
				t.Errorf("seq %d ack %d flags %#x", seq, ack, rh.TCPFlags)
			}
			if rh.Key != h.Key.Reverse() {
				t.Errorf("key %+v, want %+v", rh.Key, h.Key.Reverse())
			}
			if _, err := BuildTCPReset(buf, out, rh); !errors.Is(err, ErrIsReset) {
				t.Errorf("reset answering a reset: %v", err)
			}
		})
	}
	u := udp4Frame(t, frameOpts{})
	if _, err := BuildTCPReset(make([]byte, 128), u, mustParse(t, u)); !errors.Is(err, ErrNotTCP) {
		t.Errorf("reset for udp: %v", err)
	}
}

// TestGopacketCheckCatchesBadChecksum proves the gopacket comparison can fail.
func TestGopacketCheckCatchesBadChecksum(t *testing.T) {
	f := tcp4Frame(t, frameOpts{}, "S")
	f[50]++ // TCP checksum
	got, want := gopacketChecksums(t, f)
	if got["tcp"] == want["tcp"] {
		t.Errorf("gopacket comparison missed a wrong TCP checksum")
	}
	if st := refCheck(f, mustParse(t, f)); st[1] != csBad {
		t.Errorf("reference check missed a wrong TCP checksum")
	}
}

func TestZeroAllocations(t *testing.T) {
	tcp4 := tcp4Frame(t, frameOpts{payload: 64}, "A")
	tcp6 := tcp6Frame(t, frameOpts{payload: 64}, "A")
	err4 := icmpErr4Frame(t, frameOpts{}, 3, 3, innerUDP4(t, 8))
	err6 := icmpErr6Frame(t, frameOpts{}, 1, 4, 0, innerUDP6(t))
	echo4 := echo4Frame(t, frameOpts{payload: 8}, 8)
	echo6 := echo6Frame(t, frameOpts{payload: 8}, 128)
	arp := arpFrame(t, 1)
	udp4 := udp4Frame(t, frameOpts{payload: 8})
	udp6 := udp6Frame(t, frameOpts{payload: 8})
	h4, h6, he4, he6 := mustParse(t, tcp4), mustParse(t, tcp6), mustParse(t, err4), mustParse(t, err6)
	hec4, hec6, ha, hu4, hu6 := mustParse(t, echo4), mustParse(t, echo6), mustParse(t, arp), mustParse(t, udp4), mustParse(t, udp6)
	dst := make([]byte, 2048)
	var h Headers
	var mac [6]byte
	tests := []struct {
		name string
		f    func()
	}{
		{"Parse ipv4 tcp", func() { Parse(tcp4, &h) }},
		{"Parse ipv6 tcp", func() { Parse(tcp6, &h) }},
		{"Parse icmp error", func() { Parse(err4, &h) }},
		{"Parse icmpv6 error", func() { Parse(err6, &h) }},
		{"Parse arp", func() { Parse(arp, &h) }},
		{"NAT4", func() { tcp4[22] = 64; NAT4(tcp4, h4, a4(ipSNAT), 1, a4(ipBackend), 2) }},
		{"NAT6", func() { tcp6[21] = 64; NAT6(tcp6, h6, a16(ip6SNAT), 1, a16(ip6Back), 2) }},
		{"NAT4 icmp error", func() { err4[22] = 64; NAT4(err4, he4, a4(ipVIP), 1, a4(ipClient), 2) }},
		{"NAT6 icmpv6 error", func() { err6[21] = 64; NAT6(err6, he6, a16(ip6VIP), 1, a16(ip6Client), 2) }},
		{"SetSrc4", func() { SetSrc4(tcp4, h4, a4(ipSNAT)) }},
		{"SetDst4", func() { SetDst4(tcp4, h4, a4(ipSNAT)) }},
		{"SetSrc6", func() { SetSrc6(tcp6, h6, a16(ip6SNAT)) }},
		{"SetDst6", func() { SetDst6(tcp6, h6, a16(ip6SNAT)) }},
		{"SetPorts", func() { SetPorts(tcp4, h4, 3, 4) }},
		{"SetInner4", func() { SetInner4(err4, he4, a4(ipVIP), 1, a4(ipClient), 2) }},
		{"SetInner6", func() { SetInner6(err6, he6, a16(ip6VIP), 1, a16(ip6Client), 2) }},
		{"DecTTL4", func() { tcp4[22] = 64; DecTTL4(tcp4, h4) }},
		{"DecHopLimit6", func() { tcp6[21] = 64; DecHopLimit6(tcp6, h6) }},
		{"SetMACs", func() { SetMACs(tcp4, mac, mac) }},
		{"VerifyChecksums", func() { VerifyChecksums(tcp6, h6) }},
		{"BuildARPReply", func() { BuildARPReply(dst, &ha.ARP, mac) }},
		{"BuildARPRequest", func() { BuildARPRequest(dst, mac, [4]byte{}, a4(ipVIP)) }},
		{"BuildGratuitousARP", func() { BuildGratuitousARP(dst, mac, a4(ipVIP), true) }},
		{"EchoReplyInPlace", func() { echo4[34] = 8; hec4.ICMPType = 8; EchoReplyInPlace(echo4, hec4) }},
		{"BuildEchoReply v6", func() { BuildEchoReply(dst, echo6, hec6) }},
		{"BuildPortUnreachable4", func() { BuildPortUnreachable4(dst, udp4, hu4) }},
		{"BuildFragNeeded4", func() { BuildFragNeeded4(dst, tcp4, h4, 1400, a4(ipSNAT)) }},
		{"BuildPortUnreachable6", func() { BuildPortUnreachable6(dst, udp6, hu6) }},
		{"BuildPacketTooBig6", func() { BuildPacketTooBig6(dst, tcp6, h6, 1280, a16(ip6SNAT)) }},
		{"BuildTCPReset v4", func() { BuildTCPReset(dst, tcp4, h4) }},
		{"BuildTCPReset v6", func() { BuildTCPReset(dst, tcp6, h6) }},
		{"builder error", func() { BuildTCPReset(dst[:10], tcp4, h4) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(200, tc.f); a != 0 {
				t.Errorf("%v allocations per run", a)
			}
		})
	}
}
