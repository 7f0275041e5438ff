package steer

import "encoding/binary"

// Lookup answers the map lookups Classify needs; tests back it with Go maps and the program
// with BPF maps.
type Lookup interface {
	Frontend4(k [8]byte) (uint32, bool)
	Frontend6(k [20]byte) (uint32, bool)
	VIP(a [4]byte) bool
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
		if _, ok := l.Frontend4(encodeKey4(dst, binary.BigEndian.Uint16(l4[2:4]), proto)); ok {
			return RedirectFrontend
		}
		if l.VIP(dst) {
			return RedirectFrontend // any port of a held VIP (floating SNAT reply ports)
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
		case 3, 11:
			flag = FlagICMPError
		default:
			return PassNoFrontend
		}
		if v, ok := l.Frontend4(encodeKey4(dst, 0, ProtoICMP)); ok && Flags(v)&flag != 0 {
			return RedirectICMP
		}
		return PassNoFrontend
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
		if _, ok := l.Frontend6(encodeKey6(dst, binary.BigEndian.Uint16(l4[2:4]), next)); ok {
			return RedirectFrontend
		}
		return PassNoFrontend
	case ProtoICMPv6:
		var flag Flags
		switch l4[0] {
		case 128:
			flag = FlagEcho
		case 1, 2, 3:
			flag = FlagICMPError
		default:
			return PassNoFrontend
		}
		if v, ok := l.Frontend6(encodeKey6(dst, 0, ProtoICMPv6)); ok && Flags(v)&flag != 0 {
			return RedirectICMP
		}
		return PassNoFrontend
	}
	return PassOtherL4
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
