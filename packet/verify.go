package packet

import "encoding/binary"

// VerifyChecksums checks the IPv4 header checksum and the L4 checksum (TCP, UDP, ICMP, ICMPv6;
// for an ICMP error the outer ICMP checksum) of a frame Parse accepted, and returns BadChecksum
// if one does not verify. Parse does not call it: verification reads the whole payload. Frames
// from a sender with checksum offload (veth with tx on) carry partial checksums and fail here.
func VerifyChecksums(frame []byte, h *Headers) DropReason {
	if h.L3End > len(frame) || h.L4Off > h.L3End || h.L4Off < h.L3Off {
		return WrongHeaders
	}
	l4 := frame[h.L4Off:h.L3End]
	var pseudo uint64
	switch h.Key.Family {
	case FamilyIPv4:
		ip := frame[h.L3Off:h.L4Off]
		if fold(sum(ip, 0)) != 0xffff {
			return BadChecksum
		}
		if h.L4Proto != ProtoICMP {
			pseudo = PseudoSum4(addr4(ip[ipv4SrcAddrOffset:]), addr4(ip[ipv4DstAddrOffset:]), h.L4Proto, len(l4))
		}
		if h.L4Proto == ProtoUDP && len(l4) >= udpHeaderLen && binary.BigEndian.Uint16(l4[udpChecksumOffset:]) == 0 {
			return OK
		}
	case FamilyIPv6:
		ip := frame[h.L3Off:]
		pseudo = PseudoSum6(addr6(ip[ipv6SrcAddrOffset:]), addr6(ip[ipv6DstAddrOffset:]), h.L4Proto, len(l4))
	default:
		return OK
	}
	if fold(sum(l4, pseudo)) != 0xffff {
		return BadChecksum
	}
	return OK
}
