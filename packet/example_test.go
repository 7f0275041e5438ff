package packet_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/xdpsvc/lb/packet"
)

// udp4Frame builds an Ethernet/IPv4/UDP frame with valid checksums, as it would arrive.
func udp4Frame(src, dst [4]byte, srcPort, dstPort uint16, payload string) []byte {
	const ethLen, ipLen, udpLen = 14, 20, 8
	f := make([]byte, ethLen+ipLen+udpLen+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x11})  // destination MAC
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x64}) // source MAC
	binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv4)
	ip := f[ethLen:]
	ip[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+udpLen+len(payload)))
	ip[8] = 64 // TTL
	ip[9] = packet.ProtoUDP
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip[:ipLen], 0))
	udp := ip[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(udp[udpLen:], payload)
	sum := packet.Checksum(udp, packet.PseudoSum4(src, dst, packet.ProtoUDP, len(udp)))
	binary.BigEndian.PutUint16(udp[6:], sum)
	return f
}

// Parse a frame, then translate it as a load balancer does: the client's packet to a Service
// address leaves with the node's SNAT address as source and a backend as destination, its
// checksums updated in place.
func Example_parseAndNAT() {
	client, vip := [4]byte{198, 18, 0, 100}, [4]byte{198, 19, 1, 1}
	frame := udp4Frame(client, vip, 40000, 53, "query")

	var h packet.Headers
	if r := packet.Parse(frame, &h); r != packet.OK {
		fmt.Println("parse:", r)
		return
	}
	fmt.Printf("in:  %v:%d -> %v:%d\n", netip.AddrFrom4(h.Key.SrcAddr4()), h.Key.SrcPort,
		netip.AddrFrom4(h.Key.DstAddr4()), h.Key.DstPort)

	snat, backend := [4]byte{198, 18, 1, 2}, [4]byte{198, 18, 1, 21}
	if r := packet.NAT4(frame, &h, snat, 33000, backend, 5353); r != packet.OK {
		fmt.Println("nat:", r)
		return
	}

	var out packet.Headers
	packet.Parse(frame, &out)
	fmt.Printf("out: %v:%d -> %v:%d\n", netip.AddrFrom4(out.Key.SrcAddr4()), out.Key.SrcPort,
		netip.AddrFrom4(out.Key.DstAddr4()), out.Key.DstPort)
	fmt.Println("checksums:", packet.VerifyChecksums(frame, &out))
	// Output:
	// in:  198.18.0.100:40000 -> 198.19.1.1:53
	// out: 198.18.1.2:33000 -> 198.18.1.21:5353
	// checksums: ok
}
