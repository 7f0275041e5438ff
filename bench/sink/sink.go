package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// IP protocol numbers a Filter can ask for by name.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// XDP verdicts of the program (linux/bpf.h enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
)

// Filter says which frames the sink counts and drops; the zero value matches every IPv4 and IPv6 frame.
type Filter struct {
	// Proto is the IP protocol (IPv4 protocol or IPv6 first next header) to match; 0 matches any.
	Proto uint8
	// DstPort is the TCP or UDP destination port to match; 0 matches any. With a port, only TCP and UDP
	// frames can match (Proto must then be 0, ProtoTCP or ProtoUDP), and IPv4 fragments after the first never do.
	DstPort uint16
}

// Validate reports a filter the program cannot express.
func (f Filter) Validate() error {
	if f.DstPort != 0 && f.Proto != 0 && f.Proto != ProtoTCP && f.Proto != ProtoUDP {
		return fmt.Errorf("sink filter: destination port %d needs protocol TCP or UDP, not %d", f.DstPort, f.Proto)
	}
	return nil
}

// String describes the filter for logs and reports.
func (f Filter) String() string {
	proto := "ip"
	switch f.Proto {
	case 0:
	case ProtoTCP:
		proto = "tcp"
	case ProtoUDP:
		proto = "udp"
	default:
		proto = fmt.Sprintf("ip proto %d", f.Proto)
	}
	if f.DstPort != 0 {
		return fmt.Sprintf("%s dst port %d", proto, f.DstPort)
	}
	return proto
}

// Match is the program's decision in Go: true means the frame is counted and dropped, false that it passes to
// the kernel. It never panics, whatever the bytes.
func (f Filter) Match(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	var proto uint8
	var l4 []byte // starts at the L4 header; nil when the ports cannot be read
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		if len(frame) < 34 {
			return false
		}
		proto = frame[23]
		ihl := int(frame[14]&0x0f) * 4
		firstFragment := binary.BigEndian.Uint16(frame[20:22])&0x1fff == 0
		if ihl >= 20 && firstFragment && len(frame) >= 14+ihl+4 {
			l4 = frame[14+ihl:]
		}
	case 0x86dd:
		if len(frame) < 54 {
			return false
		}
		proto = frame[20]
		if len(frame) >= 58 {
			l4 = frame[54:]
		}
	default:
		return false
	}
	if f.Proto != 0 && proto != f.Proto {
		return false
	}
	if f.DstPort == 0 {
		return true
	}
	if proto != ProtoTCP && proto != ProtoUDP || l4 == nil {
		return false
	}
	return binary.BigEndian.Uint16(l4[2:4]) == f.DstPort
}

// Config says how to attach the sink.
type Config struct {
	// Filter selects the frames that are counted and dropped; the others pass to the kernel.
	Filter Filter
	// NativeMode attaches in driver (native) XDP mode instead of generic (SKB) mode. On veth generic mode was
	// the cheaper one (ARCHITECTURE.md), so it is the default.
	NativeMode bool
}

// DefaultConfig counts and drops every IPv4 and IPv6 frame, attached in generic mode.
func DefaultConfig() Config { return Config{} }

// Stats are the sink's counters summed over all CPUs since Attach.
type Stats struct {
	// Packets is the number of frames that matched the filter and were dropped.
	Packets uint64
	// Bytes is their total length from the Ethernet header on (no FCS).
	Bytes uint64
	// PassedPackets is the number of frames that did not match and went on to the kernel.
	PassedPackets uint64
	// PassedBytes is their total length.
	PassedBytes uint64
}

// counters is the per-CPU map value; its layout is fixed by the offsets in program().
type counters struct {
	Packets, Bytes, PassedPackets, PassedBytes uint64
}

const (
	offMatched = 0  // Packets, then Bytes at +8
	offPassed  = 16 // PassedPackets, then PassedBytes at +8
)

// Sink is an attached counting receiver.
type Sink struct {
	// Ifindex is the interface the program is attached to (in the namespace Attach ran in).
	Ifindex int
	// Filter is what it counts.
	Filter Filter

	mu     sync.Mutex
	counts *ebpf.Map
	prog   *ebpf.Program
	link   link.Link
	closed bool
}

// Attach loads the counting program for filter and attaches it to the interface ifindex in generic mode.
// It must run inside the interface's network namespace.
func Attach(ifindex int, filter Filter) (*Sink, error) {
	cfg := DefaultConfig()
	cfg.Filter = filter
	return AttachConfig(ifindex, cfg)
}

// AttachConfig is Attach with every setting.
func AttachConfig(ifindex int, cfg Config) (*Sink, error) {
	if err := cfg.Filter.Validate(); err != nil {
		return nil, err
	}
	if ifindex <= 0 {
		return nil, fmt.Errorf("attach sink: ifindex %d is not an interface", ifindex)
	}
	prog, counts, err := load(cfg.Filter)
	if err != nil {
		return nil, fmt.Errorf("attach sink to ifindex %d: %w", ifindex, err)
	}
	flags := link.XDPGenericMode
	if cfg.NativeMode {
		flags = link.XDPDriverMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
	if err != nil {
		prog.Close()
		counts.Close()
		return nil, fmt.Errorf("attach sink to ifindex %d: %w", ifindex, err)
	}
	return &Sink{Ifindex: ifindex, Filter: cfg.Filter, counts: counts, prog: prog, link: l}, nil
}

// load creates the counter map and loads the program for filter without attaching it (tests run it with
// BPF_PROG_TEST_RUN).
func load(f Filter) (*ebpf.Program, *ebpf.Map, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "sink_counts",
		Type:       ebpf.PerCPUArray,
		KeySize:    4,
		ValueSize:  uint32(binary.Size(counters{})),
		MaxEntries: 1,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create counter map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "sink_count",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: program(f, counts.FD()),
	})
	if err != nil {
		counts.Close()
		return nil, nil, fmt.Errorf("load XDP program: %w", err)
	}
	return prog, counts, nil
}

// le16 is the value a little-endian 16-bit load yields for the network-order bytes of v.
func le16(v uint16) int32 { return int32(v>>8 | v<<8&0xff00) }

// program builds the XDP program for f; mapFD is the per-CPU counters map. Registers: R6 ctx, R7 data,
// R8 data_end (later the frame length), R3 the IP protocol, R4/R5 scratch.
func program(f Filter, mapFD int) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, 14),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Half), // EtherType
		asm.JEq.Imm(asm.R2, le16(0x0800), "ipv4"),
		asm.JEq.Imm(asm.R2, le16(0x86dd), "ipv6"),
		asm.Ja.Label("pass"),

		// IPv4: protocol at 14+9; L4 at 14+IHL*4 unless a later fragment.
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R2, 34),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		asm.LoadMem(asm.R3, asm.R7, 23, asm.Byte),
	}
	insns = append(insns, protoCheck(f, "ipv4-l4")...)
	insns = append(insns, asm.Mov.Imm(asm.R4, 0).WithSymbol("ipv4-l4"))
	if f.DstPort != 0 {
		insns = append(insns,
			asm.LoadMem(asm.R4, asm.R7, 20, asm.Half), // flags and fragment offset
			asm.And.Imm(asm.R4, le16(0x1fff)),
			asm.JNE.Imm(asm.R4, 0, "pass"),
			asm.LoadMem(asm.R4, asm.R7, 14, asm.Byte), // version and IHL
			asm.And.Imm(asm.R4, 0x0f),
			asm.LSh.Imm(asm.R4, 2),
			asm.JLT.Imm(asm.R4, 20, "pass"),
			asm.Mov.Reg(asm.R5, asm.R7),
			asm.Add.Reg(asm.R5, asm.R4), // R5 + 14 is the L4 header
			asm.Mov.Reg(asm.R2, asm.R5),
			asm.Add.Imm(asm.R2, 14+4),
			asm.JGT.Reg(asm.R2, asm.R8, "pass"),
			asm.LoadMem(asm.R4, asm.R5, 14+2, asm.Half), // destination port
			asm.JNE.Imm(asm.R4, le16(f.DstPort), "pass"),
		)
	}
	insns = append(insns,
		asm.Ja.Label("match"),

		// IPv6: next header at 14+6; L4 at 14+40.
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R2, 54),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		asm.LoadMem(asm.R3, asm.R7, 20, asm.Byte),
	)
	insns = append(insns, protoCheck(f, "ipv6-l4")...)
	insns = append(insns, asm.Mov.Imm(asm.R4, 0).WithSymbol("ipv6-l4"))
	if f.DstPort != 0 {
		insns = append(insns,
			asm.Mov.Reg(asm.R2, asm.R7),
			asm.Add.Imm(asm.R2, 58),
			asm.JGT.Reg(asm.R2, asm.R8, "pass"),
			asm.LoadMem(asm.R4, asm.R7, 56, asm.Half),
			asm.JNE.Imm(asm.R4, le16(f.DstPort), "pass"),
		)
	}
	insns = append(insns, asm.Ja.Label("match"))
	insns = append(insns, count("match", offMatched, xdpDrop, mapFD)...)
	insns = append(insns, count("pass", offPassed, xdpPass, mapFD)...)
	return insns
}

// protoCheck jumps to "pass" unless R3 (the IP protocol) is what f asks for; otherwise it continues at the
// instruction labelled next, which the caller places right after it.
func protoCheck(f Filter, next string) asm.Instructions {
	switch {
	case f.Proto != 0:
		return asm.Instructions{
			asm.JNE.Imm(asm.R3, int32(f.Proto), "pass"),
			asm.Ja.Label(next),
		}
	case f.DstPort != 0:
		return asm.Instructions{
			asm.JEq.Imm(asm.R3, ProtoTCP, next),
			asm.JNE.Imm(asm.R3, ProtoUDP, "pass"),
			asm.Ja.Label(next),
		}
	}
	return asm.Instructions{asm.Ja.Label(next)}
}

// count adds the frame to the counters at off and returns verdict. The block starts at label.
func count(label string, off int16, verdict int32, mapFD int) asm.Instructions {
	done := label + "-done"
	return asm.Instructions{
		asm.Sub.Reg(asm.R8, asm.R7).WithSymbol(label), // frame length (pointer - pointer: privileged only)
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, mapFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, off, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, off, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, off+8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R8),
		asm.StoreMem(asm.R0, off+8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, verdict).WithSymbol(done),
		asm.Return(),
	}
}

// Stats returns the counters summed over all CPUs.
func (s *Sink) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Stats{}, errors.New("sink stats: sink is closed")
	}
	return readCounts(s.counts)
}

func readCounts(m *ebpf.Map) (Stats, error) {
	var perCPU []counters
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return Stats{}, fmt.Errorf("sink stats: read counters: %w", err)
	}
	var st Stats
	for _, c := range perCPU {
		st.Packets += c.Packets
		st.Bytes += c.Bytes
		st.PassedPackets += c.PassedPackets
		st.PassedBytes += c.PassedBytes
	}
	return st, nil
}

// Counts returns the frames and bytes counted and dropped so far (0, 0 once closed; Stats reports errors).
func (s *Sink) Counts() (pkts, bytes uint64) {
	st, err := s.Stats()
	if err != nil {
		return 0, 0
	}
	return st.Packets, st.Bytes
}

// Close detaches the program and frees the map. It is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.link.Close()
	s.prog.Close()
	s.counts.Close()
	if err != nil {
		return fmt.Errorf("detach sink from ifindex %d: %w", s.Ifindex, err)
	}
	return nil
}
