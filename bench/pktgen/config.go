package pktgen

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Proto is the kind of frame the generator sends.
type Proto int

// The frame kinds.
const (
	// ProtoUDP sends UDP datagrams whose payload fills the frame.
	ProtoUDP Proto = iota + 1
	// ProtoTCPSYN sends TCP SYN segments without payload (frames padded to size with zeros after the IP
	// packet, as a wire pads short frames): a new connection per flow.
	ProtoTCPSYN
	// ProtoTCPACK sends TCP ACK segments whose payload fills the frame.
	ProtoTCPACK
)

// String is the name ParseProto accepts.
func (p Proto) String() string {
	switch p {
	case ProtoUDP:
		return "udp"
	case ProtoTCPSYN:
		return "tcp-syn"
	case ProtoTCPACK:
		return "tcp-ack"
	}
	return fmt.Sprintf("proto(%d)", int(p))
}

// IPProto is the IP protocol number of the frames.
func (p Proto) IPProto() uint8 {
	if p == ProtoUDP {
		return 17
	}
	return 6
}

// MarshalText lets JSON output show the name.
func (p Proto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParseProto parses udp, tcp-syn (or syn, tcp) and tcp-ack (or ack).
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "udp":
		return ProtoUDP, nil
	case "tcp-syn", "syn", "tcp":
		return ProtoTCPSYN, nil
	case "tcp-ack", "ack":
		return ProtoTCPACK, nil
	}
	return 0, fmt.Errorf("protocol %q: want udp, tcp-syn or tcp-ack", s)
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	// First is the lowest port (1..65535).
	First uint16
	// Last is the highest port (First..65535); 0 means First.
	Last uint16
}

// size is the number of ports in the range.
func (r PortRange) size() int {
	if r.Last == 0 {
		return 1
	}
	return int(r.Last) - int(r.First) + 1
}

func (r PortRange) validate(name string) error {
	if r.First == 0 {
		return fmt.Errorf("%s: port 0 is not a port", name)
	}
	if r.Last != 0 && r.Last < r.First {
		return fmt.Errorf("%s: range %d-%d is empty", name, r.First, r.Last)
	}
	return nil
}

// Frame size limits: FrameSize counts the 4-byte FCS the wire adds, as RFC 2544 does ("64-byte frames").
const (
	fcsLen       = 4
	MinFrameSize = 64   // the Ethernet minimum
	MaxFrameSize = 1518 // an untagged frame with a 1500-byte MTU
	chunkSize    = 2048 // UMEM chunk (asavie FrameSize); the kernel's minimum in aligned mode
	slotAlign    = 64   // frame slots within a chunk start on cache lines
)

// benchRange is the only range the generator may send to or from (ARCHITECTURE.md, "The lab").
var benchRange = netip.MustParsePrefix("198.18.0.0/15")

// Config says what to send, from where and for how long.
type Config struct {
	// Iface is the interface to send from; "" means the interface of the route to DstPrefix's first address.
	Iface string
	// Queue is the TX queue the AF_XDP socket binds to.
	Queue int
	// SrcMAC is the frames' source MAC; nil means the interface's own.
	SrcMAC net.HardwareAddr
	// DstMAC is the frames' destination MAC; nil means resolve the next hop to DstPrefix's first address
	// through the kernel's neighbour table (ARP triggered if needed, bounded by ResolveTimeout).
	DstMAC net.HardwareAddr
	// SrcPrefix is the range of source addresses the flows use; the zero value means the interface's first
	// IPv4 address alone. For prefixes of /30 and wider the network and broadcast addresses are skipped.
	SrcPrefix netip.Prefix
	// DstPrefix is the range of destination addresses (usually one address, /32). Required.
	DstPrefix netip.Prefix
	// SrcPorts is the range of source ports the flows use.
	SrcPorts PortRange
	// DstPorts is the range of destination ports (usually one). Required.
	DstPorts PortRange
	// Proto is the kind of frame (UDP, TCP SYN or TCP ACK).
	Proto Proto
	// Flows is the number of distinct 5-tuples, each with its own prebuilt frame (1 or more).
	Flows int
	// FrameSize is the Ethernet frame size in bytes including the 4-byte FCS (64..1518); the frame built is
	// 4 bytes shorter.
	FrameSize int
	// RatePPS is the target rate in packets per second; 0 sends flat out.
	RatePPS float64
	// MaxPackets bounds the run in packets (required, > 0).
	MaxPackets uint64
	// MaxDuration bounds the run in time (required, > 0); the drain of outstanding completions afterwards
	// is bounded by DrainTimeout.
	MaxDuration time.Duration
	// BatchSize is the number of descriptors put on the TX ring at once (1..TxRingSize).
	BatchSize int
	// TxRingSize is the number of TX and completion ring entries (a power of two, 64..32768).
	TxRingSize int
	// TxSkbBudget raises the kernel's frames per sendto in copy mode (XDP_MAX_TX_SKB_BUDGET, kernel default
	// 32); 0 leaves the default.
	TxSkbBudget int
	// MaxUMEMBytes bounds the UMEM that holds the prebuilt frames (Flows × slot size).
	MaxUMEMBytes int
	// ResolveTimeout bounds the resolution of DstMAC.
	ResolveTimeout time.Duration
	// DrainTimeout bounds the wait for the last completions after the send loop stops.
	DrainTimeout time.Duration
}

// DefaultConfig is 64-byte UDP frames, one flow, flat out, at most 1e6 packets or 10 s, from source ports
// 1024-65535. DstPrefix and DstPorts must still be set.
func DefaultConfig() Config {
	return Config{
		SrcPorts:       PortRange{First: 1024, Last: 65535},
		Proto:          ProtoUDP,
		Flows:          1,
		FrameSize:      MinFrameSize,
		MaxPackets:     1_000_000,
		MaxDuration:    10 * time.Second,
		BatchSize:      64,
		TxRingSize:     2048,
		MaxUMEMBytes:   256 << 20,
		ResolveTimeout: 3 * time.Second,
		DrainTimeout:   time.Second,
	}
}

// headerLen is the length of the Ethernet, IP and L4 headers of p.
func (p Proto) headerLen() int {
	if p == ProtoUDP {
		return 14 + 20 + 8
	}
	return 14 + 20 + 20
}

// frameLen is the length of the frame as built (without FCS).
func (c Config) frameLen() int { return c.FrameSize - fcsLen }

// hosts is the number of addresses a prefix contributes and the first of them.
func hosts(p netip.Prefix) (first netip.Addr, n int) {
	p = p.Masked()
	bits := 32 - p.Bits()
	n = 1 << bits
	first = p.Addr()
	if bits >= 2 {
		n -= 2
		first = first.Next()
	}
	return first, n
}

// flowSpace is how many distinct 5-tuples the ranges hold.
func (c Config) flowSpace() uint64 {
	_, ns := hosts(c.SrcPrefix)
	_, nd := hosts(c.DstPrefix)
	return uint64(ns) * uint64(nd) * uint64(c.SrcPorts.size()) * uint64(c.DstPorts.size())
}

// Validate checks the config as far as it can without the interface (SrcPrefix may still be zero).
func (c Config) Validate() error {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if c.Proto < ProtoUDP || c.Proto > ProtoTCPACK {
		add("proto: %v is not udp, tcp-syn or tcp-ack", c.Proto)
	}
	if !c.DstPrefix.IsValid() {
		add("destination prefix: required")
	}
	for _, p := range []struct {
		name string
		p    netip.Prefix
	}{{"source prefix", c.SrcPrefix}, {"destination prefix", c.DstPrefix}} {
		if p.p.IsValid() && (!p.p.Addr().Is4() || !benchRange.Contains(p.p.Addr()) || p.p.Bits() < benchRange.Bits()) {
			add("%s: %s is outside %s, the only range benchmarks may use", p.name, p.p, benchRange)
		}
	}
	if err := c.SrcPorts.validate("source ports"); err != nil {
		add("%v", err)
	}
	if err := c.DstPorts.validate("destination ports"); err != nil {
		add("%v", err)
	}
	if c.FrameSize < MinFrameSize || c.FrameSize > MaxFrameSize {
		add("frame size: %d bytes is outside %d..%d", c.FrameSize, MinFrameSize, MaxFrameSize)
	}
	if c.Flows < 1 {
		add("flows: %d, want at least 1", c.Flows)
	}
	if c.RatePPS < 0 {
		add("rate: %v pps is negative", c.RatePPS)
	}
	if c.MaxPackets == 0 {
		add("max packets: required (a run is bounded in packets and time)")
	}
	if c.MaxDuration <= 0 {
		add("max duration: required (a run is bounded in packets and time)")
	}
	if c.TxRingSize < 64 || c.TxRingSize > 32768 || c.TxRingSize&(c.TxRingSize-1) != 0 {
		add("TX ring size: %d is not a power of two in 64..32768", c.TxRingSize)
	}
	if c.BatchSize < 1 || c.BatchSize > c.TxRingSize {
		add("batch size: %d is outside 1..TX ring size", c.BatchSize)
	}
	if c.TxSkbBudget < 0 {
		add("TX skb budget: %d is negative", c.TxSkbBudget)
	}
	for _, m := range []struct {
		name string
		mac  net.HardwareAddr
	}{{"source MAC", c.SrcMAC}, {"destination MAC", c.DstMAC}} {
		if m.mac != nil && len(m.mac) != 6 {
			add("%s: %s is not an Ethernet address", m.name, m.mac)
		}
	}
	if c.ResolveTimeout <= 0 || c.DrainTimeout <= 0 {
		add("resolve and drain timeouts: must be positive")
	}
	if len(errs) == 0 && c.SrcPrefix.IsValid() && c.DstPrefix.IsValid() {
		if space := c.flowSpace(); uint64(c.Flows) > space {
			add("flows: %d distinct flows do not fit in %d source addresses × %d source ports × %d destination addresses × %d destination ports",
				c.Flows, must(hosts(c.SrcPrefix)), c.SrcPorts.size(), must(hosts(c.DstPrefix)), c.DstPorts.size())
		}
		if _, umem := layout(c); umem > c.MaxUMEMBytes {
			add("flows: %d flows of %d-byte frames need %d bytes of UMEM, more than MaxUMEMBytes %d", c.Flows, c.FrameSize, umem, c.MaxUMEMBytes)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pktgen config: %s", strings.Join(errs, "; "))
	}
	return nil
}

func must(_ netip.Addr, n int) int { return n }
