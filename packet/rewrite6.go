package packet

import "encoding/binary"

// NAT6 is NAT4's IPv6 twin: it decrements the hop limit and rewrites source and destination
// address and port with the same rules (ICMPv6 echo identifier, ICMPv6 errors rewritten as the
// reverse translation). IPv6 has no header checksum; TCP, UDP and ICMPv6 checksums cover the
// addresses through the pseudo-header. TTLExpired (nothing changed) when the hop limit is 0 or 1.
func NAT6(frame []byte, h *Headers, newSrc [16]byte, newSrcPort uint16, newDst [16]byte, newDstPort uint16) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	ip := frame[h.L3Off : h.L3Off+40]
	if ip[7] <= 1 {
		return TTLExpired
	}
	if h.Inner.Valid {
		if r := SetInner6(frame, h, newDst, newDstPort, newSrc, newSrcPort); r != OK {
			return r
		}
	}
	ip[7]--
	d := setAddrs6(ip, &newSrc, &newDst)
	rewriteL4(frame, h, d, newSrcPort, newDstPort, true)
	return OK
}

// setAddrs6 writes the IPv6 addresses of header ip and returns the checksum delta.
func setAddrs6(ip []byte, src, dst *[16]byte) uint64 {
	d := delta128(ip[8:24], src) + delta128(ip[24:40], dst)
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	return d
}

func rewrite6(frame []byte, h *Headers, src [16]byte, sp uint16, dst [16]byte, dp uint16) DropReason {
	ip := frame[h.L3Off : h.L3Off+40]
	d := setAddrs6(ip, &src, &dst)
	rewriteL4(frame, h, d, sp, dp, true)
	return OK
}

// SetSrc6 rewrites the IPv6 source address (and the L4 checksum that covers it).
func SetSrc6(frame []byte, h *Headers, src [16]byte) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	sp, dp := currentPorts(frame, h)
	return rewrite6(frame, h, src, sp, addr6(frame[h.L3Off+24:]), dp)
}

// SetDst6 rewrites the IPv6 destination address (and the L4 checksum that covers it).
func SetDst6(frame []byte, h *Headers, dst [16]byte) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	sp, dp := currentPorts(frame, h)
	return rewrite6(frame, h, addr6(frame[h.L3Off+8:]), sp, dst, dp)
}

// DecHopLimit6 decrements the IPv6 hop limit; TTLExpired (nothing changed) when it is 0 or 1.
func DecHopLimit6(frame []byte, h *Headers) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	if frame[h.L3Off+7] <= 1 {
		return TTLExpired
	}
	frame[h.L3Off+7]--
	return OK
}

// SetInner6 rewrites the packet quoted in an ICMPv6 error: addresses, ports (or echo identifier,
// which takes srcPort), its TCP/UDP/ICMPv6 checksum when present in the frame, and the outer
// ICMPv6 checksum. The outer IPv6 header is not touched.
func SetInner6(frame []byte, h *Headers, src [16]byte, srcPort uint16, dst [16]byte, dstPort uint16) DropReason {
	if !fits6(frame, h) || !h.Inner.Valid || h.L4Proto != ProtoICMPv6 ||
		h.Inner.L3Off < h.L4Off+8 || h.Inner.L4Off < h.Inner.L3Off+40 || h.Inner.L4Off+8 > h.L3End {
		return WrongHeaders
	}
	ip := frame[h.Inner.L3Off : h.Inner.L3Off+40]
	d := setAddrs6(ip, &src, &dst)
	outer := d + rewriteInnerL4(frame[h.Inner.L4Off:h.L3End], h.Inner.Key.Proto, d, srcPort, dstPort, true)
	icmp := frame[h.L4Off:]
	oc := binary.BigEndian.Uint16(icmp[2:])
	binary.BigEndian.PutUint16(icmp[2:], applyDelta(oc, outer))
	return OK
}
