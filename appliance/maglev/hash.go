package maglev

import (
	"encoding/binary"
	"math/bits"

	"github.com/xdpsvc/lb/packet"
)

// Fixed constants of the flow hashes (wyhash's secrets). They are part of the cross-node
// contract: every node must pick the same backend for the same flow, so never change them and
// never seed them per process.
const (
	flowP0 = 0xa0761d6478bd642f
	flowP1 = 0xe7037ed1a0b428db
	flowP2 = 0x8ebc6af09c88c6e3
	flowP3 = 0x589965cc75374cc3
)

func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// HashFlow hashes the 5-tuple of k (addresses, ports, protocol, family) for Table.Lookup. IPv4
// keys use only the first 4 bytes of each address. It reads k without modifying it, allocates
// nothing, and gives the same value on every node.
func HashFlow(k *packet.FlowKey) uint64 {
	tail := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32 | uint64(k.Family)<<40
	if k.Family != packet.FamilyIPv6 {
		addrs := uint64(binary.LittleEndian.Uint32(k.SrcAddr[:4])) | uint64(binary.LittleEndian.Uint32(k.DstAddr[:4]))<<32
		return wymix(wymix(addrs^flowP0, tail^flowP1)^flowP2, flowP3)
	}
	h := wymix(binary.LittleEndian.Uint64(k.SrcAddr[:8])^flowP0, binary.LittleEndian.Uint64(k.SrcAddr[8:])^flowP1)
	h = wymix(binary.LittleEndian.Uint64(k.DstAddr[:8])^flowP2^h, binary.LittleEndian.Uint64(k.DstAddr[8:])^flowP3)
	return wymix(wymix(h^flowP0, tail^flowP1)^flowP2, flowP3)
}

// HashAddr hashes one address (the client's, for sessionAffinity ClientIP) for Table.Lookup.
// family selects 4 or 16 bytes of addr, as in packet.FlowKey. Zero allocation, same on every
// node.
func HashAddr(family packet.Family, addr *[16]byte) uint64 {
	if family != packet.FamilyIPv6 {
		a := uint64(binary.LittleEndian.Uint32(addr[:4])) | uint64(family)<<40
		return wymix(wymix(a^flowP2, flowP1)^flowP0, flowP3)
	}
	h := wymix(binary.LittleEndian.Uint64(addr[:8])^flowP0, binary.LittleEndian.Uint64(addr[8:])^flowP1)
	return wymix(wymix(h^flowP2, uint64(family)<<40^flowP1)^flowP0, flowP3)
}
