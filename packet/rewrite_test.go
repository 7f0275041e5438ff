package packet

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func mustParse(tb testing.TB, frame []byte) *Headers {
	tb.Helper()
	h := new(Headers)
	if r := Parse(frame, h); r != OK {
		tb.Fatalf("Parse = %v", r)
	}
	return h
}

// expectValid asserts every checksum of frame verifies, by the reference sum and by gopacket.
func expectValid(tb testing.TB, frame []byte, skip ...string) {
	tb.Helper()
	var h Headers
	if r := Parse(frame, &h); r != OK {
		tb.Fatalf("rewritten frame does not parse: %v", r)
	}
	for i, s := range refCheck(frame, &h) {
		if s == csBad {
			tb.Errorf("reference checksum %d (ip, l4, inner ip, inner l4) is bad", i)
		}
	}
	checkGopacket(tb, frame, skip...)
}

type ep struct {
	ip   net.IP
	port uint16
}

// endpoints reads addresses and ports (echo id as both) of a frame or of its quoted packet.
func endpoints(tb testing.TB, data []byte, first gopacket.LayerType) (src, dst ep, ttl uint8) {
	tb.Helper()
	p := gopacket.NewPacket(data, first, gopacket.Default)
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			src.ip, dst.ip, ttl = v.SrcIP, v.DstIP, v.TTL
		case *layers.IPv6:
			src.ip, dst.ip, ttl = v.SrcIP, v.DstIP, v.HopLimit
		case *layers.TCP:
			src.port, dst.port = uint16(v.SrcPort), uint16(v.DstPort)
		case *layers.UDP:
			src.port, dst.port = uint16(v.SrcPort), uint16(v.DstPort)
		case *layers.ICMPv4:
			if t := v.TypeCode.Type(); t == 0 || t == 8 {
				src.port, dst.port = v.Id, v.Id
			}
		case *layers.ICMPv6Echo:
			src.port, dst.port = v.Identifier, v.Identifier
		}
	}
	return src, dst, ttl
}

func sameEP(a ep, ip net.IP, port uint16) bool { return a.ip.Equal(ip) && a.port == port }

func TestNAT4(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		skip  []string
		// expected ports after NAT (newSrcPort 33000, newDstPort 8080)
		sp, dp uint16
	}{
		{name: "tcp", frame: tcp4Frame(t, frameOpts{payload: 33}, "SA"), sp: 33000, dp: 8080},
		{name: "tcp vlan options", frame: tcp4Frame(t, frameOpts{vlan: true, options: true, payload: 1}, "A"), sp: 33000, dp: 8080},
		{name: "udp", frame: udp4Frame(t, frameOpts{payload: 17}), sp: 33000, dp: 8080},
		{name: "echo request id takes src port", frame: echo4Frame(t, frameOpts{payload: 9}, 8), sp: 33000, dp: 33000},
		{name: "echo reply id takes dst port", frame: echo4Frame(t, frameOpts{payload: 9}, 0), sp: 8080, dp: 8080},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			if r := NAT4(tc.frame, h, a4(ipSNAT), 33000, a4(ipBackend), 8080); r != OK {
				t.Fatalf("NAT4 = %v", r)
			}
			expectValid(t, tc.frame, tc.skip...)
			src, dst, ttl := endpoints(t, tc.frame, layers.LayerTypeEthernet)
			if !sameEP(src, ipSNAT, tc.sp) || !sameEP(dst, ipBackend, tc.dp) || ttl != 63 {
				t.Errorf("after NAT4: %v -> %v ttl %d", src, dst, ttl)
			}
		})
	}
}

func TestNAT4UDPZeroChecksumStaysZero(t *testing.T) {
	f := udp4Frame(t, frameOpts{payload: 5})
	f[40], f[41] = 0, 0
	h := mustParse(t, f)
	if r := NAT4(f, h, a4(ipSNAT), 1, a4(ipBackend), 2); r != OK {
		t.Fatal(r)
	}
	if f[40] != 0 || f[41] != 0 {
		t.Errorf("UDP checksum became %#x", binary.BigEndian.Uint16(f[40:]))
	}
	expectValid(t, f, "udp")
}

func TestNAT4ICMPError(t *testing.T) {
	// The backend's error about the forwarded packet SNAT:50000 -> backend goes back to the client
	// as an error from the VIP about client:40000 -> VIP:53.
	tests := []struct {
		name  string
		frame []byte
		skip  []string
		inSP  uint16
		inDP  uint16
	}{
		{name: "port unreachable about whole udp", frame: icmpErr4Frame(t, frameOpts{}, 3, 3, innerUDP4(t, 30)), inSP: 40000, inDP: 53},
		{name: "time exceeded about tcp quoted 8 bytes", frame: icmpErr4Frame(t, frameOpts{}, 11, 0, innerTCP4(t)[:28]), skip: []string{"inner-tcp"}, inSP: 40000, inDP: 53},
		{name: "frag needed about tcp quoted 18 bytes", frame: icmpErr4Frame(t, frameOpts{vlan: true}, 3, 4, innerTCP4(t)[:38]), skip: []string{"inner-tcp"}, inSP: 40000, inDP: 53},
		{name: "unreachable about echo", frame: icmpErr4Frame(t, frameOpts{}, 3, 1, innerEcho4(t)), inSP: 40000, inDP: 40000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			before := refCheck(tc.frame, h)
			if r := NAT4(tc.frame, h, a4(ipVIP), 53, a4(ipClient), 40000); r != OK {
				t.Fatalf("NAT4 = %v", r)
			}
			after := refCheck(tc.frame, h)
			for i := range before {
				if before[i] != after[i] {
					t.Errorf("checksum %d was %d, is %d", i, before[i], after[i])
				}
			}
			expectValid(t, tc.frame, tc.skip...)
			src, dst, _ := endpoints(t, tc.frame, layers.LayerTypeEthernet)
			if !src.ip.Equal(ipVIP) || !dst.ip.Equal(ipClient) {
				t.Errorf("outer %v -> %v", src, dst)
			}
			isrc, idst, _ := endpoints(t, tc.frame[h.Inner.L3Off:h.L3End], layers.LayerTypeIPv4)
			if !isrc.ip.Equal(ipClient) || !idst.ip.Equal(ipVIP) {
				t.Errorf("inner %v -> %v", isrc, idst)
			}
			ih := tc.frame[h.Inner.L4Off:]
			if sp, dp := binary.BigEndian.Uint16(ih), binary.BigEndian.Uint16(ih[2:]); h.Inner.Key.Proto != ProtoICMP && (sp != tc.inSP || dp != tc.inDP) {
				t.Errorf("inner ports %d -> %d", sp, dp)
			}
			if h.Inner.Key.Proto == ProtoICMP && binary.BigEndian.Uint16(ih[4:]) != tc.inSP {
				t.Errorf("inner echo id %d", binary.BigEndian.Uint16(ih[4:]))
			}
		})
	}
}

func TestNAT6(t *testing.T) {
	tests := []struct {
		name   string
		frame  []byte
		sp, dp uint16
	}{
		{name: "tcp", frame: tcp6Frame(t, frameOpts{payload: 33}, "SA"), sp: 33000, dp: 8080},
		{name: "udp ext headers", frame: withExt6(udp6Frame(t, frameOpts{payload: 17}), 14, [2]int{0, 8}, [2]int{60, 16}), sp: 33000, dp: 8080},
		{name: "echo request vlan", frame: echo6Frame(t, frameOpts{vlan: true, payload: 9}, 128), sp: 33000, dp: 33000},
		{name: "echo reply", frame: echo6Frame(t, frameOpts{payload: 9}, 129), sp: 8080, dp: 8080},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			if r := NAT6(tc.frame, h, a16(ip6SNAT), 33000, a16(ip6Back), 8080); r != OK {
				t.Fatalf("NAT6 = %v", r)
			}
			if VerifyChecksums(tc.frame, h) != OK {
				t.Errorf("VerifyChecksums fails")
			}
			for i, s := range refCheck(tc.frame, h) {
				if s == csBad {
					t.Errorf("reference checksum %d bad", i)
				}
			}
			if h.L4Off == 54 || h.HasVLAN { // gopacket cannot reserialize our hand-made extension headers
				checkGopacket(t, tc.frame)
			}
			src, dst, hl := endpoints(t, tc.frame, layers.LayerTypeEthernet)
			if !sameEP(src, ip6SNAT, tc.sp) || !sameEP(dst, ip6Back, tc.dp) || hl != 63 {
				t.Errorf("after NAT6: %v -> %v hop limit %d", src, dst, hl)
			}
		})
	}
}

func TestNAT6ICMPError(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		skip  []string
	}{
		{name: "packet too big about tcp", frame: icmpErr6Frame(t, frameOpts{}, 2, 0, 1400, innerTCP6(t))},
		{name: "unreachable about udp", frame: icmpErr6Frame(t, frameOpts{}, 1, 4, 0, innerUDP6(t))},
		{name: "time exceeded about tcp quoted 8 bytes", frame: icmpErr6Frame(t, frameOpts{}, 3, 0, 0, innerTCP6(t)[:48]), skip: []string{"inner-tcp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			before := refCheck(tc.frame, h)
			if r := NAT6(tc.frame, h, a16(ip6VIP), 53, a16(ip6Client), 40000); r != OK {
				t.Fatalf("NAT6 = %v", r)
			}
			if after := refCheck(tc.frame, h); after != before {
				t.Errorf("checksum states %v, were %v", after, before)
			}
			checkGopacket(t, tc.frame, tc.skip...)
			isrc, idst, _ := endpoints(t, tc.frame[h.Inner.L3Off:h.L3End], layers.LayerTypeIPv6)
			if len(tc.skip) == 0 && (!sameEP(isrc, ip6Client, 40000) || !sameEP(idst, ip6VIP, 53)) {
				t.Errorf("inner %v -> %v", isrc, idst)
			}
		})
	}
}

func TestTTLExpired(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		call  func(f []byte, h *Headers) DropReason
	}{
		{"NAT4 ttl 1", tcp4Frame(t, frameOpts{ttl: 1}, "S"), func(f []byte, h *Headers) DropReason {
			return NAT4(f, h, a4(ipSNAT), 1, a4(ipBackend), 2)
		}},
		{"DecTTL4 ttl 1", udp4Frame(t, frameOpts{ttl: 1}), DecTTL4},
		{"NAT6 hop limit 1", tcp6Frame(t, frameOpts{ttl: 1}, "S"), func(f []byte, h *Headers) DropReason {
			return NAT6(f, h, a16(ip6SNAT), 1, a16(ip6Back), 2)
		}},
		{"DecHopLimit6 hop limit 1", udp6Frame(t, frameOpts{ttl: 1}), DecHopLimit6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			orig := append([]byte(nil), tc.frame...)
			if r := tc.call(tc.frame, h); r != TTLExpired {
				t.Fatalf("got %v, want ttl_expired", r)
			}
			if !bytes.Equal(orig, tc.frame) {
				t.Errorf("frame changed")
			}
		})
	}
}

func TestFineRewrites(t *testing.T) {
	mac1, mac2 := [6]byte{2, 1, 1, 1, 1, 1}, [6]byte{2, 2, 2, 2, 2, 2}
	tests := []struct {
		name   string
		frame  []byte
		call   func(f []byte, h *Headers) DropReason
		expect func(t *testing.T, f []byte)
	}{
		{"SetSrc4 tcp", tcp4Frame(t, frameOpts{}, "S"), func(f []byte, h *Headers) DropReason { return SetSrc4(f, h, a4(ipSNAT)) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); !sameEP(s, ipSNAT, 40000) || !sameEP(d, ipVIP, 80) {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"SetDst4 udp", udp4Frame(t, frameOpts{payload: 3}), func(f []byte, h *Headers) DropReason { return SetDst4(f, h, a4(ipBackend)) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); !sameEP(s, ipClient, 40001) || !sameEP(d, ipBackend, 53) {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"SetDst4 echo keeps id", echo4Frame(t, frameOpts{}, 8), func(f []byte, h *Headers) DropReason { return SetDst4(f, h, a4(ipBackend)) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); !sameEP(s, ipClient, 0x4242) || !sameEP(d, ipBackend, 0x4242) {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"SetSrc4 icmp error outer only", icmpErr4Frame(t, frameOpts{}, 3, 3, innerUDP4(t, 4)), func(f []byte, h *Headers) DropReason { return SetSrc4(f, h, a4(ipVIP)) },
			func(t *testing.T, f []byte) {
				if s, _, _ := endpoints(t, f, layers.LayerTypeEthernet); !s.ip.Equal(ipVIP) {
					t.Errorf("src %v", s)
				}
				if s, _, _ := endpoints(t, f[42:], layers.LayerTypeIPv4); !sameEP(s, ipSNAT, 50000) {
					t.Errorf("inner src %v", s)
				}
			}},
		{"SetInner4", icmpErr4Frame(t, frameOpts{}, 3, 3, innerUDP4(t, 4)), func(f []byte, h *Headers) DropReason {
			return SetInner4(f, h, a4(ipClient), 1111, a4(ipVIP), 2222)
		}, func(t *testing.T, f []byte) {
			if s, d, _ := endpoints(t, f[42:], layers.LayerTypeIPv4); !sameEP(s, ipClient, 1111) || !sameEP(d, ipVIP, 2222) {
				t.Errorf("inner %v -> %v", s, d)
			}
		}},
		{"SetPorts tcp4", tcp4Frame(t, frameOpts{payload: 1}, "A"), func(f []byte, h *Headers) DropReason { return SetPorts(f, h, 1, 65535) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); s.port != 1 || d.port != 65535 {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"SetPorts udp6", udp6Frame(t, frameOpts{payload: 1}), func(f []byte, h *Headers) DropReason { return SetPorts(f, h, 7, 9) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); s.port != 7 || d.port != 9 {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"DecTTL4", tcp4Frame(t, frameOpts{options: true, ttl: 2}, "S"), DecTTL4,
			func(t *testing.T, f []byte) {
				if _, _, ttl := endpoints(t, f, layers.LayerTypeEthernet); ttl != 1 {
					t.Errorf("ttl %d", ttl)
				}
			}},
		{"SetSrc6 tcp", tcp6Frame(t, frameOpts{}, "S"), func(f []byte, h *Headers) DropReason { return SetSrc6(f, h, a16(ip6SNAT)) },
			func(t *testing.T, f []byte) {
				if s, d, _ := endpoints(t, f, layers.LayerTypeEthernet); !sameEP(s, ip6SNAT, 40000) || !sameEP(d, ip6VIP, 80) {
					t.Errorf("%v -> %v", s, d)
				}
			}},
		{"SetDst6 echo", echo6Frame(t, frameOpts{}, 128), func(f []byte, h *Headers) DropReason { return SetDst6(f, h, a16(ip6Back)) },
			func(t *testing.T, f []byte) {
				if _, d, _ := endpoints(t, f, layers.LayerTypeEthernet); !sameEP(d, ip6Back, 0x4242) {
					t.Errorf("dst %v", d)
				}
			}},
		{"SetInner6", icmpErr6Frame(t, frameOpts{}, 1, 4, 0, innerUDP6(t)), func(f []byte, h *Headers) DropReason {
			return SetInner6(f, h, a16(ip6Client), 1111, a16(ip6VIP), 2222)
		}, func(t *testing.T, f []byte) {
			if s, d, _ := endpoints(t, f[62:], layers.LayerTypeIPv6); !sameEP(s, ip6Client, 1111) || !sameEP(d, ip6VIP, 2222) {
				t.Errorf("inner %v -> %v", s, d)
			}
		}},
		{"DecHopLimit6", udp6Frame(t, frameOpts{ttl: 9}), DecHopLimit6,
			func(t *testing.T, f []byte) {
				if _, _, hl := endpoints(t, f, layers.LayerTypeEthernet); hl != 8 {
					t.Errorf("hop limit %d", hl)
				}
			}},
		{"SetMACs", tcp4Frame(t, frameOpts{vlan: true}, "S"), func(f []byte, h *Headers) DropReason { return SetMACs(f, mac1, mac2) },
			func(t *testing.T, f []byte) {
				if !bytes.Equal(f[0:6], mac2[:]) || !bytes.Equal(f[6:12], mac1[:]) {
					t.Errorf("macs %x", f[:12])
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := mustParse(t, tc.frame)
			if r := tc.call(tc.frame, h); r != OK {
				t.Fatalf("got %v", r)
			}
			expectValid(t, tc.frame)
			tc.expect(t, tc.frame)
		})
	}
}

func TestRewriteWrongHeaders(t *testing.T) {
	f4 := tcp4Frame(t, frameOpts{}, "S")
	f6 := tcp6Frame(t, frameOpts{}, "S")
	h4, h6 := mustParse(t, f4), mustParse(t, f6)
	short := f4[:40]
	tests := []struct {
		name string
		r    DropReason
	}{
		{"NAT4 on ipv6", NAT4(f6, h6, [4]byte{}, 0, [4]byte{}, 0)},
		{"NAT6 on ipv4", NAT6(f4, h4, [16]byte{}, 0, [16]byte{}, 0)},
		{"NAT4 on truncated frame", NAT4(short, h4, [4]byte{}, 0, [4]byte{}, 0)},
		{"SetPorts on truncated frame", SetPorts(short, h4, 1, 2)},
		{"SetInner4 on tcp", SetInner4(f4, h4, [4]byte{}, 0, [4]byte{}, 0)},
		{"SetInner6 on tcp", SetInner6(f6, h6, [16]byte{}, 0, [16]byte{}, 0)},
		{"SetMACs on 5 bytes", SetMACs(f4[:5], [6]byte{}, [6]byte{})},
		{"DecTTL4 on zero headers", DecTTL4(f4, &Headers{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.r != WrongHeaders {
				t.Errorf("got %v, want wrong_headers", tc.r)
			}
		})
	}
}
