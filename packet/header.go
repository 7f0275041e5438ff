package packet

// Offsets of the fields the fast path reads and writes, from the start of their header, and the
// lengths of the fixed headers. Each group sits under its header's layout as the RFC draws it,
// one row per 32-bit word.

// Ethernet II (IEEE 802.3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Destination MAC (6 bytes) ...                |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |  Source MAC (6 bytes) ...     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |  (802.1Q: TCI, then EtherType)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ethDstOffset  = 0
	ethSrcOffset  = 6
	ethTypeOffset = 12
	macLen        = 6
	// vlanTCIOffset and vlanTypeOffset are the 802.1Q tag's fields, from the frame's start.
	vlanTCIOffset  = 14
	vlanTypeOffset = 16
)

// ARP for IPv4 over Ethernet (RFC 826):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Hardware Type         |         Protocol Type         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  HW Addr Len  | Proto Addr Len|           Operation           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Sender Hardware Address (6), Sender IP (4) ...      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Target Hardware Address (6), Target IP (4) ...      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	arpHWTypeOffset    = 0
	arpProtoTypeOffset = 2
	arpHWLenOffset     = 4
	arpProtoLenOffset  = 5
	arpOpOffset        = 6
	arpSenderHWOffset  = 8
	arpSenderIPOffset  = 14
	arpTargetHWOffset  = 18
	arpTargetIPOffset  = 24
	arpLen             = 28
	arpHWTypeEthernet  = 1
	ipv4AddrLen        = 4
)

// IPv4 (RFC 791):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv4VersIHLOffset   = 0
	ipv4TOSOffset       = 1
	ipv4TotalLenOffset  = 2
	ipv4IDOffset        = 4
	ipv4FlagsFragOffset = 6
	ipv4TTLOffset       = 8
	ipv4ProtocolOffset  = 9
	ipv4ChecksumOffset  = 10
	ipv4SrcAddrOffset   = 12
	ipv4DstAddrOffset   = 16
	// ipv4MinHeaderLen is the header without options (IHL 5).
	ipv4MinHeaderLen = 20
)

// IPv6 (RFC 8200):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Source Address (16 bytes)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Destination Address (16 bytes)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv6VersTCFlowOffset = 0
	ipv6PayloadLenOffset = 4
	ipv6NextHeaderOffset = 6
	ipv6HopLimitOffset   = 7
	ipv6SrcAddrOffset    = 8
	ipv6DstAddrOffset    = 24
	ipv6AddrLen          = 16
	ipv6HeaderLen        = 40

	// An extension header (RFC 8200 section 4) starts with Next Header and Hdr Ext Len (in
	// 8-byte units, not counting the first 8); a Routing header's fourth byte is Segments Left.
	ipv6ExtNextHeaderOffset  = 0
	ipv6ExtLenOffset         = 1
	ipv6RoutingSegLeftOffset = 3
	ipv6ExtLenUnit           = 8
	ipv6ProtoRouting         = 43
)

// TCP (RFC 9293):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	tcpSrcPortOffset    = 0
	tcpDstPortOffset    = 2
	tcpSeqNumOffset     = 4
	tcpAckNumOffset     = 8
	tcpDataOffsetOffset = 12
	tcpFlagsOffset      = 13
	tcpWindowOffset     = 14
	tcpChecksumOffset   = 16
	tcpUrgentOffset     = 18
	// tcpMinHeaderLen is the header without options (Data Offset 5).
	tcpMinHeaderLen = 20
)

// UDP (RFC 768):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	udpSrcPortOffset  = 0
	udpDstPortOffset  = 2
	udpLengthOffset   = 4
	udpChecksumOffset = 6
	udpHeaderLen      = 8
)

// ICMP (RFC 792) and ICMPv6 (RFC 4443); an echo's Rest of Header is Identifier and Sequence
// Number, an error's is unused (or the MTU) and the quoted packet follows:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Identifier          |        Sequence Number        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	icmpTypeOffset     = 0
	icmpCodeOffset     = 1
	icmpChecksumOffset = 2
	icmpRestOffset     = 4 // echo: Identifier; error: unused, or the next-hop MTU
	icmpIdentOffset    = 4
	icmpSeqOffset      = 6
	icmpHeaderLen      = 8
	// quotedL4Len is how much of the quoted L4 header an ICMP error must carry: its first 8
	// bytes (RFC 792), enough for the ports or the echo identifier.
	quotedL4Len = 8
)
