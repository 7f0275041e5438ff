package capture

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// IP protocol numbers understood by rules.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Rule selects frames. Without a Peer it matches a frame whose source or destination is
// (Addr, Port) with protocol Proto, where an invalid Addr, a zero Port and a zero Proto mean
// any. With a valid Peer it matches exactly the flow Addr:Port -> Peer:PeerPort of protocol
// Proto, in either direction.
type Rule struct {
	// Addr is the address to match; invalid: any.
	Addr netip.Addr
	// Port is the TCP/UDP port to match; 0: any.
	Port uint16
	// Proto is the IP protocol number; 0: any.
	Proto uint8
	// Peer, when valid, makes the rule a flow rule: the other end's address.
	Peer netip.Addr
	// PeerPort is the other end's port of a flow rule.
	PeerPort uint16
}

// MaxRules bounds the rules of a Filter.
const MaxRules = 1024

// Filter is a compiled set of rules; a frame is kept if any rule matches it. No rules: every
// frame. The zero Filter keeps everything.
type Filter struct {
	rules []crule
	desc  string
}

type crule struct {
	addr, peer      [16]byte
	hasAddr, isFlow bool
	port, peerPort  uint16
	proto           uint8
}

// NewFilter compiles rules; desc is a human description (pcapng interface filter option).
func NewFilter(desc string, rules ...Rule) (Filter, error) {
	if len(rules) > MaxRules {
		return Filter{}, fmt.Errorf("capture filter: %d rules, at most %d", len(rules), MaxRules)
	}
	f := Filter{desc: desc, rules: make([]crule, 0, len(rules))}
	for _, r := range rules {
		c := crule{port: r.Port, proto: r.Proto, peerPort: r.PeerPort}
		if r.Addr.IsValid() {
			c.hasAddr, c.addr = true, r.Addr.Unmap().As16()
		}
		if r.Peer.IsValid() {
			if !r.Addr.IsValid() {
				return Filter{}, fmt.Errorf("capture filter: flow rule without a source address")
			}
			c.isFlow, c.peer = true, r.Peer.Unmap().As16()
		}
		f.rules = append(f.rules, c)
	}
	return f, nil
}

// String describes the filter.
func (f *Filter) String() string {
	if f.desc == "" && len(f.rules) == 0 {
		return "all frames"
	}
	return f.desc
}

// ParseFlow parses "PROTO SRC:PORT DST:PORT" (PROTO tcp, udp or a number; IPv6 as [addr]:port)
// into a flow rule.
func ParseFlow(s string) (Rule, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Rule{}, fmt.Errorf("flow %q: want \"PROTO SRC:PORT DST:PORT\"", s)
	}
	proto, err := ParseProto(f[0])
	if err != nil {
		return Rule{}, fmt.Errorf("flow %q: %w", s, err)
	}
	src, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return Rule{}, fmt.Errorf("flow %q: source: %w", s, err)
	}
	dst, err := netip.ParseAddrPort(f[2])
	if err != nil {
		return Rule{}, fmt.Errorf("flow %q: destination: %w", s, err)
	}
	if src.Addr().Is4() != dst.Addr().Is4() {
		return Rule{}, fmt.Errorf("flow %q: source and destination of different families", s)
	}
	return Rule{Addr: src.Addr(), Port: src.Port(), Proto: proto, Peer: dst.Addr(), PeerPort: dst.Port()}, nil
}

// ParseProto parses tcp, udp, icmp, icmpv6 (any case) or a protocol number.
func ParseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	case "icmp":
		return ProtoICMP, nil
	case "icmpv6":
		return ProtoICMPv6, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("protocol %q: want tcp, udp, icmp, icmpv6 or 1-255", s)
	}
	return uint8(n), nil
}

// tuple is what a rule looks at in a frame. IPv4 addresses are stored IPv4-mapped, as
// netip.Addr.As16 returns them.
type tuple struct {
	src, dst     [16]byte
	sport, dport uint16
	proto        uint8
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	etherTypeIPv6 = 0x86dd
)

// decode reads a frame's addresses, ports and protocol. It returns false for frames with no
// IP or ARP addresses (or too short to hold them); it never reads out of b's bounds.
func (t *tuple) decode(b []byte) bool {
	if len(b) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for i := 0; i < 2 && (et == etherTypeVLAN || et == etherTypeQinQ); i++ {
		if len(b) < 4 {
			return false
		}
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	*t = tuple{}
	var l4 []byte
	switch et {
	case etherTypeIPv4:
		if len(b) < 20 || b[0]>>4 != 4 {
			return false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return false
		}
		t.proto = b[9]
		t.src[10], t.src[11], t.dst[10], t.dst[11] = 0xff, 0xff, 0xff, 0xff
		copy(t.src[12:], b[12:16])
		copy(t.dst[12:], b[16:20])
		if binary.BigEndian.Uint16(b[6:8])&0x1fff == 0 { // first (or only) fragment holds the ports
			l4 = b[ihl:]
		}
	case etherTypeIPv6:
		if len(b) < 40 || b[0]>>4 != 6 {
			return false
		}
		t.proto = b[6]
		copy(t.src[:], b[8:24])
		copy(t.dst[:], b[24:40])
		l4 = b[40:]
	case etherTypeARP:
		// htype 1, ptype IPv4, hlen 6, plen 4: sender IP at 14, target IP at 24.
		if len(b) < 28 || binary.BigEndian.Uint16(b[2:4]) != etherTypeIPv4 || b[4] != 6 || b[5] != 4 {
			return false
		}
		t.src[10], t.src[11], t.dst[10], t.dst[11] = 0xff, 0xff, 0xff, 0xff
		copy(t.src[12:], b[14:18])
		copy(t.dst[12:], b[24:28])
		return true
	default:
		return false
	}
	switch t.proto {
	case ProtoTCP, ProtoUDP, 132: // SCTP has its ports in the same place
		if len(l4) >= 4 {
			t.sport = binary.BigEndian.Uint16(l4[0:2])
			t.dport = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	return true
}

// Match reports whether the frame is kept. It allocates nothing.
func (f *Filter) Match(frame []byte) bool {
	if len(f.rules) == 0 {
		return true
	}
	var t tuple
	if !t.decode(frame) {
		return false
	}
	return f.matchTuple(&t)
}

func (f *Filter) matchTuple(t *tuple) bool {
	for i := range f.rules {
		r := &f.rules[i]
		if r.proto != 0 && r.proto != t.proto {
			continue
		}
		if r.isFlow {
			if (t.src == r.addr && t.sport == r.port && t.dst == r.peer && t.dport == r.peerPort) ||
				(t.dst == r.addr && t.dport == r.port && t.src == r.peer && t.sport == r.peerPort) {
				return true
			}
			continue
		}
		if (!r.hasAddr || t.src == r.addr) && (r.port == 0 || t.sport == r.port) {
			return true
		}
		if (!r.hasAddr || t.dst == r.addr) && (r.port == 0 || t.dport == r.port) {
			return true
		}
	}
	return false
}
