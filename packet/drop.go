package packet

// DropReason says why Parse (or a rewrite) refused a frame. The zero value OK means the frame is
// accepted. Reasons are small integers so that callers can keep per-reason counters in a
// [NumDropReasons]uint64 array indexed by the reason.
type DropReason uint8

const (
	// OK: the frame was accepted.
	OK DropReason = iota
	// Truncated: the frame ends before a fixed-size header does, or before the length an
	// IP header claims.
	Truncated
	// BadVersion: the IP version nibble does not match the EtherType.
	BadVersion
	// BadHeaderLength: a header length field (IPv4 IHL, TCP data offset, IPv6 extension header
	// length) is below its minimum or runs past the end of the IP packet.
	BadHeaderLength
	// BadTotalLength: the IPv4 total length is shorter than its header, the IPv6 payload length
	// is zero (jumbogram or a GSO super-frame), or the UDP length is impossible.
	BadTotalLength
	// Fragment: an IPv4 fragment (MF set or offset non-zero) or an IPv6 fragment header.
	Fragment
	// TTLExpired: the TTL or hop limit is 0 or 1 on a frame the caller asked to forward.
	// Parse never reports it; DecTTL4, DecHopLimit6, NAT4 and NAT6 do.
	TTLExpired
	// UnsupportedEtherType: neither IPv4, IPv6 nor ARP (after at most one 802.1Q tag).
	UnsupportedEtherType
	// UnsupportedProtocol: an L4 protocol other than TCP, UDP, ICMP (IPv4) or ICMPv6 (IPv6),
	// or an IPv6 extension header the fast path does not walk (ESP, AH, no-next-header,
	// a routing header with segments left, a hop-by-hop header not in first place).
	UnsupportedProtocol
	// UnsupportedICMPType: an ICMP type other than echo request/reply and the four errors
	// (destination unreachable, time exceeded, parameter problem, packet too big).
	UnsupportedICMPType
	// BadICMPError: an ICMP error whose embedded IP and L4 header are missing, malformed,
	// of the wrong family, a non-first fragment, or themselves an ICMP error.
	BadICMPError
	// BadARP: an ARP frame that is not Ethernet/IPv4 or has an op other than request/reply.
	BadARP
	// BadChecksum: a checksum does not verify (VerifyChecksums), or a UDP-over-IPv6 checksum
	// is zero, which RFC 8200 forbids (Parse).
	BadChecksum
	// Oversized: the frame is longer than MaxFrameLen (a GSO/TSO super-frame no wire carries),
	// or carries more than Ethernet padding beyond the end of its IP packet.
	Oversized
	// WrongHeaders: a rewrite was handed Headers that do not fit the frame or the call
	// (for example NAT4 on an IPv6 frame). It is a caller bug, counted instead of a panic.
	WrongHeaders

	// NumDropReasons is the number of reasons, OK included: size of a counter array.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	OK:                   "ok",
	Truncated:            "truncated",
	BadVersion:           "bad_version",
	BadHeaderLength:      "bad_header_length",
	BadTotalLength:       "bad_total_length",
	Fragment:             "fragment",
	TTLExpired:           "ttl_expired",
	UnsupportedEtherType: "unsupported_ethertype",
	UnsupportedProtocol:  "unsupported_protocol",
	UnsupportedICMPType:  "unsupported_icmp_type",
	BadICMPError:         "bad_icmp_error",
	BadARP:               "bad_arp",
	BadChecksum:          "bad_checksum",
	Oversized:            "oversized",
	WrongHeaders:         "wrong_headers",
}

// String returns a short snake_case name, fit for a metric label.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}
