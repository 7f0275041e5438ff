package steer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Protocol numbers the steering program understands.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Flags is the value stored with a frontend. For TCP and UDP entries any non-zero value means
// "steer"; for ICMP entries (port 0, proto ICMP or ICMPv6) the bits choose which messages go to
// the socket.
type Flags uint32

const (
	// FlagEcho steers echo requests to the address (ICMP type 8, ICMPv6 type 128).
	FlagEcho Flags = 1 << 0
	// FlagICMPError steers ICMP errors to the address: IPv4 destination unreachable (3), time
	// exceeded (11) and parameter problem (12); ICMPv6 destination unreachable (1), packet too
	// big (2), time exceeded (3) and parameter problem (4). Only errors whose quoted packet has
	// a source tuple of the appliance's (frontend, held VIP, steered port range) are steered;
	// the rest are the host's and pass.
	FlagICMPError Flags = 1 << 1
	// FlagsAll is stored when a Frontend's Flags is zero.
	FlagsAll Flags = FlagEcho | FlagICMPError
)

// Frontend is one (destination address, destination port, protocol) the node serves. ICMP
// entries use Port 0 and Proto ProtoICMP (IPv4) or ProtoICMPv6 (IPv6).
type Frontend struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
	// Flags selects ICMP message kinds for ICMP entries; zero means FlagsAll.
	Flags Flags
}

// key4 is the frontends4 map key: address (network order), port (network order), proto, pad.
type key4 [8]byte

// key6 is the frontends6 map key: address, port (network order), proto, pad.
type key6 [20]byte

func encodeKey4(a [4]byte, port uint16, proto uint8) key4 {
	var k key4
	copy(k[0:4], a[:])
	binary.BigEndian.PutUint16(k[4:6], port)
	k[6] = proto
	return k
}

func encodeKey6(a [16]byte, port uint16, proto uint8) key6 {
	var k key6
	copy(k[0:16], a[:])
	binary.BigEndian.PutUint16(k[16:18], port)
	k[18] = proto
	return k
}

// validate checks a frontend and returns its stored flags value.
func (f Frontend) validate() (uint32, error) {
	if !f.Addr.IsValid() {
		return 0, fmt.Errorf("frontend %v: invalid address", f)
	}
	a := f.Addr.Unmap()
	switch f.Proto {
	case ProtoTCP, ProtoUDP:
	case ProtoICMP:
		if !a.Is4() || f.Port != 0 {
			return 0, fmt.Errorf("frontend %s port %d proto ICMP: ICMP entries need an IPv4 address and port 0", a, f.Port)
		}
	case ProtoICMPv6:
		if !a.Is6() || f.Port != 0 {
			return 0, fmt.Errorf("frontend %s port %d proto ICMPv6: ICMPv6 entries need an IPv6 address and port 0", a, f.Port)
		}
	default:
		return 0, fmt.Errorf("frontend %s: protocol %d not steerable (TCP, UDP, ICMP, ICMPv6)", a, f.Proto)
	}
	v := uint32(f.Flags)
	if v == 0 {
		v = uint32(FlagsAll)
	}
	return v, nil
}
