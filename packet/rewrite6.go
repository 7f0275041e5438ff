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
	ip := frame[h.L3Off : h.L3Off+ipv6HeaderLen]
	if ip[ipv6HopLimitOffset] <= 1 {
		return TTLExpired
	}
	if h.Inner.Valid {
		if r := SetInner6(frame, h, newDst, newDstPort, newSrc, newSrcPort); r != OK {
			return r
		}
	}
	ip[ipv6HopLimitOffset]--
	d := setAddrs6(ip, &newSrc, &newDst)
	rewriteL4(frame, h, d, newSrcPort, newDstPort, true)
	return OK
}

// setAddrs6 writes the IPv6 addresses of header ip and returns the checksum delta.
func setAddrs6(ip []byte, src, dst *[16]byte) uint64 {
	srcAt := ip[ipv6SrcAddrOffset : ipv6SrcAddrOffset+ipv6AddrLen]
	dstAt := ip[ipv6DstAddrOffset : ipv6DstAddrOffset+ipv6AddrLen]
	d := delta128(srcAt, src) + delta128(dstAt, dst)
	copy(srcAt, src[:])
	copy(dstAt, dst[:])
	return d
}

func rewrite6(frame []byte, h *Headers, src [16]byte, sp uint16, dst [16]byte, dp uint16) DropReason {
	ip := frame[h.L3Off : h.L3Off+ipv6HeaderLen]
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
	return rewrite6(frame, h, src, sp, addr6(frame[h.L3Off+ipv6DstAddrOffset:]), dp)
}

// SetDst6 rewrites the IPv6 destination address (and the L4 checksum that covers it).
func SetDst6(frame []byte, h *Headers, dst [16]byte) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	sp, dp := currentPorts(frame, h)
	return rewrite6(frame, h, addr6(frame[h.L3Off+ipv6SrcAddrOffset:]), sp, dst, dp)
}

// DecHopLimit6 decrements the IPv6 hop limit; TTLExpired (nothing changed) when it is 0 or 1.
func DecHopLimit6(frame []byte, h *Headers) DropReason {
	if !fits6(frame, h) {
		return WrongHeaders
	}
	if frame[h.L3Off+ipv6HopLimitOffset] <= 1 {
		return TTLExpired
	}
	frame[h.L3Off+ipv6HopLimitOffset]--
	return OK
}

// SetInner6 rewrites the packet quoted in an ICMPv6 error: addresses, ports (or echo identifier,
// which takes srcPort), its TCP/UDP/ICMPv6 checksum when present in the frame, and the outer
// ICMPv6 checksum. The outer IPv6 header is not touched.
func SetInner6(frame []byte, h *Headers, src [16]byte, srcPort uint16, dst [16]byte, dstPort uint16) DropReason {
	if !fits6(frame, h) || !h.Inner.Valid || h.L4Proto != ProtoICMPv6 ||
		h.Inner.L3Off < h.L4Off+icmpHeaderLen || h.Inner.L4Off < h.Inner.L3Off+ipv6HeaderLen ||
		h.Inner.L4Off+quotedL4Len > h.L3End {
		return WrongHeaders
	}
	ip := frame[h.Inner.L3Off : h.Inner.L3Off+ipv6HeaderLen]
	d := setAddrs6(ip, &src, &dst)
	outer := d + rewriteInnerL4(frame[h.Inner.L4Off:h.L3End], h.Inner.Key.Proto, d, srcPort, dstPort, true)
	icmp := frame[h.L4Off:]
	oc := binary.BigEndian.Uint16(icmp[icmpChecksumOffset:])
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], applyDelta(oc, outer))
	return OK
}
