package packet

import (
	"encoding/binary"
	"errors"
)

// Errors of the frame builders. They are preallocated values: returning one does not allocate.
var (
	// ErrShortBuffer: the destination buffer cannot hold the frame.
	ErrShortBuffer = errors.New("packet: destination buffer too small for the frame")
	// ErrNotEchoRequest: the frame is not an ICMP or ICMPv6 echo request.
	ErrNotEchoRequest = errors.New("packet: frame is not an echo request")
	// ErrNotTCP: a TCP reset was asked for a frame that is not TCP.
	ErrNotTCP = errors.New("packet: frame is not TCP")
	// ErrIsReset: a TCP reset is never answered with a reset (RFC 9293).
	ErrIsReset = errors.New("packet: frame is a TCP reset")
	// ErrErrorAboutError: an ICMP error is never sent about an ICMP error (RFC 1122, RFC 4443).
	ErrErrorAboutError = errors.New("packet: frame is itself an ICMP error")
	// ErrWrongFamily: the frame's IP version does not match the builder.
	ErrWrongFamily = errors.New("packet: frame has the wrong IP version for this builder")
	// ErrWrongHeaders: the Headers do not describe the frame (see WrongHeaders).
	ErrWrongHeaders = errors.New("packet: headers do not fit the frame")
)

// Broadcast is the Ethernet broadcast address.
var Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// DefaultTTL is the TTL/hop limit of frames the appliance originates.
const DefaultTTL = 64

// Limits of the quote in ICMP errors: the whole error fits the minimum datagram each version
// guarantees (RFC 1812 4.3.2.3: 576 bytes; RFC 4443 2.4(c): 1280 bytes).
const (
	maxICMPErrorLen4 = 576
	maxICMPErrorLen6 = 1280
)

// padTo zeroes dst[n:MinFrameLen] and returns the frame length to transmit.
func padTo(dst []byte, n int) int {
	if n >= MinFrameLen {
		return n
	}
	clear(dst[n:MinFrameLen])
	return MinFrameLen
}

// need returns the buffer size a frame of n bytes needs (padding included).
func need(n int) int { return max(n, MinFrameLen) }

// BuildARP writes an Ethernet/IPv4 ARP frame (ethSrc a.SenderHW) to ethDst into dst, padded to
// MinFrameLen, and returns its length.
func BuildARP(dst []byte, ethDst [6]byte, a *ARP) (int, error) {
	const n = EthHeaderLen + arpLen
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	copy(dst[ethDstOffset:ethDstOffset+macLen], ethDst[:])
	copy(dst[ethSrcOffset:ethSrcOffset+macLen], a.SenderHW[:])
	binary.BigEndian.PutUint16(dst[ethTypeOffset:], EtherTypeARP)
	b := dst[EthHeaderLen:n]
	binary.BigEndian.PutUint16(b[arpHWTypeOffset:], arpHWTypeEthernet)
	binary.BigEndian.PutUint16(b[arpProtoTypeOffset:], EtherTypeIPv4)
	b[arpHWLenOffset], b[arpProtoLenOffset] = macLen, ipv4AddrLen
	binary.BigEndian.PutUint16(b[arpOpOffset:], a.Op)
	copy(b[arpSenderHWOffset:arpSenderHWOffset+macLen], a.SenderHW[:])
	copy(b[arpSenderIPOffset:arpSenderIPOffset+ipv4AddrLen], a.SenderIP[:])
	copy(b[arpTargetHWOffset:arpTargetHWOffset+macLen], a.TargetHW[:])
	copy(b[arpTargetIPOffset:arpTargetIPOffset+ipv4AddrLen], a.TargetIP[:])
	return padTo(dst, n), nil
}

// BuildARPReply answers the ARP request req: "req.TargetIP is at mac", sent to the requester.
func BuildARPReply(dst []byte, req *ARP, mac [6]byte) (int, error) {
	a := ARP{Op: ARPReply, SenderHW: mac, SenderIP: req.TargetIP, TargetHW: req.SenderHW, TargetIP: req.SenderIP}
	return BuildARP(dst, req.SenderHW, &a)
}

// BuildARPRequest asks, by broadcast, who has targetIP. With srcIP 0.0.0.0 it is a duplicate
// address probe (RFC 5227).
func BuildARPRequest(dst []byte, srcMAC [6]byte, srcIP, targetIP [4]byte) (int, error) {
	a := ARP{Op: ARPRequest, SenderHW: srcMAC, SenderIP: srcIP, TargetIP: targetIP}
	return BuildARP(dst, Broadcast, &a)
}

// BuildGratuitousARP announces that ip is at mac, by broadcast: the request form (RFC 5227
// announcement: target hardware address zero) or, with reply set, the reply form (target
// hardware address broadcast). Both carry ip as sender and target protocol address.
func BuildGratuitousARP(dst []byte, mac [6]byte, ip [4]byte, reply bool) (int, error) {
	a := ARP{Op: ARPRequest, SenderHW: mac, SenderIP: ip, TargetIP: ip}
	if reply {
		a.Op = ARPReply
		a.TargetHW = Broadcast
	}
	return BuildARP(dst, Broadcast, &a)
}

// putEthReply writes into dst the Ethernet header answering frame: MACs swapped, the same VLAN
// tag, EtherType et. It returns the header length (h.L3Off).
func putEthReply(dst, frame []byte, h *Headers, et uint16) int {
	copy(dst[ethDstOffset:ethDstOffset+macLen], frame[ethSrcOffset:ethSrcOffset+macLen])
	copy(dst[ethSrcOffset:ethSrcOffset+macLen], frame[ethDstOffset:ethDstOffset+macLen])
	if !h.HasVLAN {
		binary.BigEndian.PutUint16(dst[ethTypeOffset:], et)
		return EthHeaderLen
	}
	binary.BigEndian.PutUint16(dst[ethTypeOffset:], EtherTypeVLAN)
	binary.BigEndian.PutUint16(dst[vlanTCIOffset:], h.VLANTCI)
	binary.BigEndian.PutUint16(dst[vlanTypeOffset:], et)
	return EthHeaderLen + VLANTagLen
}

func fitsFrame(frame []byte, h *Headers) bool {
	return h.L3End <= len(frame) && (h.L3Off == EthHeaderLen || h.L3Off == EthHeaderLen+VLANTagLen) &&
		h.L4Off+icmpHeaderLen <= h.L3End
}

// EchoReplyInPlace turns an ICMP or ICMPv6 echo request into its reply in place: MACs and IP
// addresses swapped, TTL/hop limit DefaultTTL, type changed, checksums updated incrementally
// (swapping addresses changes no sum). Payload and IPv4 options stay. Transmit the frame with
// its length unchanged.
func EchoReplyInPlace(frame []byte, h *Headers) error {
	if !fitsFrame(frame, h) {
		return ErrWrongHeaders
	}
	var ipHdr int
	var reply uint8
	switch {
	case h.Key.Family == FamilyIPv4 && h.L4Proto == ProtoICMP && h.ICMPType == ICMPEchoRequest:
		ipHdr, reply = ipv4MinHeaderLen, ICMPEchoReply
	case h.Key.Family == FamilyIPv6 && h.L4Proto == ProtoICMPv6 && h.ICMPType == ICMPv6EchoRequest:
		ipHdr, reply = ipv6HeaderLen, ICMPv6EchoReply
	default:
		return ErrNotEchoRequest
	}
	if h.L4Off < h.L3Off+ipHdr {
		return ErrWrongHeaders
	}
	var mac [6]byte
	copy(mac[:], frame[ethDstOffset:ethDstOffset+macLen])
	copy(frame[ethDstOffset:ethDstOffset+macLen], frame[ethSrcOffset:ethSrcOffset+macLen])
	copy(frame[ethSrcOffset:ethSrcOffset+macLen], mac[:])
	ip := frame[h.L3Off:h.L4Off]
	if ipHdr == ipv4MinHeaderLen {
		src := ip[ipv4SrcAddrOffset : ipv4SrcAddrOffset+ipv4AddrLen]
		dst := ip[ipv4DstAddrOffset : ipv4DstAddrOffset+ipv4AddrLen]
		var a [4]byte
		copy(a[:], src)
		copy(src, dst)
		copy(dst, a[:])
		old := binary.BigEndian.Uint16(ip[ipv4TTLOffset:]) // TTL and Protocol: one checksummed word
		ip[ipv4TTLOffset] = DefaultTTL
		c := binary.BigEndian.Uint16(ip[ipv4ChecksumOffset:])
		binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], UpdateChecksum16(c, old, binary.BigEndian.Uint16(ip[ipv4TTLOffset:])))
	} else {
		src := ip[ipv6SrcAddrOffset : ipv6SrcAddrOffset+ipv6AddrLen]
		dst := ip[ipv6DstAddrOffset : ipv6DstAddrOffset+ipv6AddrLen]
		var a [16]byte
		copy(a[:], src)
		copy(src, dst)
		copy(dst, a[:])
		ip[ipv6HopLimitOffset] = DefaultTTL
	}
	icmp := frame[h.L4Off:]
	old := binary.BigEndian.Uint16(icmp[icmpTypeOffset:]) // Type and Code: one checksummed word
	icmp[icmpTypeOffset] = reply
	c := binary.BigEndian.Uint16(icmp[icmpChecksumOffset:])
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], UpdateChecksum16(c, old, binary.BigEndian.Uint16(icmp[icmpTypeOffset:])))
	h.ICMPType = reply
	return nil
}

// BuildEchoReply writes into dst the reply to the echo request in frame (which is not changed;
// dst must not overlap it) and returns its length.
func BuildEchoReply(dst, frame []byte, h *Headers) (int, error) {
	if !fitsFrame(frame, h) {
		return 0, ErrWrongHeaders
	}
	if len(dst) < need(h.L3End) {
		return 0, ErrShortBuffer
	}
	n := copy(dst, frame[:h.L3End])
	hc := *h
	if err := EchoReplyInPlace(dst[:n], &hc); err != nil {
		return 0, err
	}
	return padTo(dst, n), nil
}

// BuildICMPError4 writes into dst an ICMP error of type typ and code about the IPv4 frame, sent
// from address from back to the frame's source (MACs swapped, same VLAN tag). rest is the
// 4-byte field after the checksum (the next-hop MTU for fragmentation needed, else 0). The quote
// is the frame's IP packet, cut so that the error is at most 576 bytes. It returns the length.
func BuildICMPError4(dst, frame []byte, h *Headers, typ, code uint8, rest uint32, from [4]byte) (int, error) {
	if !fitsFrame(frame, h) {
		return 0, ErrWrongHeaders
	}
	if h.Key.Family != FamilyIPv4 {
		return 0, ErrWrongFamily
	}
	if h.Inner.Valid {
		return 0, ErrErrorAboutError
	}
	quote := frame[h.L3Off:h.L3End]
	const hdrs4 = ipv4MinHeaderLen + icmpHeaderLen
	if len(quote) > maxICMPErrorLen4-hdrs4 {
		quote = quote[:maxICMPErrorLen4-hdrs4]
	}
	total := hdrs4 + len(quote)
	n := h.L3Off + total
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, EtherTypeIPv4)
	ip := dst[off : off+ipv4MinHeaderLen]
	putIPv4Header(ip, total, ProtoICMP, from, addr4(frame[h.L3Off+ipv4SrcAddrOffset:]))
	icmp := dst[off+ipv4MinHeaderLen : n]
	putICMPHeader(icmp, typ, code, rest)
	copy(icmp[icmpHeaderLen:], quote)
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], Checksum(icmp, 0))
	return padTo(dst, n), nil
}

// putICMPHeader writes an ICMP or ICMPv6 header with a zero checksum, for the caller to sum.
func putICMPHeader(icmp []byte, typ, code uint8, rest uint32) {
	icmp[icmpTypeOffset], icmp[icmpCodeOffset] = typ, code
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], 0)
	binary.BigEndian.PutUint32(icmp[icmpRestOffset:], rest)
}

// putIPv4Header writes an IPv4 header without options (ipv4MinHeaderLen bytes) with TTL
// DefaultTTL and its checksum.
func putIPv4Header(ip []byte, total int, proto uint8, src, dst [4]byte) {
	_ = ip[ipv4MinHeaderLen-1]
	ip[ipv4VersIHLOffset], ip[ipv4TOSOffset] = 4<<4|ipv4MinHeaderLen/4, 0
	binary.BigEndian.PutUint16(ip[ipv4TotalLenOffset:], uint16(total))
	// ID 0, no flags, fragment offset 0 (RFC 6864: atomic datagrams).
	binary.BigEndian.PutUint16(ip[ipv4IDOffset:], 0)
	binary.BigEndian.PutUint16(ip[ipv4FlagsFragOffset:], 0)
	ip[ipv4TTLOffset], ip[ipv4ProtocolOffset] = DefaultTTL, proto
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], 0)
	copy(ip[ipv4SrcAddrOffset:ipv4SrcAddrOffset+ipv4AddrLen], src[:])
	copy(ip[ipv4DstAddrOffset:ipv4DstAddrOffset+ipv4AddrLen], dst[:])
	binary.BigEndian.PutUint16(ip[ipv4ChecksumOffset:], Checksum(ip[:ipv4MinHeaderLen], 0))
}

// putIPv6Header writes an IPv6 header (ipv6HeaderLen bytes) with hop limit DefaultTTL.
func putIPv6Header(ip []byte, plen int, next uint8, src, dst *[16]byte) {
	_ = ip[ipv6HeaderLen-1]
	binary.BigEndian.PutUint32(ip[ipv6VersTCFlowOffset:], 6<<28) // version 6, class 0, flow 0
	binary.BigEndian.PutUint16(ip[ipv6PayloadLenOffset:], uint16(plen))
	ip[ipv6NextHeaderOffset], ip[ipv6HopLimitOffset] = next, DefaultTTL
	copy(ip[ipv6SrcAddrOffset:ipv6SrcAddrOffset+ipv6AddrLen], src[:])
	copy(ip[ipv6DstAddrOffset:ipv6DstAddrOffset+ipv6AddrLen], dst[:])
}

// BuildPortUnreachable4 answers a UDP datagram to a port (or a Service without endpoints) with
// ICMP port unreachable, sent from the address the datagram was sent to.
func BuildPortUnreachable4(dst, frame []byte, h *Headers) (int, error) {
	if h.Key.Family != FamilyIPv4 {
		return 0, ErrWrongFamily
	}
	return BuildICMPError4(dst, frame, h, ICMPDestUnreachable, ICMPCodePortUnreachable, 0, h.Key.DstAddr4())
}

// BuildFragNeeded4 answers a frame too big for the next hop (with DF set) with ICMP
// fragmentation needed carrying mtu, sent from address from.
func BuildFragNeeded4(dst, frame []byte, h *Headers, mtu uint16, from [4]byte) (int, error) {
	return BuildICMPError4(dst, frame, h, ICMPDestUnreachable, ICMPCodeFragNeeded, uint32(mtu), from)
}

// BuildICMPError6 is BuildICMPError4 for IPv6: an ICMPv6 error of type typ and code (rest: the
// MTU for packet too big, the pointer for parameter problem, else 0), at most 1280 bytes.
func BuildICMPError6(dst, frame []byte, h *Headers, typ, code uint8, rest uint32, from [16]byte) (int, error) {
	if !fitsFrame(frame, h) {
		return 0, ErrWrongHeaders
	}
	if h.Key.Family != FamilyIPv6 {
		return 0, ErrWrongFamily
	}
	if h.Inner.Valid {
		return 0, ErrErrorAboutError
	}
	quote := frame[h.L3Off:h.L3End]
	const hdrs6 = ipv6HeaderLen + icmpHeaderLen
	if len(quote) > maxICMPErrorLen6-hdrs6 {
		quote = quote[:maxICMPErrorLen6-hdrs6]
	}
	plen := icmpHeaderLen + len(quote)
	n := h.L3Off + ipv6HeaderLen + plen
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, EtherTypeIPv6)
	to := addr6(frame[h.L3Off+ipv6SrcAddrOffset:])
	putIPv6Header(dst[off:off+ipv6HeaderLen], plen, ProtoICMPv6, &from, &to)
	icmp := dst[off+ipv6HeaderLen : n]
	putICMPHeader(icmp, typ, code, rest)
	copy(icmp[icmpHeaderLen:], quote)
	binary.BigEndian.PutUint16(icmp[icmpChecksumOffset:], Checksum(icmp, PseudoSum6(from, to, ProtoICMPv6, plen)))
	return padTo(dst, n), nil
}

// BuildPortUnreachable6 is BuildPortUnreachable4 for IPv6.
func BuildPortUnreachable6(dst, frame []byte, h *Headers) (int, error) {
	if h.Key.Family != FamilyIPv6 {
		return 0, ErrWrongFamily
	}
	return BuildICMPError6(dst, frame, h, ICMPv6DestUnreachable, ICMPv6CodePortUnreachable, 0, h.Key.DstAddr)
}

// BuildPacketTooBig6 answers a frame too big for the next hop with ICMPv6 packet too big.
func BuildPacketTooBig6(dst, frame []byte, h *Headers, mtu uint32, from [16]byte) (int, error) {
	return BuildICMPError6(dst, frame, h, ICMPv6PacketTooBig, 0, mtu, from)
}

// BuildTCPReset writes into dst the RST answering the TCP segment in frame (RFC 9293 3.10.7.1,
// what kube-proxy's reject does for a Service without endpoints): if the segment has ACK, the
// RST takes its sequence number from that ACK; otherwise it has sequence 0 and ACKs everything
// the segment occupied (payload, SYN, FIN). Addresses, ports and MACs are swapped. Works for both
// IP versions; returns the length.
func BuildTCPReset(dst, frame []byte, h *Headers) (int, error) {
	if !fitsFrame(frame, h) {
		return 0, ErrWrongHeaders
	}
	if h.L4Proto != ProtoTCP || h.Inner.Valid || h.PayloadOff < h.L4Off+tcpMinHeaderLen || h.PayloadOff > h.L3End {
		return 0, ErrNotTCP
	}
	seg := frame[h.L4Off:h.PayloadOff]
	if seg[tcpFlagsOffset]&TCPFlagRST != 0 {
		return 0, ErrIsReset
	}
	var ipLen int
	var et uint16
	switch h.Key.Family {
	case FamilyIPv4:
		ipLen, et = ipv4MinHeaderLen, EtherTypeIPv4
	case FamilyIPv6:
		ipLen, et = ipv6HeaderLen, EtherTypeIPv6
	default:
		return 0, ErrWrongFamily
	}
	n := h.L3Off + ipLen + tcpMinHeaderLen
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, et)
	tcp := dst[off+ipLen : n]
	binary.BigEndian.PutUint16(tcp[tcpSrcPortOffset:], binary.BigEndian.Uint16(seg[tcpDstPortOffset:]))
	binary.BigEndian.PutUint16(tcp[tcpDstPortOffset:], binary.BigEndian.Uint16(seg[tcpSrcPortOffset:]))
	flags := seg[tcpFlagsOffset]
	if flags&TCPFlagACK != 0 {
		binary.BigEndian.PutUint32(tcp[tcpSeqNumOffset:], binary.BigEndian.Uint32(seg[tcpAckNumOffset:]))
		binary.BigEndian.PutUint32(tcp[tcpAckNumOffset:], 0)
		tcp[tcpFlagsOffset] = TCPFlagRST
	} else {
		ack := binary.BigEndian.Uint32(seg[tcpSeqNumOffset:]) + uint32(h.L3End-h.PayloadOff)
		if flags&TCPFlagSYN != 0 {
			ack++
		}
		if flags&TCPFlagFIN != 0 {
			ack++
		}
		binary.BigEndian.PutUint32(tcp[tcpSeqNumOffset:], 0)
		binary.BigEndian.PutUint32(tcp[tcpAckNumOffset:], ack)
		tcp[tcpFlagsOffset] = TCPFlagRST | TCPFlagACK
	}
	tcp[tcpDataOffsetOffset] = tcpMinHeaderLen / 4 << 4
	binary.BigEndian.PutUint16(tcp[tcpWindowOffset:], 0)
	binary.BigEndian.PutUint16(tcp[tcpChecksumOffset:], 0)
	binary.BigEndian.PutUint16(tcp[tcpUrgentOffset:], 0)
	if ipLen == ipv4MinHeaderLen {
		src, to := addr4(frame[h.L3Off+ipv4DstAddrOffset:]), addr4(frame[h.L3Off+ipv4SrcAddrOffset:])
		putIPv4Header(dst[off:off+ipv4MinHeaderLen], ipv4MinHeaderLen+tcpMinHeaderLen, ProtoTCP, src, to)
		binary.BigEndian.PutUint16(tcp[tcpChecksumOffset:], Checksum(tcp, PseudoSum4(src, to, ProtoTCP, tcpMinHeaderLen)))
	} else {
		src, to := addr6(frame[h.L3Off+ipv6DstAddrOffset:]), addr6(frame[h.L3Off+ipv6SrcAddrOffset:])
		putIPv6Header(dst[off:off+ipv6HeaderLen], tcpMinHeaderLen, ProtoTCP, &src, &to)
		binary.BigEndian.PutUint16(tcp[tcpChecksumOffset:], Checksum(tcp, PseudoSum6(src, to, ProtoTCP, tcpMinHeaderLen)))
	}
	return padTo(dst, n), nil
}
