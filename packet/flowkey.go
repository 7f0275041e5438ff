package packet

// Family tells which IP version a FlowKey, Headers or address belongs to.
type Family uint8

const (
	// FamilyNone marks a frame without an IP header (ARP) or an unset key.
	FamilyNone Family = 0
	// FamilyIPv4 is IPv4; addresses use the first 4 bytes of their [16]byte field.
	FamilyIPv4 Family = 4
	// FamilyIPv6 is IPv6; addresses use all 16 bytes.
	FamilyIPv6 Family = 6
)

// IP protocol numbers the fast path knows.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// FlowKey names one direction of a flow. It is a plain value with no pointers, so it can be
// stored in conntrack's preallocated tables, compared with == and hashed byte by byte.
//
// IPv4 addresses sit in the first 4 bytes of SrcAddr/DstAddr and the other 12 bytes are zero.
// For ICMP echo, SrcPort and DstPort both hold the echo identifier.
type FlowKey struct {
	SrcAddr [16]byte
	DstAddr [16]byte
	SrcPort uint16
	DstPort uint16
	Proto   uint8
	Family  Family
	_       [2]byte // padding kept zero so that == and byte hashing agree
}

// Reverse returns the key of the opposite direction.
func (k FlowKey) Reverse() FlowKey {
	return FlowKey{
		SrcAddr: k.DstAddr, DstAddr: k.SrcAddr,
		SrcPort: k.DstPort, DstPort: k.SrcPort,
		Proto: k.Proto, Family: k.Family,
	}
}

// SrcAddr4 returns the IPv4 source address (meaningful when Family is FamilyIPv4).
func (k *FlowKey) SrcAddr4() (a [4]byte) { copy(a[:], k.SrcAddr[:4]); return a }

// DstAddr4 returns the IPv4 destination address (meaningful when Family is FamilyIPv4).
func (k *FlowKey) DstAddr4() (a [4]byte) { copy(a[:], k.DstAddr[:4]); return a }
