package packet

import "encoding/binary"

// The rewrite helpers patch a frame in place and keep every checksum valid with incremental
// updates (RFC 1624). Each takes the Headers that Parse filled for this very frame with result OK;
// offsets are re-checked cheaply and a mismatch is reported as WrongHeaders, never a panic.
// They do not update h.Key: it keeps naming the frame as it was received.
//
// Checksum rules: IPv4 header checksum on address and TTL changes; TCP and UDP checksums cover
// the pseudo-header (addresses) and the ports; a UDP-over-IPv4 checksum of zero means "none" and
// stays zero; a UDP checksum that comes out zero is sent as 0xFFFF; ICMPv4 has no pseudo-header;
// ICMPv6 does. Rewriting the packet quoted in an ICMP error fixes the quoted IP header checksum,
// the quoted TCP/UDP checksum when it lies within the frame, and the outer ICMP checksum.

// SetMACs writes the Ethernet source and destination addresses.
func SetMACs(frame []byte, src, dst [6]byte) DropReason {
	if len(frame) < ethSrcOffset+macLen {
		return WrongHeaders
	}
	copy(frame[ethDstOffset:ethDstOffset+macLen], dst[:])
	copy(frame[ethSrcOffset:ethSrcOffset+macLen], src[:])
	return OK
}

// fits4 checks that h describes an IPv4 frame whose offsets lie within frame.
func fits4(frame []byte, h *Headers) bool {
	return h.Key.Family == FamilyIPv4 && h.L3End <= len(frame) && h.L3Off >= EthHeaderLen &&
		h.L4Off >= h.L3Off+ipv4MinHeaderLen && h.L4Off+udpHeaderLen <= h.L3End
}

// fits6 checks that h describes an IPv6 frame whose offsets lie within frame.
func fits6(frame []byte, h *Headers) bool {
	return h.Key.Family == FamilyIPv6 && h.L3End <= len(frame) && h.L3Off >= EthHeaderLen &&
		h.L4Off >= h.L3Off+ipv6HeaderLen && h.L4Off+udpHeaderLen <= h.L3End
}

// rewriteL4 writes the port/identifier change into the L4 header at frame[h.L4Off:h.L3End] and
// updates its checksum by that change plus delta d, the pseudo-header part (address changes).
// v6 tells an IPv6 frame, whose ICMPv6 checksum covers the pseudo-header, from an IPv4 one, whose
// ICMP checksum does not (d is then ignored) and whose UDP checksum may be zero ("none").
func rewriteL4(frame []byte, h *Headers, d uint64, srcPort, dstPort uint16, v6 bool) {
	b := frame[h.L4Off:h.L3End]
	switch h.L4Proto {
	case ProtoTCP:
		if len(b) < tcpMinHeaderLen {
			return
		}
		d += setPorts(b, srcPort, dstPort)
		c := binary.BigEndian.Uint16(b[tcpChecksumOffset:])
		binary.BigEndian.PutUint16(b[tcpChecksumOffset:], applyDelta(c, d))
	case ProtoUDP:
		d += setPorts(b, srcPort, dstPort)
		c := binary.BigEndian.Uint16(b[udpChecksumOffset:])
		if c == 0 && !v6 {
			return // no checksum over IPv4
		}
		c = applyDelta(c, d)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(b[udpChecksumOffset:], c)
	case ProtoICMP, ProtoICMPv6:
		if !v6 {
			d = 0 // ICMPv4 has no pseudo-header
		}
		t := b[icmpTypeOffset]
		switch {
		case t == ICMPEchoRequest && !v6, t == ICMPv6EchoRequest && v6:
			d += setEchoID(b, srcPort)
		case t == ICMPEchoReply && !v6, t == ICMPv6EchoReply && v6:
			d += setEchoID(b, dstPort)
		}
		c := binary.BigEndian.Uint16(b[icmpChecksumOffset:])
		binary.BigEndian.PutUint16(b[icmpChecksumOffset:], applyDelta(c, d))
	}
}

// setPorts writes the two ports of TCP or UDP header b (one 32-bit word from
// tcpSrcPortOffset, the same in UDP) and returns the checksum delta.
func setPorts(b []byte, src, dst uint16) uint64 {
	old := binary.BigEndian.Uint32(b[tcpSrcPortOffset:])
	n := uint32(src)<<16 | uint32(dst)
	binary.BigEndian.PutUint32(b[tcpSrcPortOffset:], n)
	return delta32(old, n)
}

// setEchoID writes the echo identifier of ICMP header b and returns the checksum delta.
func setEchoID(b []byte, id uint16) uint64 {
	old := binary.BigEndian.Uint16(b[icmpIdentOffset:])
	binary.BigEndian.PutUint16(b[icmpIdentOffset:], id)
	return delta16(old, id)
}

// currentPorts returns the frame's outer ports (TCP/UDP) or echo identifier as a port pair in
// the sense of NAT4: for an echo request the identifier is the source port, for a reply the
// destination port; the other side is returned unchanged so that a rewrite leaves it alone.
func currentPorts(frame []byte, h *Headers) (src, dst uint16) {
	b := frame[h.L4Off:]
	switch h.L4Proto {
	case ProtoTCP, ProtoUDP:
		return binary.BigEndian.Uint16(b[tcpSrcPortOffset:]), binary.BigEndian.Uint16(b[tcpDstPortOffset:])
	}
	id := binary.BigEndian.Uint16(b[icmpIdentOffset:])
	return id, id
}

// NAT4 is the data plane's one call for an IPv4 frame: it decrements the TTL and rewrites
// source and destination address and port, with every checksum updated incrementally.
//   - TCP, UDP: addresses and ports.
//   - ICMP echo: addresses, and the identifier becomes newSrcPort in a request, newDstPort in a
//     reply (the identifier plays the client's port; Key holds it as both ports).
//   - ICMP error: the outer addresses, and the quoted packet is rewritten as the reverse
//     translation: its source becomes newDst:newDstPort, its destination newSrc:newSrcPort. Pass
//     the translation found for h.Key (the direction the error travels in).
//
// It returns TTLExpired, changing nothing, when the TTL is 0 or 1 (answer with BuildICMPError4
// time exceeded, or drop), and WrongHeaders if h does not describe an IPv4 frame within frame.
func NAT4(frame []byte, h *Headers, newSrc [4]byte, newSrcPort uint16, newDst [4]byte, newDstPort uint16) DropReason {
	if !fits4(frame, h) {
		return WrongHeaders
	}
	ip := frame[h.L3Off : h.L3Off+ipv4MinHeaderLen]
	if ip[ipv4TTLOffset] <= 1 {
		return TTLExpired
	}
	if h.Inner.Valid {
		if r := SetInner4(frame, h, newDst, newDstPort, newSrc, newSrcPort); r != OK {
			return r
		}
	}
	d := setAddrs4(ip, newSrc, newDst)
	oldTTL := binary.BigEndian.Uint16(ip[ipv4TTLOffset:]) // TTL and Protocol: one checksummed word
	ip[ipv4TTLOffset]--
	c := binary.BigEndian.Uint16(ip[ipv4ChecksumOffset:])
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], applyDelta(c, d+delta16(oldTTL, oldTTL-0x100)))
	rewriteL4(frame, h, d, newSrcPort, newDstPort, false)
	return OK
}

// setAddrs4 writes the IPv4 addresses of header ip and returns the checksum delta (without
// touching the header checksum).
func setAddrs4(ip []byte, src, dst [4]byte) uint64 {
	os := binary.BigEndian.Uint32(ip[ipv4SrcAddrOffset:])
	od := binary.BigEndian.Uint32(ip[ipv4DstAddrOffset:])
	ns := binary.BigEndian.Uint32(src[:])
	nd := binary.BigEndian.Uint32(dst[:])
	binary.BigEndian.PutUint32(ip[ipv4SrcAddrOffset:], ns)
	binary.BigEndian.PutUint32(ip[ipv4DstAddrOffset:], nd)
	return delta32(os, ns) + delta32(od, nd)
}

// rewrite4 changes the outer addresses and ports of an IPv4 frame without touching the TTL or
// a quoted packet.
func rewrite4(frame []byte, h *Headers, src [4]byte, sp uint16, dst [4]byte, dp uint16) DropReason {
	if !fits4(frame, h) {
		return WrongHeaders
	}
	ip := frame[h.L3Off : h.L3Off+ipv4MinHeaderLen]
	d := setAddrs4(ip, src, dst)
	c := binary.BigEndian.Uint16(ip[ipv4ChecksumOffset:])
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], applyDelta(c, d))
	rewriteL4(frame, h, d, sp, dp, false)
	return OK
}

func addr4(b []byte) (a [4]byte) { copy(a[:], b); return a }

func addr6(b []byte) (a [16]byte) { copy(a[:], b); return a }

// SetSrc4 rewrites the IPv4 source address (and the checksums that cover it).
func SetSrc4(frame []byte, h *Headers, src [4]byte) DropReason {
	if !fits4(frame, h) {
		return WrongHeaders
	}
	sp, dp := currentPorts(frame, h)
	return rewrite4(frame, h, src, sp, addr4(frame[h.L3Off+ipv4DstAddrOffset:]), dp)
}

// SetDst4 rewrites the IPv4 destination address (and the checksums that cover it).
func SetDst4(frame []byte, h *Headers, dst [4]byte) DropReason {
	if !fits4(frame, h) {
		return WrongHeaders
	}
	sp, dp := currentPorts(frame, h)
	return rewrite4(frame, h, addr4(frame[h.L3Off+ipv4SrcAddrOffset:]), sp, dst, dp)
}

// SetPorts rewrites the TCP/UDP source and destination ports of an IPv4 or IPv6 frame (for ICMP
// echo, the identifier as NAT4 describes). It leaves ICMP errors alone.
func SetPorts(frame []byte, h *Headers, srcPort, dstPort uint16) DropReason {
	switch {
	case fits4(frame, h):
		rewriteL4(frame, h, 0, srcPort, dstPort, false)
	case fits6(frame, h):
		rewriteL4(frame, h, 0, srcPort, dstPort, true)
	default:
		return WrongHeaders
	}
	return OK
}

// DecTTL4 decrements the IPv4 TTL and updates the header checksum; TTLExpired (nothing changed)
// when the TTL is 0 or 1.
func DecTTL4(frame []byte, h *Headers) DropReason {
	if !fits4(frame, h) {
		return WrongHeaders
	}
	ip := frame[h.L3Off : h.L3Off+ipv4MinHeaderLen]
	if ip[ipv4TTLOffset] <= 1 {
		return TTLExpired
	}
	old := binary.BigEndian.Uint16(ip[ipv4TTLOffset:])
	ip[ipv4TTLOffset]--
	c := binary.BigEndian.Uint16(ip[ipv4ChecksumOffset:])
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], UpdateChecksum16(c, old, old-0x100))
	return OK
}

// SetInner4 rewrites the packet quoted in an IPv4 ICMP error: its addresses, its ports (or echo
// identifier, which takes srcPort), its IP header checksum, its TCP/UDP checksum when present in
// the frame, and the outer ICMP checksum. The outer IP header is not touched.
func SetInner4(frame []byte, h *Headers, src [4]byte, srcPort uint16, dst [4]byte, dstPort uint16) DropReason {
	if !fits4(frame, h) || !h.Inner.Valid || h.L4Proto != ProtoICMP ||
		h.Inner.L3Off < h.L4Off+icmpHeaderLen || h.Inner.L4Off < h.Inner.L3Off+ipv4MinHeaderLen ||
		h.Inner.L4Off+quotedL4Len > h.L3End {
		return WrongHeaders
	}
	ip := frame[h.Inner.L3Off : h.Inner.L3Off+ipv4MinHeaderLen]
	d := setAddrs4(ip, src, dst)
	c := binary.BigEndian.Uint16(ip[ipv4ChecksumOffset:])
	nc := applyDelta(c, d)
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], nc)
	outer := d + delta16(c, nc)
	outer += rewriteInnerL4(frame[h.Inner.L4Off:h.L3End], h.Inner.Key.Proto, d, srcPort, dstPort, false)
	icmp := frame[h.L4Off:]
	oc := binary.BigEndian.Uint16(icmp[icmpChecksumOffset:])
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], applyDelta(oc, outer))
	return OK
}

// rewriteInnerL4 rewrites the ports/identifier and (when quoted) the checksum of a quoted L4
// header b, and returns the delta of all changed bytes for the outer ICMP checksum.
func rewriteInnerL4(b []byte, proto uint8, d uint64, srcPort, dstPort uint16, v6 bool) uint64 {
	var outer uint64
	switch proto {
	case ProtoTCP, ProtoUDP:
		pd := setPorts(b, srcPort, dstPort)
		outer += pd
		at := tcpChecksumOffset
		if proto == ProtoUDP {
			at = udpChecksumOffset
		}
		if len(b) < at+2 {
			return outer
		}
		c := binary.BigEndian.Uint16(b[at:])
		if proto == ProtoUDP && c == 0 && !v6 {
			return outer
		}
		nc := applyDelta(c, d+pd)
		if proto == ProtoUDP && nc == 0 {
			nc = 0xffff
		}
		binary.BigEndian.PutUint16(b[at:], nc)
		outer += delta16(c, nc)
	case ProtoICMP, ProtoICMPv6:
		if !v6 {
			d = 0
		}
		id := setEchoID(b, srcPort)
		c := binary.BigEndian.Uint16(b[icmpChecksumOffset:])
		nc := applyDelta(c, d+id)
		binary.BigEndian.PutUint16(b[icmpChecksumOffset:], nc)
		outer += id + delta16(c, nc)
	}
	return outer
}
