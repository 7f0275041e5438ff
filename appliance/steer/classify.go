package steer

import "encoding/binary"

// Lookup answers the map lookups Classify needs; tests back it with Go maps and the program
// with BPF maps.
type Lookup interface {
	Frontend4(k [8]byte) (uint32, bool)
	Frontend6(k [20]byte) (uint32, bool)
	VIP(a [4]byte) bool
	// PortRange4 and PortRange6 return the address's steered port range (host order), if any.
	PortRange4(a [4]byte) (first, last uint16, ok bool)
	PortRange6(a [16]byte) (first, last uint16, ok bool)
}

// ours4 reports whether the IPv4 tuple (addr, port, proto) is the appliance's: a frontend, a
// held VIP (any port: the floating SNAT address), or a port in the address's steered range.
func ours4(l Lookup, addr [4]byte, port uint16, proto uint8) bool {
	if _, ok := l.Frontend4(encodeKey4(addr, port, proto)); ok || l.VIP(addr) {
		return true
	}
	first, last, ok := l.PortRange4(addr)
	return ok && first <= port && port <= last
}

// ours6 is ours4 for IPv6 (no VIPs).
func ours6(l Lookup, addr [16]byte, port uint16, proto uint8) bool {
	if _, ok := l.Frontend6(encodeKey6(addr, port, proto)); ok {
		return true
	}
	first, last, ok := l.PortRange6(addr)
	return ok && first <= port && port <= last
}

// Classify is the steering program's decision written in Go: the specification the program is
// tested against (frame by frame and by a differential fuzz target). It never panics.
func Classify(frame []byte, l Lookup) Reason {
	if len(frame) < 14 {
		return PassMalformed
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	off := 14
	if et == 0x8100 || et == 0x88a8 {
		if len(frame) < 18 {
			return PassMalformed
		}
		et = binary.BigEndian.Uint16(frame[16:18])
		off = 18
	}
	b := frame[off:]
	switch et {
	case 0x0800:
		return classify4(b, l)
	case 0x86dd:
		return classify6(b, l)
	case 0x0806:
		return classifyARP(b, l)
	}
	return PassNotIP
}

func classify4(b []byte, l Lookup) Reason {
	if len(b) < 20 || b[0]>>4 != 4 || b[0]&0x0f < 5 {
		return PassMalformed
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return PassFragment
	}
	var dst [4]byte
	copy(dst[:], b[16:20])
	proto := b[9]
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+4 {
		return PassMalformed
	}
	l4 := b[ihl:]
	switch proto {
	case ProtoTCP, ProtoUDP:
		if ours4(l, dst, binary.BigEndian.Uint16(l4[2:4]), proto) {
			return RedirectFrontend
		}
		return PassNoFrontend
	case ProtoICMP:
		var flag Flags
		switch l4[0] {
		case 8:
			if l.VIP(dst) {
				return RedirectICMP
			}
			flag = FlagEcho
		case 3, 11, 12:
			flag = FlagICMPError
		default:
			return PassNoFrontend
		}
		if v, ok := l.Frontend4(encodeKey4(dst, 0, ProtoICMP)); !ok || Flags(v)&flag == 0 {
			return PassNoFrontend
		}
		if flag == FlagICMPError {
			return quoted4(l4, l)
		}
		return RedirectICMP
	}
	return PassOtherL4
}

func classify6(b []byte, l Lookup) Reason {
	if len(b) < 44 {
		return PassMalformed
	}
	var dst [16]byte
	copy(dst[:], b[24:40])
	next := b[6]
	l4 := b[40:]
	switch next {
	case ProtoTCP, ProtoUDP:
		if ours6(l, dst, binary.BigEndian.Uint16(l4[2:4]), next) {
			return RedirectFrontend
		}
		return PassNoFrontend
	case ProtoICMPv6:
		var flag Flags
		switch l4[0] {
		case 128:
			flag = FlagEcho
		case 1, 2, 3, 4:
			flag = FlagICMPError
		default:
			return PassNoFrontend
		}
		if v, ok := l.Frontend6(encodeKey6(dst, 0, ProtoICMPv6)); !ok || Flags(v)&flag == 0 {
			return PassNoFrontend
		}
		if flag == FlagICMPError {
			return quoted6(l4, l)
		}
		return RedirectICMP
	}
	return PassOtherL4
}

// icmpHeaderLen is the ICMP/ICMPv6 error header before the quoted packet.
const icmpHeaderLen = 8

// quoted4 decides an ICMP error (icmp: the ICMP header on) by the packet it quotes, one the
// destination sent: only a TCP/UDP first fragment whose (src, src port, proto) is ours is the
// appliance's; the host's own (path MTU discovery for SSH, gossip, the Kubernetes API) pass.
func quoted4(icmp []byte, l Lookup) Reason {
	if len(icmp) < icmpHeaderLen+20 {
		return PassMalformed
	}
	q := icmp[icmpHeaderLen:]
	if q[0]>>4 != 4 || q[0]&0x0f < 5 {
		return PassMalformed
	}
	if binary.BigEndian.Uint16(q[6:8])&0x1fff != 0 || (q[9] != ProtoTCP && q[9] != ProtoUDP) {
		return PassICMPNotOurs
	}
	ihl := int(q[0]&0x0f) * 4
	if len(q) < ihl+4 {
		return PassMalformed
	}
	var src [4]byte
	copy(src[:], q[12:16])
	if ours4(l, src, binary.BigEndian.Uint16(q[ihl:ihl+2]), q[9]) {
		return RedirectICMP
	}
	return PassICMPNotOurs
}

// quoted6 is quoted4 for ICMPv6 errors (the quoted fixed header only: extension headers pass).
func quoted6(icmp []byte, l Lookup) Reason {
	if len(icmp) < icmpHeaderLen+40 {
		return PassMalformed
	}
	q := icmp[icmpHeaderLen:]
	if q[6] != ProtoTCP && q[6] != ProtoUDP {
		return PassICMPNotOurs
	}
	if len(q) < 44 {
		return PassMalformed
	}
	var src [16]byte
	copy(src[:], q[8:24])
	if ours6(l, src, binary.BigEndian.Uint16(q[40:42]), q[6]) {
		return RedirectICMP
	}
	return PassICMPNotOurs
}

func classifyARP(b []byte, l Lookup) Reason {
	if len(b) < 28 {
		return PassMalformed
	}
	if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != 0x0800 || b[4] != 6 || b[5] != 4 {
		return PassARP
	}
	var ip [4]byte
	switch binary.BigEndian.Uint16(b[6:8]) {
	case 1:
		copy(ip[:], b[24:28])
	case 2:
		copy(ip[:], b[14:18])
	default:
		return PassARP
	}
	if l.VIP(ip) {
		return RedirectARP
	}
	return PassARP
}
