package packet

import (
	"encoding/binary"
	"testing"
)

// mutate returns a copy of frame changed by f.
func mutate(frame []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), frame...))
}

type parseCase struct {
	name  string
	frame []byte
	want  DropReason
	check func(t *testing.T, h *Headers)
}

func parseCases(tb testing.TB) []parseCase {
	plain := frameOpts{}
	tcp4 := tcp4Frame(tb, frameOpts{payload: 100}, "PA")
	tcp6 := tcp6Frame(tb, frameOpts{payload: 100}, "PA")
	udp4 := udp4Frame(tb, frameOpts{payload: 100})
	udp6 := udp6Frame(tb, frameOpts{payload: 100})
	l3 := EthHeaderLen
	return []parseCase{
		{name: "ipv4 tcp", frame: tcp4, want: OK, check: func(t *testing.T, h *Headers) {
			want := FlowKey{SrcPort: 40000, DstPort: 80, Proto: ProtoTCP, Family: FamilyIPv4}
			copy(want.SrcAddr[:], ipClient.To4())
			copy(want.DstAddr[:], ipVIP.To4())
			if h.Key != want {
				t.Errorf("key %+v, want %+v", h.Key, want)
			}
			expectOffsets(t, h, 14, 34, 58, 14+20+24+100)
			if h.TCPFlags != TCPFlagPSH|TCPFlagACK || h.TTL != 64 || h.L4Proto != ProtoTCP {
				t.Errorf("flags %#x ttl %d proto %d", h.TCPFlags, h.TTL, h.L4Proto)
			}
		}},
		{name: "ipv4 tcp vlan options", frame: tcp4Frame(tb, frameOpts{vlan: true, options: true, payload: 3}, "S"), want: OK,
			check: func(t *testing.T, h *Headers) {
				if !h.HasVLAN || h.VLANTCI&0xfff != 42 {
					t.Errorf("vlan %v tci %d", h.HasVLAN, h.VLANTCI)
				}
				expectOffsets(t, h, 18, 18+24, 18+24+24, 18+24+24+3)
			}},
		{name: "ipv4 udp padded", frame: udp4Frame(tb, frameOpts{payload: 2}), want: OK, check: func(t *testing.T, h *Headers) {
			expectOffsets(t, h, 14, 34, 42, 44)
			if h.Key.Proto != ProtoUDP || h.Key.DstPort != 53 {
				t.Errorf("key %+v", h.Key)
			}
		}},
		{name: "ipv4 udp zero checksum", frame: mutate(udp4, func(b []byte) []byte { b[40], b[41] = 0, 0; return b }), want: OK},
		{name: "ipv4 echo request", frame: echo4Frame(tb, plain, 8), want: OK, check: func(t *testing.T, h *Headers) {
			if h.Key.SrcPort != 0x4242 || h.Key.DstPort != 0x4242 || h.ICMPType != 8 || h.Key.Proto != ProtoICMP {
				t.Errorf("key %+v type %d", h.Key, h.ICMPType)
			}
		}},
		{name: "ipv4 port unreachable about udp", frame: icmpErr4Frame(tb, plain, 3, 3, innerUDP4(tb, 20)), want: OK,
			check: func(t *testing.T, h *Headers) {
				if !h.IsICMPError() || h.Inner.L3Off != 42 || h.Inner.L4Off != 62 || h.L4Proto != ProtoICMP {
					t.Fatalf("inner %+v", h.Inner)
				}
				in := FlowKey{SrcPort: 50000, DstPort: 5353, Proto: ProtoUDP, Family: FamilyIPv4}
				copy(in.SrcAddr[:], ipSNAT.To4())
				copy(in.DstAddr[:], ipBackend.To4())
				if h.Inner.Key != in || h.Key != in.Reverse() {
					t.Errorf("inner key %+v key %+v", h.Inner.Key, h.Key)
				}
			}},
		{name: "ipv4 time exceeded about tcp cut to 8 bytes", frame: icmpErr4Frame(tb, plain, 11, 0, innerTCP4(tb)[:28]), want: OK},
		{name: "ipv4 frag needed about echo", frame: icmpErr4Frame(tb, plain, 3, 4, innerEcho4(tb)), want: OK,
			check: func(t *testing.T, h *Headers) {
				if h.Inner.Key.Proto != ProtoICMP || h.Inner.Key.SrcPort != 0x777 {
					t.Errorf("inner key %+v", h.Inner.Key)
				}
			}},
		{name: "arp request", frame: arpFrame(tb, 1), want: OK, check: func(t *testing.T, h *Headers) {
			if h.ARP.Op != ARPRequest || h.ARP.SenderIP != a4(ipClient) || h.ARP.TargetIP != a4(ipVIP) ||
				string(h.ARP.SenderHW[:]) != string(macClient) || h.Key.Family != FamilyNone {
				t.Errorf("arp %+v", h.ARP)
			}
		}},
		{name: "ipv6 tcp", frame: tcp6, want: OK, check: func(t *testing.T, h *Headers) {
			expectOffsets(t, h, 14, 54, 78, 178)
			if h.Key.SrcAddr != a16(ip6Client) || h.Key.DstAddr != a16(ip6VIP) || h.Key.Family != FamilyIPv6 || h.Key.DstPort != 80 {
				t.Errorf("key %+v", h.Key)
			}
		}},
		{name: "ipv6 ext headers udp", frame: withExt6(udp6, l3, [2]int{0, 8}, [2]int{43, 24}, [2]int{60, 16}), want: OK,
			check: func(t *testing.T, h *Headers) {
				expectOffsets(t, h, 14, 54+48, 54+48+8, 54+48+108)
			}},
		{name: "ipv6 echo request vlan", frame: echo6Frame(tb, frameOpts{vlan: true, payload: 4}, 128), want: OK},
		{name: "ipv6 packet too big about tcp", frame: icmpErr6Frame(tb, plain, 2, 0, 1280, innerTCP6(tb)), want: OK,
			check: func(t *testing.T, h *Headers) {
				if h.Inner.L3Off != 62 || h.Inner.L4Off != 102 || h.Inner.Key.DstPort != 8080 || h.Key.SrcPort != 8080 {
					t.Errorf("inner %+v key %+v", h.Inner, h.Key)
				}
			}},
		{name: "ipv6 unreachable about udp", frame: icmpErr6Frame(tb, plain, 1, 4, 0, innerUDP6(tb)), want: OK},

		{name: "empty", frame: nil, want: Truncated},
		{name: "short ethernet", frame: tcp4[:13], want: Truncated},
		{name: "short vlan", frame: tcp4Frame(tb, frameOpts{vlan: true}, "S")[:16], want: Truncated},
		{name: "short ipv4 header", frame: tcp4[:30], want: Truncated},
		{name: "ipv4 total length beyond frame", frame: tcp4[:100], want: Truncated},
		{name: "short tcp header", frame: mutate(tcp4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 30); return b[:44] }), want: Truncated},
		{name: "short ipv6 header", frame: tcp6[:50], want: Truncated},
		{name: "ipv6 payload beyond frame", frame: tcp6[:100], want: Truncated},
		{name: "short arp", frame: arpFrame(tb, 1)[:30], want: Truncated},
		{name: "short icmp", frame: mutate(echo4Frame(tb, plain, 8), func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 24); return b[:60] }), want: Truncated},
		{name: "short udp", frame: mutate(udp4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 24); return b[:60] }), want: Truncated},
		{name: "ipv6 ext header cut", frame: mutate(withExt6(udp6, l3, [2]int{60, 8}), func(b []byte) []byte { binary.BigEndian.PutUint16(b[18:], 4); return b[:58] }), want: Truncated},

		{name: "ipv4 version 6 in ipv4 ethertype", frame: mutate(tcp4, func(b []byte) []byte { b[14] = 0x65; return b }), want: BadVersion},
		{name: "ipv6 version 4 in ipv6 ethertype", frame: mutate(tcp6, func(b []byte) []byte { b[14] = 0x40; return b }), want: BadVersion},

		{name: "ipv4 ihl 4", frame: mutate(tcp4, func(b []byte) []byte { b[14] = 0x44; return b }), want: BadHeaderLength},
		{name: "tcp data offset 4", frame: mutate(tcp4, func(b []byte) []byte { b[46] = 0x40; return b }), want: BadHeaderLength},
		{name: "tcp data offset past packet", frame: mutate(tcp4[:60], func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 40); return b }), want: BadHeaderLength},
		{name: "ipv6 ext header length past packet", frame: mutate(withExt6(udp6, l3, [2]int{60, 8}), func(b []byte) []byte { b[55] = 200; return b }), want: BadHeaderLength},
		{name: "ipv6 too many ext headers", frame: withExt6(udp6, l3, [2]int{0, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}, [2]int{60, 8}), want: BadHeaderLength},

		{name: "ipv4 total length below header", frame: mutate(tcp4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 19); return b }), want: BadTotalLength},
		{name: "ipv6 payload length zero", frame: mutate(tcp6, func(b []byte) []byte { b[18], b[19] = 0, 0; return b }), want: BadTotalLength},
		{name: "udp length beyond ip", frame: mutate(udp4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[38:], 200); return b }), want: BadTotalLength},
		{name: "udp length below 8", frame: mutate(udp4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[38:], 7); return b }), want: BadTotalLength},

		{name: "ipv4 more fragments", frame: mutate(tcp4, func(b []byte) []byte { b[20] = 0x20; return b }), want: Fragment},
		{name: "ipv4 fragment offset", frame: mutate(tcp4, func(b []byte) []byte { b[21] = 0x10; return b }), want: Fragment},
		{name: "ipv6 fragment header", frame: withExt6(udp6, l3, [2]int{44, 8}), want: Fragment},

		{name: "ipx ethertype", frame: mutate(tcp4, func(b []byte) []byte { b[12], b[13] = 0x81, 0x37; return b }), want: UnsupportedEtherType},
		{name: "qinq double tag", frame: mutate(tcp4Frame(tb, frameOpts{vlan: true}, "S"), func(b []byte) []byte { b[16], b[17] = 0x81, 0x00; return b }), want: UnsupportedEtherType},

		{name: "ipv4 sctp", frame: mutate(tcp4, func(b []byte) []byte { b[23] = 132; return b }), want: UnsupportedProtocol},
		{name: "icmpv6 over ipv4", frame: mutate(tcp4, func(b []byte) []byte { b[23] = ProtoICMPv6; return b }), want: UnsupportedProtocol},
		{name: "icmp over ipv6", frame: mutate(tcp6, func(b []byte) []byte { b[20] = ProtoICMP; return b }), want: UnsupportedProtocol},
		{name: "ipv6 esp", frame: mutate(tcp6, func(b []byte) []byte { b[20] = 50; return b }), want: UnsupportedProtocol},
		{name: "ipv6 routing with segments left", frame: mutate(withExt6(udp6, l3, [2]int{43, 24}), func(b []byte) []byte { b[57] = 1; return b }), want: UnsupportedProtocol},
		{name: "ipv6 hop-by-hop not first", frame: withExt6(udp6, l3, [2]int{60, 8}, [2]int{0, 8}), want: UnsupportedProtocol},

		{name: "icmp timestamp", frame: echo4Frame(tb, plain, 13), want: UnsupportedICMPType},
		{name: "icmpv6 neighbour solicitation", frame: echo6Frame(tb, plain, 135), want: UnsupportedICMPType},

		{name: "icmp error quote too short", frame: icmpErr4Frame(tb, plain, 3, 3, innerUDP4(tb, 0)[:27]), want: BadICMPError},
		{name: "icmp error quote not ipv4", frame: icmpErr4Frame(tb, plain, 3, 3, mutate(innerUDP4(tb, 0), func(b []byte) []byte { b[0] = 0x65; return b })), want: BadICMPError},
		{name: "icmp error quote non-first fragment", frame: icmpErr4Frame(tb, plain, 3, 3, mutate(innerUDP4(tb, 0), func(b []byte) []byte { b[7] = 8; return b })), want: BadICMPError},
		{name: "icmp error about icmp error", frame: icmpErr4Frame(tb, plain, 3, 3, icmpErr4Frame(tb, plain, 3, 3, innerUDP4(tb, 0))[14:]), want: BadICMPError},
		{name: "icmpv6 error quote ipv4", frame: icmpErr6Frame(tb, plain, 1, 4, 0, innerUDP4(tb, 30)), want: BadICMPError},
		{name: "icmpv6 error quote with fragment header", frame: icmpErr6Frame(tb, plain, 1, 4, 0, withExt6(append(make([]byte, 14), innerUDP6(tb)...), 14, [2]int{44, 8})[14:]), want: BadICMPError},

		{name: "arp with ipv6 protocol", frame: mutate(arpFrame(tb, 1), func(b []byte) []byte { b[16], b[17] = 0x86, 0xdd; return b }), want: BadARP},
		{name: "arp op 3", frame: mutate(arpFrame(tb, 1), func(b []byte) []byte { b[21] = 3; return b }), want: BadARP},

		{name: "udp over ipv6 zero checksum", frame: mutate(udp6, func(b []byte) []byte { b[60], b[61] = 0, 0; return b }), want: BadChecksum},

		{name: "gso super-frame", frame: tcp4Frame(tb, frameOpts{payload: 20000}, "A"), want: Oversized},
		{name: "trailing bytes after ip packet", frame: append(append([]byte(nil), tcp4...), make([]byte, 8)...), want: Oversized},
		{name: "trailing bytes after ipv6 packet", frame: append(append([]byte(nil), tcp6...), 1), want: Oversized},
	}
}

func expectOffsets(t *testing.T, h *Headers, l3, l4, pay, end int) {
	t.Helper()
	if h.L3Off != l3 || h.L4Off != l4 || h.PayloadOff != pay || h.L3End != end {
		t.Errorf("offsets l3 %d l4 %d payload %d end %d, want %d %d %d %d", h.L3Off, h.L4Off, h.PayloadOff, h.L3End, l3, l4, pay, end)
	}
}

func TestParse(t *testing.T) {
	seen := map[DropReason]bool{}
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var h Headers
			got := Parse(tc.frame, &h)
			seen[got] = true
			if got != tc.want {
				t.Fatalf("Parse = %v, want %v", got, tc.want)
			}
			if got != OK {
				return
			}
			checkOffsets(t, tc.frame, &h)
			if st := refCheck(tc.frame, &h); st[0] == csBad || st[1] == csBad || st[2] == csBad || st[3] == csBad {
				t.Errorf("golden frame checksums %v", st)
			}
			if r := VerifyChecksums(tc.frame, &h); r != OK {
				t.Errorf("VerifyChecksums = %v", r)
			}
			if tc.check != nil {
				tc.check(t, &h)
			}
		})
	}
	// Every reason Parse can report has a case (TTLExpired and WrongHeaders are rewrite results).
	for r := OK; r < NumDropReasons; r++ {
		if !seen[r] && r != TTLExpired && r != WrongHeaders {
			t.Errorf("no test case for %v", r)
		}
	}
}

// checkOffsets asserts the offsets of an accepted frame are ordered and within the frame.
func checkOffsets(t testing.TB, frame []byte, h *Headers) {
	t.Helper()
	if !(h.L3Off >= EthHeaderLen && h.L3Off <= h.L4Off && h.L4Off <= h.PayloadOff && h.PayloadOff <= h.L3End && h.L3End <= len(frame)) {
		t.Fatalf("offsets out of order: l3 %d l4 %d payload %d end %d len %d", h.L3Off, h.L4Off, h.PayloadOff, h.L3End, len(frame))
	}
	if h.Inner.Valid && !(h.Inner.L3Off >= h.L4Off+8 && h.Inner.L3Off < h.Inner.L4Off && h.Inner.L4Off+8 <= h.L3End) {
		t.Fatalf("inner offsets out of range: %+v end %d", h.Inner, h.L3End)
	}
}

func TestVerifyChecksumsDetectsCorruption(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		at    int
	}{
		{"ipv4 header", tcp4Frame(t, frameOpts{}, "S"), 24},
		{"tcp payload", tcp4Frame(t, frameOpts{payload: 10}, "A"), 60},
		{"udp6 payload", udp6Frame(t, frameOpts{payload: 10}), 64},
		{"icmp", echo4Frame(t, frameOpts{payload: 10}, 8), 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Headers
			if r := Parse(tc.frame, &h); r != OK {
				t.Fatal(r)
			}
			tc.frame[tc.at] ^= 0x40
			if r := VerifyChecksums(tc.frame, &h); r != BadChecksum {
				t.Errorf("VerifyChecksums = %v, want bad_checksum", r)
			}
		})
	}
}

func TestDropReasonString(t *testing.T) {
	names := map[string]bool{}
	for r := OK; r < NumDropReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || names[s] {
			t.Errorf("reason %d has name %q", r, s)
		}
		names[s] = true
	}
	if NumDropReasons.String() != "unknown" {
		t.Errorf("out of range reason named %q", NumDropReasons.String())
	}
}
