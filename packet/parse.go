package packet

import "encoding/binary"

// EtherTypes, sizes and limits of the frames the fast path handles.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100
	EtherTypeIPv6 uint16 = 0x86DD

	// EthHeaderLen is the length of an untagged Ethernet header.
	EthHeaderLen = 14
	// VLANTagLen is the length of one 802.1Q tag.
	VLANTagLen = 4
	// MinFrameLen is the shortest Ethernet frame without FCS; shorter packets are padded.
	MinFrameLen = 60
	// MaxPaddedFrameLen is the longest frame that may still be Ethernet padding beyond its IP
	// packet: a minimum frame plus one VLAN tag added after padding.
	MaxPaddedFrameLen = MinFrameLen + VLANTagLen
	// MaxFrameLen is the longest frame accepted: a 9216-byte jumbo MTU plus a tagged Ethernet
	// header. Longer frames are GSO/TSO super-frames (veth with offloads on) and are Oversized.
	MaxFrameLen = 9216 + EthHeaderLen + VLANTagLen

	// maxIPv6ExtHeaders bounds the extension header walk.
	maxIPv6ExtHeaders = 8
)

// TCP flags (byte 13 of the TCP header).
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
)

// ICMP and ICMPv6 types the fast path knows.
const (
	ICMPEchoReply       uint8 = 0
	ICMPDestUnreachable uint8 = 3
	ICMPEchoRequest     uint8 = 8
	ICMPTimeExceeded    uint8 = 11
	ICMPParamProblem    uint8 = 12

	// ICMPCodePortUnreachable and ICMPCodeFragNeeded are codes of ICMPDestUnreachable.
	ICMPCodePortUnreachable uint8 = 3
	ICMPCodeFragNeeded      uint8 = 4

	ICMPv6DestUnreachable uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
	ICMPv6EchoRequest     uint8 = 128
	ICMPv6EchoReply       uint8 = 129

	// ICMPv6CodePortUnreachable is a code of ICMPv6DestUnreachable.
	ICMPv6CodePortUnreachable uint8 = 4
)

// ARP ops.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARP is the body of an Ethernet/IPv4 ARP packet.
type ARP struct {
	Op       uint16  // ARPRequest or ARPReply
	SenderHW [6]byte // sender hardware (MAC) address
	SenderIP [4]byte // sender protocol (IPv4) address; 0.0.0.0 in a duplicate-address probe
	TargetHW [6]byte // target hardware address; zero in a request
	TargetIP [4]byte // target protocol address
}

// Inner describes the IP packet quoted inside an ICMP or ICMPv6 error.
type Inner struct {
	Valid bool    // the frame is an ICMP error and the fields below are set
	L3Off int     // offset of the quoted IP header in the frame
	L4Off int     // offset of the quoted L4 header in the frame (at least 8 bytes of it are present)
	Key   FlowKey // the quoted packet's own flow key (the direction it was sent in)
}

// Headers is what Parse learns about a frame: offsets into the caller's frame and a pointer-free
// flow key. The caller owns it and reuses it frame after frame; Parse overwrites every field.
type Headers struct {
	// Key names the flow. For TCP and UDP it is the 5-tuple; for ICMP echo both ports hold the
	// echo identifier; for an ICMP error it is Inner.Key.Reverse(), the flow direction the error
	// travels in, so that one conntrack lookup finds the flow the error belongs to (Proto is
	// then the quoted packet's protocol, and L4Proto says the frame is ICMP). Zero for ARP.
	Key FlowKey
	// Inner is set for ICMP and ICMPv6 errors; its other fields mean nothing unless Inner.Valid.
	Inner Inner
	// ARP is set when EtherType is EtherTypeARP (else it holds a previous frame's values).
	ARP ARP

	EtherType uint16 // EtherType after any VLAN tag
	VLANTCI   uint16 // tag control information of the 802.1Q tag, when HasVLAN
	HasVLAN   bool   // the frame carries one 802.1Q tag
	L4Proto   uint8  // protocol of the L4 header at L4Off (ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6)
	TTL       uint8  // IPv4 TTL or IPv6 hop limit as received
	TCPFlags  uint8  // TCP flags byte, for TCP
	ICMPType  uint8  // ICMP/ICMPv6 type, for ICMP
	ICMPCode  uint8  // ICMP/ICMPv6 code, for ICMP

	L3Off      int // offset of the IP (or ARP) header: 14, or 18 with a VLAN tag
	L4Off      int // offset of the TCP/UDP/ICMP header, after IPv4 options or IPv6 extension headers
	PayloadOff int // offset of the L4 payload (after TCP options; after the 8-byte ICMP header)
	L3End      int // end of the IP packet in the frame; bytes from L3End on are Ethernet padding
}

// IsICMPError reports whether the frame is an ICMP or ICMPv6 error with a parsed Inner part.
func (h *Headers) IsICMPError() bool { return h.Inner.Valid }

// Parse decodes frame into h and returns OK, or the reason the frame is not for the fast path.
// It reads frame only and never keeps it. On a non-OK result h is partly filled and must not be
// used for rewriting. Parse does not verify checksums (see VerifyChecksums) and does not look at
// the TTL (frames for the appliance itself are fine with TTL 1): forwarding rewrites report
// TTLExpired.
func Parse(frame []byte, h *Headers) DropReason {
	// Reset field by field rather than *h = Headers{}: ARP and the Inner offsets and key are
	// only meaningful when EtherType is ARP or Inner.Valid is set, and are written then.
	h.Key = FlowKey{}
	h.Inner.Valid = false
	h.EtherType, h.VLANTCI, h.HasVLAN = 0, 0, false
	h.L4Proto, h.TTL, h.TCPFlags, h.ICMPType, h.ICMPCode = 0, 0, 0, 0, 0
	h.L3Off, h.L4Off, h.PayloadOff, h.L3End = 0, 0, 0, 0
	if len(frame) > MaxFrameLen {
		return Oversized
	}
	if len(frame) < EthHeaderLen {
		return Truncated
	}
	off := EthHeaderLen
	et := binary.BigEndian.Uint16(frame[ethTypeOffset:])
	if et == EtherTypeVLAN {
		if len(frame) < EthHeaderLen+VLANTagLen {
			return Truncated
		}
		h.HasVLAN = true
		h.VLANTCI = binary.BigEndian.Uint16(frame[vlanTCIOffset:])
		et = binary.BigEndian.Uint16(frame[vlanTypeOffset:])
		off += VLANTagLen
	}
	h.EtherType = et
	h.L3Off = off
	switch et {
	case EtherTypeIPv4:
		return parseIPv4(frame, off, h)
	case EtherTypeIPv6:
		return parseIPv6(frame, off, h)
	case EtherTypeARP:
		return parseARP(frame, off, h)
	}
	return UnsupportedEtherType
}

// checkPadding reports Oversized when the frame carries more than Ethernet padding after end.
func checkPadding(frame []byte, end int) DropReason {
	if len(frame) > end && len(frame) > MaxPaddedFrameLen {
		return Oversized
	}
	return OK
}

func parseARP(frame []byte, off int, h *Headers) DropReason {
	if len(frame) < off+arpLen {
		return Truncated
	}
	b := frame[off : off+arpLen]
	if binary.BigEndian.Uint16(b[arpHWTypeOffset:]) != arpHWTypeEthernet ||
		binary.BigEndian.Uint16(b[arpProtoTypeOffset:]) != EtherTypeIPv4 ||
		b[arpHWLenOffset] != macLen || b[arpProtoLenOffset] != ipv4AddrLen {
		return BadARP
	}
	op := binary.BigEndian.Uint16(b[arpOpOffset:])
	if op != ARPRequest && op != ARPReply {
		return BadARP
	}
	h.ARP.Op = op
	copy(h.ARP.SenderHW[:], b[arpSenderHWOffset:])
	copy(h.ARP.SenderIP[:], b[arpSenderIPOffset:])
	copy(h.ARP.TargetHW[:], b[arpTargetHWOffset:])
	copy(h.ARP.TargetIP[:], b[arpTargetIPOffset:])
	end := off + arpLen
	h.L4Off, h.PayloadOff, h.L3End = end, end, end
	return checkPadding(frame, end)
}

func parseIPv4(frame []byte, off int, h *Headers) DropReason {
	if len(frame) < off+ipv4MinHeaderLen {
		return Truncated
	}
	b := frame[off:]
	if b[ipv4VersIHLOffset]>>4 != 4 {
		return BadVersion
	}
	ihl := int(b[ipv4VersIHLOffset]&0x0f) * 4
	if ihl < ipv4MinHeaderLen {
		return BadHeaderLength
	}
	total := int(binary.BigEndian.Uint16(b[ipv4TotalLenOffset:]))
	if total < ihl {
		return BadTotalLength
	}
	if total > len(b) {
		return Truncated
	}
	end := off + total
	if r := checkPadding(frame, end); r != OK {
		return r
	}
	if binary.BigEndian.Uint16(b[ipv4FlagsFragOffset:])&0x3fff != 0 {
		return Fragment
	}
	h.TTL = b[ipv4TTLOffset]
	proto := b[ipv4ProtocolOffset]
	copy(h.Key.SrcAddr[:4], b[ipv4SrcAddrOffset:ipv4SrcAddrOffset+ipv4AddrLen])
	copy(h.Key.DstAddr[:4], b[ipv4DstAddrOffset:ipv4DstAddrOffset+ipv4AddrLen])
	h.Key.Family = FamilyIPv4
	h.Key.Proto = proto
	h.L3End = end
	return parseL4(frame, off+ihl, end, proto, FamilyIPv4, h)
}

func parseIPv6(frame []byte, off int, h *Headers) DropReason {
	if len(frame) < off+ipv6HeaderLen {
		return Truncated
	}
	b := frame[off:]
	if b[ipv6VersTCFlowOffset]>>4 != 6 {
		return BadVersion
	}
	plen := int(binary.BigEndian.Uint16(b[ipv6PayloadLenOffset:]))
	if plen == 0 {
		return BadTotalLength
	}
	end := off + ipv6HeaderLen + plen
	if end > len(frame) {
		return Truncated
	}
	if r := checkPadding(frame, end); r != OK {
		return r
	}
	h.TTL = b[ipv6HopLimitOffset]
	proto, l4, r := walkIPv6(frame, off+ipv6HeaderLen, end, b[ipv6NextHeaderOffset])
	if r != OK {
		return r
	}
	copy(h.Key.SrcAddr[:], b[ipv6SrcAddrOffset:ipv6SrcAddrOffset+ipv6AddrLen])
	copy(h.Key.DstAddr[:], b[ipv6DstAddrOffset:ipv6DstAddrOffset+ipv6AddrLen])
	h.Key.Family = FamilyIPv6
	h.Key.Proto = proto
	h.L3End = end
	return parseL4(frame, l4, end, proto, FamilyIPv6, h)
}

// walkIPv6 follows the extension header chain starting at off (next is the first next-header
// value) up to the L4 header, and returns the L4 protocol and its offset.
func walkIPv6(frame []byte, off, end int, next uint8) (uint8, int, DropReason) {
	for i := 0; i <= maxIPv6ExtHeaders; i++ {
		switch next {
		case ProtoTCP, ProtoUDP, ProtoICMPv6:
			return next, off, OK
		case 44: // fragment
			return 0, 0, Fragment
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if next == 0 && i != 0 {
				return 0, 0, UnsupportedProtocol
			}
			if end-off < ipv6ExtLenUnit {
				return 0, 0, Truncated
			}
			hl := (int(frame[off+ipv6ExtLenOffset]) + 1) * ipv6ExtLenUnit
			if hl > end-off {
				return 0, 0, BadHeaderLength
			}
			if next == ipv6ProtoRouting && frame[off+ipv6RoutingSegLeftOffset] != 0 { // dst is not the final one
				return 0, 0, UnsupportedProtocol
			}
			next = frame[off+ipv6ExtNextHeaderOffset]
			off += hl
		default:
			return 0, 0, UnsupportedProtocol
		}
	}
	return 0, 0, BadHeaderLength
}

func parseL4(frame []byte, l4, end int, proto uint8, fam Family, h *Headers) DropReason {
	h.L4Off = l4
	h.L4Proto = proto
	b := frame[l4:end]
	switch proto {
	case ProtoTCP:
		if len(b) < tcpMinHeaderLen {
			return Truncated
		}
		doff := int(b[tcpDataOffsetOffset]>>4) * 4
		if doff < tcpMinHeaderLen || doff > len(b) {
			return BadHeaderLength
		}
		h.Key.SrcPort = binary.BigEndian.Uint16(b[tcpSrcPortOffset:])
		h.Key.DstPort = binary.BigEndian.Uint16(b[tcpDstPortOffset:])
		h.TCPFlags = b[tcpFlagsOffset]
		h.PayloadOff = l4 + doff
		return OK
	case ProtoUDP:
		if len(b) < udpHeaderLen {
			return Truncated
		}
		ulen := int(binary.BigEndian.Uint16(b[udpLengthOffset:]))
		if ulen != len(b) { // the UDP length must agree with the IP length
			return BadTotalLength
		}
		if fam == FamilyIPv6 && binary.BigEndian.Uint16(b[udpChecksumOffset:]) == 0 {
			return BadChecksum
		}
		h.Key.SrcPort = binary.BigEndian.Uint16(b[udpSrcPortOffset:])
		h.Key.DstPort = binary.BigEndian.Uint16(b[udpDstPortOffset:])
		h.PayloadOff = l4 + udpHeaderLen
		return OK
	case ProtoICMP:
		if fam != FamilyIPv4 {
			return UnsupportedProtocol
		}
		return parseICMP(frame, l4, end, h, ICMPEchoRequest, ICMPEchoReply)
	case ProtoICMPv6:
		if fam != FamilyIPv6 {
			return UnsupportedProtocol
		}
		return parseICMP(frame, l4, end, h, ICMPv6EchoRequest, ICMPv6EchoReply)
	}
	return UnsupportedProtocol
}

func isICMPError(fam Family, t uint8) bool {
	if fam == FamilyIPv4 {
		return t == ICMPDestUnreachable || t == ICMPTimeExceeded || t == ICMPParamProblem
	}
	return t == ICMPv6DestUnreachable || t == ICMPv6PacketTooBig || t == ICMPv6TimeExceeded ||
		t == ICMPv6ParamProblem
}

func parseICMP(frame []byte, l4, end int, h *Headers, echoReq, echoRep uint8) DropReason {
	if end-l4 < icmpHeaderLen {
		return Truncated
	}
	t := frame[l4+icmpTypeOffset]
	h.ICMPType = t
	h.ICMPCode = frame[l4+icmpCodeOffset]
	h.PayloadOff = l4 + icmpHeaderLen
	if t == echoReq || t == echoRep {
		id := binary.BigEndian.Uint16(frame[l4+icmpIdentOffset:])
		h.Key.SrcPort, h.Key.DstPort = id, id
		return OK
	}
	if !isICMPError(h.Key.Family, t) {
		return UnsupportedICMPType
	}
	h.Inner = Inner{}
	var r DropReason
	if h.Key.Family == FamilyIPv4 {
		r = parseInner4(frame, l4+icmpHeaderLen, end, &h.Inner)
	} else {
		r = parseInner6(frame, l4+icmpHeaderLen, end, &h.Inner)
	}
	if r != OK {
		return r
	}
	h.Key = h.Inner.Key.Reverse()
	return OK
}

// parseInnerL4 reads the ports (or echo id) of the quoted L4 header at l4; 8 bytes must be there.
func parseInnerL4(frame []byte, l4, end int, proto uint8, in *Inner, echoReq, echoRep uint8) DropReason {
	if end-l4 < quotedL4Len {
		return BadICMPError
	}
	b := frame[l4 : l4+quotedL4Len]
	switch proto {
	case ProtoTCP, ProtoUDP: // the ports are at the same offsets in TCP and UDP
		in.Key.SrcPort = binary.BigEndian.Uint16(b[tcpSrcPortOffset:])
		in.Key.DstPort = binary.BigEndian.Uint16(b[tcpDstPortOffset:])
	case ProtoICMP, ProtoICMPv6:
		if b[icmpTypeOffset] != echoReq && b[icmpTypeOffset] != echoRep {
			return BadICMPError
		}
		id := binary.BigEndian.Uint16(b[icmpIdentOffset:])
		in.Key.SrcPort, in.Key.DstPort = id, id
	default:
		return BadICMPError
	}
	in.Key.Proto = proto
	in.L4Off = l4
	in.Valid = true
	return OK
}

func parseInner4(frame []byte, off, end int, in *Inner) DropReason {
	if end-off < ipv4MinHeaderLen {
		return BadICMPError
	}
	b := frame[off:end]
	ihl := int(b[ipv4VersIHLOffset]&0x0f) * 4
	if b[ipv4VersIHLOffset]>>4 != 4 || ihl < ipv4MinHeaderLen || ihl > len(b) {
		return BadICMPError
	}
	if binary.BigEndian.Uint16(b[ipv4FlagsFragOffset:])&0x1fff != 0 { // non-first fragment: no L4 header
		return BadICMPError
	}
	proto := b[ipv4ProtocolOffset]
	if proto == ProtoICMPv6 {
		return BadICMPError
	}
	copy(in.Key.SrcAddr[:4], b[ipv4SrcAddrOffset:ipv4SrcAddrOffset+ipv4AddrLen])
	copy(in.Key.DstAddr[:4], b[ipv4DstAddrOffset:ipv4DstAddrOffset+ipv4AddrLen])
	in.Key.Family = FamilyIPv4
	in.L3Off = off
	return parseInnerL4(frame, off+ihl, end, proto, in, ICMPEchoRequest, ICMPEchoReply)
}

func parseInner6(frame []byte, off, end int, in *Inner) DropReason {
	if end-off < ipv6HeaderLen {
		return BadICMPError
	}
	b := frame[off:end]
	if b[ipv6VersTCFlowOffset]>>4 != 6 {
		return BadICMPError
	}
	proto, l4, r := walkIPv6(frame, off+ipv6HeaderLen, end, b[ipv6NextHeaderOffset])
	if r != OK || proto == ProtoICMP {
		return BadICMPError
	}
	copy(in.Key.SrcAddr[:], b[ipv6SrcAddrOffset:ipv6SrcAddrOffset+ipv6AddrLen])
	copy(in.Key.DstAddr[:], b[ipv6DstAddrOffset:ipv6DstAddrOffset+ipv6AddrLen])
	in.Key.Family = FamilyIPv6
	in.L3Off = off
	return parseInnerL4(frame, l4, end, proto, in, ICMPv6EchoRequest, ICMPv6EchoReply)
}
