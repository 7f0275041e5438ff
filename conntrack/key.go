package conntrack

import (
	"encoding/binary"
	"math/bits"

	"github.com/xdpsvc/lb/packet"
)

const (
	protoTCP    = packet.ProtoTCP
	protoUDP    = packet.ProtoUDP
	protoICMP   = packet.ProtoICMP
	protoICMPv6 = packet.ProtoICMPv6
)

// A flow key is stored as little-endian 64-bit words so that the table can read and write it with
// atomic word operations (readers run concurrently with writers). The last word of both layouts
// holds sport | dport<<16 | proto<<32.
type (
	key4 = [2]uint64 // src(4) dst(4) | ports, proto
	key6 = [5]uint64 // src(16) dst(16) | ports, proto
)

// keyWords is the set of key layouts; each table instance stores one of them.
type keyWords interface{ key4 | key6 }

func portsWord(k *packet.FlowKey) uint64 {
	return uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
}

func packKey4(k *packet.FlowKey) key4 {
	return key4{
		uint64(binary.LittleEndian.Uint32(k.SrcAddr[:4])) | uint64(binary.LittleEndian.Uint32(k.DstAddr[:4]))<<32,
		portsWord(k),
	}
}

func packKey6(k *packet.FlowKey) key6 {
	return key6{
		binary.LittleEndian.Uint64(k.SrcAddr[:8]),
		binary.LittleEndian.Uint64(k.SrcAddr[8:]),
		binary.LittleEndian.Uint64(k.DstAddr[:8]),
		binary.LittleEndian.Uint64(k.DstAddr[8:]),
		portsWord(k),
	}
}

func unpackPorts(w uint64, out *packet.FlowKey) {
	out.SrcPort = uint16(w)
	out.DstPort = uint16(w >> 16)
	out.Proto = uint8(w >> 32)
}

func unpackKey4(k *key4, out *packet.FlowKey) {
	*out = packet.FlowKey{Family: packet.FamilyIPv4}
	binary.LittleEndian.PutUint32(out.SrcAddr[:4], uint32(k[0]))
	binary.LittleEndian.PutUint32(out.DstAddr[:4], uint32(k[0]>>32))
	unpackPorts(k[1], out)
}

func unpackKey6(k *key6, out *packet.FlowKey) {
	*out = packet.FlowKey{Family: packet.FamilyIPv6}
	binary.LittleEndian.PutUint64(out.SrcAddr[:8], k[0])
	binary.LittleEndian.PutUint64(out.SrcAddr[8:], k[1])
	binary.LittleEndian.PutUint64(out.DstAddr[:8], k[2])
	binary.LittleEndian.PutUint64(out.DstAddr[8:], k[3])
	unpackPorts(k[4], out)
}

// setReplyPort writes the SNAT port into a reply key (backend → SNAT address): the destination
// port, and for ICMP echo also the source port (both hold the echo identifier).
func setReplyPort[K keyWords](k *K, port uint16, icmp bool) {
	n := len(*k) - 1
	w := (*k)[n]&^(0xffff<<16) | uint64(port)<<16
	if icmp {
		w = w&^0xffff | uint64(port)
	}
	(*k)[n] = w
}

const (
	hashM1 = 0xa0761d6478bd642f
	hashM2 = 0xe7037ed1a0b428db
	hashM3 = 0x8ebc6af09c88c6e3
	hashM4 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashKey is a wyhash-style keyed hash of a flow key; the seed is random per table.
func hashKey[K keyWords](k *K, seed uint64) uint64 {
	h := seed
	n := len(*k)
	i := 0
	for ; i+1 < n; i += 2 {
		h = mix((*k)[i]^hashM1^h, (*k)[i+1]^hashM2)
	}
	if i < n {
		h = mix((*k)[i]^hashM1^h, hashM3)
	}
	return mix(h^uint64(n), hashM4)
}
