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
	const n = EthHeaderLen + 28
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	copy(dst[0:6], ethDst[:])
	copy(dst[6:12], a.SenderHW[:])
	binary.BigEndian.PutUint16(dst[12:], EtherTypeARP)
	b := dst[EthHeaderLen:n]
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], a.Op)
	copy(b[8:14], a.SenderHW[:])
	copy(b[14:18], a.SenderIP[:])
	copy(b[18:24], a.TargetHW[:])
	copy(b[24:28], a.TargetIP[:])
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
	copy(dst[0:6], frame[6:12])
	copy(dst[6:12], frame[0:6])
	off := 12
	if h.HasVLAN {
		binary.BigEndian.PutUint16(dst[12:], EtherTypeVLAN)
		binary.BigEndian.PutUint16(dst[14:], h.VLANTCI)
		off = 16
	}
	binary.BigEndian.PutUint16(dst[off:], et)
	return off + 2
}

func fitsFrame(frame []byte, h *Headers) bool {
	return h.L3End <= len(frame) && (h.L3Off == EthHeaderLen || h.L3Off == EthHeaderLen+VLANTagLen) &&
		h.L4Off+8 <= h.L3End
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
		ipHdr, reply = 20, ICMPEchoReply
	case h.Key.Family == FamilyIPv6 && h.L4Proto == ProtoICMPv6 && h.ICMPType == ICMPv6EchoRequest:
		ipHdr, reply = 40, ICMPv6EchoReply
	default:
		return ErrNotEchoRequest
	}
	if h.L4Off < h.L3Off+ipHdr {
		return ErrWrongHeaders
	}
	var mac [6]byte
	copy(mac[:], frame[0:6])
	copy(frame[0:6], frame[6:12])
	copy(frame[6:12], mac[:])
	ip := frame[h.L3Off:h.L4Off]
	if ipHdr == 20 {
		var a [4]byte
		copy(a[:], ip[12:16])
		copy(ip[12:16], ip[16:20])
		copy(ip[16:20], a[:])
		old := binary.BigEndian.Uint16(ip[8:])
		ip[8] = DefaultTTL
		c := binary.BigEndian.Uint16(ip[10:])
		binary.BigEndian.PutUint16(ip[10:], UpdateChecksum16(c, old, binary.BigEndian.Uint16(ip[8:])))
	} else {
		var a [16]byte
		copy(a[:], ip[8:24])
		copy(ip[8:24], ip[24:40])
		copy(ip[24:40], a[:])
		ip[7] = DefaultTTL
	}
	icmp := frame[h.L4Off:]
	old := binary.BigEndian.Uint16(icmp[0:])
	icmp[0] = reply
	c := binary.BigEndian.Uint16(icmp[2:])
	binary.BigEndian.PutUint16(icmp[2:], UpdateChecksum16(c, old, binary.BigEndian.Uint16(icmp[0:])))
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
	if len(quote) > maxICMPErrorLen4-28 {
		quote = quote[:maxICMPErrorLen4-28]
	}
	total := 28 + len(quote)
	n := h.L3Off + total
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, EtherTypeIPv4)
	ip := dst[off : off+20]
	putIPv4Header(ip, total, ProtoICMP, from, addr4(frame[h.L3Off+12:]))
	icmp := dst[off+20 : n]
	icmp[0], icmp[1] = typ, code
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint32(icmp[4:], rest)
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:], Checksum(icmp, 0))
	return padTo(dst, n), nil
}

// putIPv4Header writes a 20-byte IPv4 header with TTL DefaultTTL and its checksum.
func putIPv4Header(ip []byte, total int, proto uint8, src, dst [4]byte) {
	_ = ip[19]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint32(ip[4:], 0) // id 0, no flags (RFC 6864: atomic datagrams)
	ip[8], ip[9] = DefaultTTL, proto
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:20], 0))
}

// putIPv6Header writes a 40-byte IPv6 header with hop limit DefaultTTL.
func putIPv6Header(ip []byte, plen int, next uint8, src, dst *[16]byte) {
	_ = ip[39]
	binary.BigEndian.PutUint32(ip[0:], 6<<28)
	binary.BigEndian.PutUint16(ip[4:], uint16(plen))
	ip[6], ip[7] = next, DefaultTTL
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
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
	if len(quote) > maxICMPErrorLen6-48 {
		quote = quote[:maxICMPErrorLen6-48]
	}
	plen := 8 + len(quote)
	n := h.L3Off + 40 + plen
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, EtherTypeIPv6)
	to := addr6(frame[h.L3Off+8:])
	putIPv6Header(dst[off:off+40], plen, ProtoICMPv6, &from, &to)
	icmp := dst[off+40 : n]
	icmp[0], icmp[1] = typ, code
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint32(icmp[4:], rest)
	copy(icmp[8:], quote)
	binary.BigEndian.PutUint16(icmp[2:], Checksum(icmp, PseudoSum6(from, to, ProtoICMPv6, plen)))
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
	if h.L4Proto != ProtoTCP || h.Inner.Valid || h.PayloadOff < h.L4Off+20 || h.PayloadOff > h.L3End {
		return 0, ErrNotTCP
	}
	seg := frame[h.L4Off:h.PayloadOff]
	if seg[13]&TCPFlagRST != 0 {
		return 0, ErrIsReset
	}
	var ipLen int
	var et uint16
	switch h.Key.Family {
	case FamilyIPv4:
		ipLen, et = 20, EtherTypeIPv4
	case FamilyIPv6:
		ipLen, et = 40, EtherTypeIPv6
	default:
		return 0, ErrWrongFamily
	}
	n := h.L3Off + ipLen + 20
	if len(dst) < need(n) {
		return 0, ErrShortBuffer
	}
	off := putEthReply(dst, frame, h, et)
	tcp := dst[off+ipLen : n]
	binary.BigEndian.PutUint16(tcp[0:], binary.BigEndian.Uint16(seg[2:]))
	binary.BigEndian.PutUint16(tcp[2:], binary.BigEndian.Uint16(seg[0:]))
	flags := seg[13]
	if flags&TCPFlagACK != 0 {
		binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(seg[8:]))
		binary.BigEndian.PutUint32(tcp[8:], 0)
		tcp[13] = TCPFlagRST
	} else {
		ack := binary.BigEndian.Uint32(seg[4:]) + uint32(h.L3End-h.PayloadOff)
		if flags&TCPFlagSYN != 0 {
			ack++
		}
		if flags&TCPFlagFIN != 0 {
			ack++
		}
		binary.BigEndian.PutUint32(tcp[4:], 0)
		binary.BigEndian.PutUint32(tcp[8:], ack)
		tcp[13] = TCPFlagRST | TCPFlagACK
	}
	tcp[12] = 5 << 4
	binary.BigEndian.PutUint16(tcp[14:], 0) // window
	binary.BigEndian.PutUint32(tcp[16:], 0) // checksum, urgent pointer
	if ipLen == 20 {
		src, to := addr4(frame[h.L3Off+16:]), addr4(frame[h.L3Off+12:])
		putIPv4Header(dst[off:off+20], 40, ProtoTCP, src, to)
		binary.BigEndian.PutUint16(tcp[16:], Checksum(tcp, PseudoSum4(src, to, ProtoTCP, 20)))
	} else {
		src, to := addr6(frame[h.L3Off+24:]), addr6(frame[h.L3Off+8:])
		putIPv6Header(dst[off:off+40], 20, ProtoTCP, &src, &to)
		binary.BigEndian.PutUint16(tcp[16:], Checksum(tcp, PseudoSum6(src, to, ProtoTCP, 20)))
	}
	return padTo(dst, n), nil
}
