// Package packet parses and rewrites Ethernet frames carrying IPv4, IPv6, TCP, UDP, ICMP, ICMPv6
// and ARP, in place, for the appliance's data plane, and builds the few frames the appliance
// answers itself (ARP replies and probes, gratuitous ARP, echo replies, ICMP/ICMPv6 errors, TCP
// resets).
//
// Parse fills a caller-owned Headers (offsets and a pointer-free FlowKey) and returns a
// DropReason: OK or a small integer the caller counts in a [NumDropReasons]uint64 array. The
// rewrite helpers (NAT4, NAT6 and the finer SetSrc4, SetDst4, SetPorts, DecTTL4, SetInner4, their
// IPv6 twins, SetMACs) patch the frame and update checksums incrementally (RFC 1624). IPv4 and
// IPv6 are separate code paths. Header fields are read and written through named offsets
// (ipv4TTLOffset, tcpFlagsOffset, ...) declared under each header's RFC layout in header.go.
//
// Invariants:
//   - The package only reads and writes the byte slices the caller passes; it keeps no reference
//     to them and has no global mutable state. Parse, the rewrites and the builders allocate
//     nothing (tested with testing.AllocsPerRun).
//   - Bad input never panics: Parse returns a DropReason, a rewrite handed Headers that do not fit
//     the frame returns WrongHeaders, a builder returns one of the preallocated Err values.
//   - Parse never reports TTLExpired; the forwarding rewrites (NAT4, NAT6, DecTTL4,
//     DecHopLimit6) do, before changing anything.
//   - Rewrites keep h's offsets valid (no header changes length) but do not update h.Key.
//   - A valid frame stays valid: every checksum verifies after a rewrite (fuzzed).
//
// # Concurrency
//
// Every function is safe for concurrent use on distinct frames and distinct Headers;
// a frame and its Headers belong to one goroutine (a data-plane worker) at a time.
package packet
