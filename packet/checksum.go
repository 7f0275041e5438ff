package packet

import "encoding/binary"

// sum adds the big-endian 16-bit words of b to acc (ones' complement arithmetic, not yet
// folded). b is taken to start at an even offset of the checksummed range; a trailing odd byte
// is padded with zero as RFC 1071 says.
func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces a ones' complement accumulator to 16 bits.
func fold(acc uint64) uint16 {
	acc = (acc & 0xffffffff) + acc>>32
	acc = (acc & 0xffff) + acc>>16
	acc = (acc & 0xffff) + acc>>16
	acc = (acc & 0xffff) + acc>>16
	return uint16(acc)
}

// Checksum returns the Internet checksum (RFC 1071) of b, starting from the unfolded partial
// sum initial (0, or a pseudo-header sum from PseudoSum4/PseudoSum6).
func Checksum(b []byte, initial uint64) uint16 {
	return ^fold(sum(b, initial))
}

// PseudoSum4 is the unfolded sum of the IPv4 pseudo-header for a TCP/UDP segment of length l4Len.
func PseudoSum4(src, dst [4]byte, proto uint8, l4Len int) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) +
		uint64(proto) + uint64(l4Len)
}

// PseudoSum6 is the unfolded sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
func PseudoSum6(src, dst [16]byte, proto uint8, l4Len int) uint64 {
	return sum(src[:], sum(dst[:], 0)) + uint64(proto) + uint64(l4Len)
}

// The incremental update of RFC 1624, equation 3: HC' = ~(~HC + ~m + m'). A change is first
// collected as a delta (the sum of ~m + m' over the changed words) so that one address change
// can be applied to the IP header checksum and to the L4 pseudo-header checksum alike.

// delta16 is the checksum delta of one 16-bit word changing from old to new.
func delta16(old, new uint16) uint64 { return uint64(^old) + uint64(new) }

// delta32 is the checksum delta of two adjacent 16-bit words (at an even offset) changing.
func delta32(old, new uint32) uint64 { return uint64(^old) + uint64(new) }

// applyDelta returns checksum c updated by delta d.
func applyDelta(c uint16, d uint64) uint16 { return ^fold(uint64(^c) + d) }

// UpdateChecksum16 returns checksum c after one 16-bit word at an even offset of the covered
// bytes changed from old to new (RFC 1624).
func UpdateChecksum16(c, old, new uint16) uint16 { return applyDelta(c, delta16(old, new)) }

// UpdateChecksum32 is UpdateChecksum16 for a 32-bit value at an even offset (an IPv4 address).
func UpdateChecksum32(c uint16, old, new uint32) uint16 { return applyDelta(c, delta32(old, new)) }

// delta128 is the delta of a 16-byte field (an IPv6 address) changing from old to new.
func delta128(old []byte, new *[16]byte) uint64 {
	_ = old[15]
	be := binary.BigEndian
	return delta32(be.Uint32(old[0:]), be.Uint32(new[0:])) +
		delta32(be.Uint32(old[4:]), be.Uint32(new[4:])) +
		delta32(be.Uint32(old[8:]), be.Uint32(new[8:])) +
		delta32(be.Uint32(old[12:]), be.Uint32(new[12:]))
}
