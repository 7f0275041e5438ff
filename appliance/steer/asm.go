package steer

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Reason is why the steering program redirected or passed a frame; each has a per-CPU counter.
type Reason uint32

// Reasons counted by the program, in counter-map order.
const (
	RedirectFrontend Reason = iota // TCP/UDP to a frontend
	RedirectARP                    // ARP request for a held VIP, or reply from one
	RedirectICMP                   // echo to a held VIP or echo-flagged address; ICMP error quoting a tuple of ours to an error-flagged address
	PassNoFrontend                 // TCP/UDP/ICMP not matching any entry
	PassARP                        // ARP not about a held VIP (the kernel answers for its own addresses)
	PassNotIP                      // neither IPv4, IPv6 nor ARP
	PassMalformed                  // truncated frame or bad IPv4 header
	PassFragment                   // IPv4 non-first fragment (no L4 header)
	PassOtherL4                    // IP protocol other than TCP/UDP/ICMP (IPv6: next header, extension headers included)
	PassICMPNotOurs                // ICMP error whose quoted packet is not from a frontend, held VIP or steered port range (the host's own)
	NumReasons
)

var reasonNames = [NumReasons]string{
	"redirect_frontend", "redirect_arp", "redirect_icmp",
	"pass_no_frontend", "pass_arp", "pass_not_ip", "pass_malformed", "pass_fragment", "pass_other_l4",
	"pass_icmp_not_ours",
}

// String is the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Redirects reports whether frames of this reason are sent to the queue's AF_XDP socket.
func (r Reason) Redirects() bool { return r <= RedirectICMP }

// XDP return codes and byte-swapped header constants (packet loads are little-endian on the
// hosts this runs on: x86-64 and arm64).
const (
	xdpPass = 2

	ethP8021Q  = 0x0081 // 0x8100
	ethP8021AD = 0xa888 // 0x88a8
	ethPIPv4   = 0x0008 // 0x0800
	ethPIPv6   = 0xdd86 // 0x86dd
	ethPARP    = 0x0608 // 0x0806

	ipv4FragMask = 0xff1f // 0x1fff: fragment offset
	arpHTypeEth  = 0x0100 // 1
	arpLens      = 0x0406 // hlen 6, plen 4
	arpOpRequest = 0x0100 // 1
	arpOpReply   = 0x0200 // 2

	icmpHdrLen = 8  // ICMP and ICMPv6 error header: type, code, checksum, 4 unused/MTU bytes
	ipv4MinLen = 20 // IPv4 header without options
	ipv6HdrLen = 40 // fixed IPv6 header

	ipv4OffProto = 9  // IPv4 header: protocol
	ipv4OffSrc   = 12 // IPv4 header: source address
	ipv4OffDst   = 16 // IPv4 header: destination address
	ipv6OffNext  = 6  // IPv6 header: next header
	ipv6OffSrc   = 8  // IPv6 header: source address
	ipv6OffDst   = 24 // IPv6 header: destination address
	l4OffSrcPort = 0  // TCP/UDP header: source port
	l4OffDstPort = 2  // TCP/UDP header: destination port
)

// Stack slots (offsets from the frame pointer R10).
const (
	stKey4    = -8  // key4: 8 bytes
	stKey6    = -32 // key6: 20 bytes, up to -13
	stCounter = -40 // u32 counter index
	stPort    = -48 // u16 port of the tuple being checked, host order (for the range check)
)

// programMaps are the BPF maps the steering program reads.
type programMaps struct {
	xsks, front4, front6, vips, ranges4, ranges6, counters *ebpf.Map
}

// instructions builds the steering program for the given maps.
func instructions(m programMaps) asm.Instructions {
	const (
		ctx, data, end, queue = asm.R6, asm.R7, asm.R8, asm.R9
	)
	mapPtr := func(dst asm.Register, m *ebpf.Map) asm.Instruction {
		return asm.LoadMapPtr(dst, m.FD())
	}
	// lookup calls map_lookup_elem(m, fp+off); the result is in R0.
	lookup := func(m *ebpf.Map, off int32) asm.Instructions {
		return asm.Instructions{
			mapPtr(asm.R1, m),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, off),
			asm.FnMapLookupElem.Call(),
		}
	}
	// need jumps to label "malformed" unless ptr+n <= data_end.
	need := func(ptr asm.Register, n int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R2, ptr),
			asm.Add.Imm(asm.R2, n),
			asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		}
	}
	// flagged: entry in R0 must exist and have flag set, else pass; falls through when it does.
	flagged := func(flag Flags) asm.Instructions {
		return asm.Instructions{
			asm.JEq.Imm(asm.R0, 0, PassNoFrontend.String()),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.And.Imm(asm.R1, int32(flag)),
			asm.JEq.Imm(asm.R1, 0, PassNoFrontend.String()),
		}
	}
	// inRange: the port-range entry for the address at fp+key (the address is the key's first
	// bytes) must exist and hold the host-order port at fp+stPort, else jump to no. The value is
	// a u32 in host order: low half the first port, high half the last.
	inRange := func(ranges *ebpf.Map, key int32, yes, no string) asm.Instructions {
		return append(lookup(ranges, key),
			asm.JEq.Imm(asm.R0, 0, no),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.R1),
			asm.And.Imm(asm.R1, 0xffff), // first port
			asm.RSh.Imm(asm.R2, 16),     // last port
			asm.LoadMem(asm.R3, asm.RFP, stPort, asm.Half),
			asm.JLT.Reg(asm.R3, asm.R1, no),
			asm.JGT.Reg(asm.R3, asm.R2, no),
			asm.Ja.Label(yes),
		)
	}
	// ours4: the IPv4 tuple at fp+stKey4 (address, port, proto) and fp+stPort is the
	// appliance's when it is a frontend, its address a held VIP (any port: the VIP is also the
	// floating SNAT address backends reply to), or its port in the address's steered range.
	ours4 := func(yes, no string) asm.Instructions {
		var ins asm.Instructions
		ins = append(ins, lookup(m.front4, stKey4)...)
		ins = append(ins, asm.JNE.Imm(asm.R0, 0, yes))
		ins = append(ins, lookup(m.vips, stKey4)...)
		ins = append(ins, asm.JNE.Imm(asm.R0, 0, yes))
		return append(ins, inRange(m.ranges4, stKey4, yes, no)...)
	}
	// ours6: the same for the IPv6 tuple at fp+stKey6 (IPv6 has no VIPs).
	ours6 := func(yes, no string) asm.Instructions {
		var ins asm.Instructions
		ins = append(ins, lookup(m.front6, stKey6)...)
		ins = append(ins, asm.JNE.Imm(asm.R0, 0, yes))
		return append(ins, inRange(m.ranges6, stKey6, yes, no)...)
	}
	// portTo stores the TCP/UDP port at data+off into the key at fp+keyPort (network order) and
	// into fp+stPort (host order).
	portTo := func(off int16, keyPort int16) asm.Instructions {
		return asm.Instructions{
			asm.LoadMem(asm.R5, data, off, asm.Half),
			asm.StoreMem(asm.RFP, keyPort, asm.R5, asm.Half),
			asm.HostTo(asm.BE, asm.R5, asm.Half), // network to host order on little-endian hosts
			asm.StoreMem(asm.RFP, stPort, asm.R5, asm.Half),
		}
	}

	var p asm.Instructions
	add := func(ins ...asm.Instruction) { p = append(p, ins...) }
	addAll := func(sets ...asm.Instructions) {
		for _, s := range sets {
			p = append(p, s...)
		}
	}
	label := func(name string, ins asm.Instruction) { p = append(p, ins.WithSymbol(name)) }

	// Ethernet, one optional VLAN tag.
	add(
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(queue, ctx, 16, asm.Word), // rx_queue_index
		asm.LoadMem(data, ctx, 0, asm.Word),
		asm.LoadMem(end, ctx, 4, asm.Word),
	)
	addAll(need(data, 14))
	add(
		asm.LoadMem(asm.R3, data, 12, asm.Half),
		asm.JEq.Imm(asm.R3, ethP8021Q, "vlan"),
		asm.JEq.Imm(asm.R3, ethP8021AD, "vlan"),
		asm.Add.Imm(data, 14),
		asm.Ja.Label("l3"),
	)
	label("vlan", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, 18),
		asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		asm.LoadMem(asm.R3, data, 16, asm.Half),
		asm.Add.Imm(data, 18),
	)
	label("l3", asm.JEq.Imm(asm.R3, ethPIPv4, "ipv4"))
	add(
		asm.JEq.Imm(asm.R3, ethPIPv6, "ipv6"),
		asm.JEq.Imm(asm.R3, ethPARP, "arp"),
		asm.Ja.Label(PassNotIP.String()),
	)

	// IPv4: version 4, IHL >= 5, first fragments only; key = (dst, 0, 0) for now, R3 = header
	// length, R4 = protocol, data moves to the L4 header.
	label("ipv4", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, ipv4MinLen),
		asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		asm.LoadMem(asm.R3, data, 0, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, PassMalformed.String()),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, PassMalformed.String()),
		asm.LSh.Imm(asm.R3, 2),
		asm.LoadMem(asm.R4, data, 6, asm.Half),
		asm.And.Imm(asm.R4, ipv4FragMask),
		asm.JNE.Imm(asm.R4, 0, PassFragment.String()),
		asm.LoadMem(asm.R5, data, ipv4OffDst, asm.Word),
		asm.StoreMem(asm.RFP, stKey4, asm.R5, asm.Word),
		asm.StoreImm(asm.RFP, stKey4+4, 0, asm.Word),
		asm.LoadMem(asm.R4, data, ipv4OffProto, asm.Byte),
		asm.Add.Reg(data, asm.R3),
	)
	addAll(need(data, 4))
	add(
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v4ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v4ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoICMP), "v4icmp"),
		asm.Ja.Label(PassOtherL4.String()),
	)

	// IPv4 TCP/UDP: the (dst, dst port, proto) tuple.
	label("v4ports", asm.StoreMem(asm.RFP, stKey4+6, asm.R4, asm.Byte))
	addAll(portTo(l4OffDstPort, stKey4+4), ours4(RedirectFrontend.String(), PassNoFrontend.String()))

	// ICMP: echo requests to a held VIP or an echo-flagged address; errors go on below.
	label("v4icmp", asm.LoadMem(asm.R5, data, 0, asm.Byte))
	add(
		asm.StoreImm(asm.RFP, stKey4+6, int64(ProtoICMP), asm.Byte),
		asm.JEq.Imm(asm.R5, 8, "v4echo"),
		asm.JEq.Imm(asm.R5, 3, "v4err"),  // destination unreachable, fragmentation needed included
		asm.JEq.Imm(asm.R5, 11, "v4err"), // time exceeded
		asm.JEq.Imm(asm.R5, 12, "v4err"), // parameter problem
		asm.Ja.Label(PassNoFrontend.String()),
	)
	label("v4echo", mapPtr(asm.R1, m.vips))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, RedirectICMP.String()),
	)
	addAll(lookup(m.front4, stKey4), flagged(FlagEcho))
	add(asm.Ja.Label(RedirectICMP.String()))

	// ICMP error to an error-flagged address: the quoted packet is one the destination sent, so
	// its source tuple says whose it is. Only a quoted TCP/UDP first fragment whose (src, src
	// port, proto) is ours goes to the socket; the host's own (SSH, gossip, the Kubernetes API:
	// path MTU discovery) pass.
	label("v4err", mapPtr(asm.R1, m.front4))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey4),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagICMPError))
	addAll(need(data, icmpHdrLen+ipv4MinLen))
	add(
		asm.LoadMem(asm.R3, data, icmpHdrLen, asm.Byte), // quoted version and IHL
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, PassMalformed.String()),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, PassMalformed.String()),
		asm.LSh.Imm(asm.R3, 2),
		asm.LoadMem(asm.R4, data, icmpHdrLen+6, asm.Half), // quoted fragment offset
		asm.And.Imm(asm.R4, ipv4FragMask),
		asm.JNE.Imm(asm.R4, 0, PassICMPNotOurs.String()),
		asm.LoadMem(asm.R4, data, icmpHdrLen+ipv4OffProto, asm.Byte),
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v4quoted"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v4quoted"),
		asm.Ja.Label(PassICMPNotOurs.String()),
	)
	label("v4quoted", asm.LoadMem(asm.R5, data, icmpHdrLen+ipv4OffSrc, asm.Word))
	add(
		asm.StoreMem(asm.RFP, stKey4, asm.R5, asm.Word),
		asm.StoreMem(asm.RFP, stKey4+6, asm.R4, asm.Byte),
		asm.Add.Imm(data, icmpHdrLen),
		asm.Add.Reg(data, asm.R3), // quoted L4 header
	)
	addAll(need(data, 4), portTo(l4OffSrcPort, stKey4+4), ours4(RedirectICMP.String(), PassICMPNotOurs.String()))

	// IPv6: fixed header only; extension headers pass. Key = (dst, 0, 0) for now, R4 = next
	// header, data moves to the L4 header.
	label("ipv6", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, ipv6HdrLen),
		asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		asm.LoadMem(asm.R4, data, ipv6OffNext, asm.Byte),
	)
	for i := int16(0); i < 4; i++ {
		add(
			asm.LoadMem(asm.R5, data, ipv6OffDst+4*i, asm.Word),
			asm.StoreMem(asm.RFP, stKey6+4*i, asm.R5, asm.Word),
		)
	}
	add(
		asm.StoreImm(asm.RFP, stKey6+16, 0, asm.Word),
		asm.Add.Imm(data, ipv6HdrLen),
	)
	addAll(need(data, 4))
	add(
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v6ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v6ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoICMPv6), "v6icmp"),
		asm.Ja.Label(PassOtherL4.String()),
	)

	// IPv6 TCP/UDP: the (dst, dst port, next header) tuple.
	label("v6ports", asm.StoreMem(asm.RFP, stKey6+18, asm.R4, asm.Byte))
	addAll(portTo(l4OffDstPort, stKey6+16), ours6(RedirectFrontend.String(), PassNoFrontend.String()))

	// ICMPv6: echo requests to an echo-flagged address; errors go on below.
	label("v6icmp", asm.LoadMem(asm.R5, data, 0, asm.Byte))
	add(
		asm.StoreImm(asm.RFP, stKey6+18, int64(ProtoICMPv6), asm.Byte),
		asm.JEq.Imm(asm.R5, 128, "v6echo"),
		asm.JEq.Imm(asm.R5, 1, "v6err"), // destination unreachable
		asm.JEq.Imm(asm.R5, 2, "v6err"), // packet too big
		asm.JEq.Imm(asm.R5, 3, "v6err"), // time exceeded
		asm.JEq.Imm(asm.R5, 4, "v6err"), // parameter problem
		asm.Ja.Label(PassNoFrontend.String()),
	)
	label("v6echo", mapPtr(asm.R1, m.front6))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey6),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagEcho))
	add(asm.Ja.Label(RedirectICMP.String()))

	// ICMPv6 error to an error-flagged address: as for IPv4, only a quoted TCP/UDP packet
	// (fixed header, no extension headers) whose source tuple is ours goes to the socket.
	label("v6err", mapPtr(asm.R1, m.front6))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey6),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagICMPError))
	addAll(need(data, icmpHdrLen+ipv6HdrLen))
	add(
		asm.LoadMem(asm.R4, data, icmpHdrLen+ipv6OffNext, asm.Byte),
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v6quoted"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v6quoted"),
		asm.Ja.Label(PassICMPNotOurs.String()),
	)
	label("v6quoted", asm.StoreMem(asm.RFP, stKey6+18, asm.R4, asm.Byte))
	for i := int16(0); i < 4; i++ {
		add(
			asm.LoadMem(asm.R5, data, icmpHdrLen+ipv6OffSrc+4*i, asm.Word),
			asm.StoreMem(asm.RFP, stKey6+4*i, asm.R5, asm.Word),
		)
	}
	add(asm.Add.Imm(data, icmpHdrLen+ipv6HdrLen)) // quoted L4 header
	addAll(need(data, 4), portTo(l4OffSrcPort, stKey6+16), ours6(RedirectICMP.String(), PassICMPNotOurs.String()))

	// ARP for Ethernet/IPv4: a request whose target is a held VIP, or a reply whose sender is one
	// (another node answering for our VIP: the conflict the data plane must see).
	label("arp", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, 28),
		asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		asm.LoadMem(asm.R3, data, 0, asm.Half),
		asm.JNE.Imm(asm.R3, arpHTypeEth, PassARP.String()),
		asm.LoadMem(asm.R3, data, 2, asm.Half),
		asm.JNE.Imm(asm.R3, ethPIPv4, PassARP.String()),
		asm.LoadMem(asm.R3, data, 4, asm.Half),
		asm.JNE.Imm(asm.R3, arpLens, PassARP.String()),
		asm.LoadMem(asm.R3, data, 6, asm.Half),
		asm.LoadMem(asm.R5, data, 24, asm.Word), // target IP
		asm.JEq.Imm(asm.R3, arpOpRequest, "arpkey"),
		asm.LoadMem(asm.R5, data, 14, asm.Word), // sender IP
		asm.JEq.Imm(asm.R3, arpOpReply, "arpkey"),
		asm.Ja.Label(PassARP.String()),
	)
	label("arpkey", asm.StoreMem(asm.RFP, stKey4, asm.R5, asm.Word))
	addAll(lookup(m.vips, stKey4))
	add(
		asm.JNE.Imm(asm.R0, 0, RedirectARP.String()),
		asm.Ja.Label(PassARP.String()),
	)

	// Exits: count the reason, then redirect or pass.
	for r := Reason(0); r < NumReasons; r++ {
		label(r.String(), asm.StoreImm(asm.RFP, stCounter, int64(r), asm.Word))
		addAll(lookup(m.counters, stCounter))
		skip := "counted_" + r.String()
		add(
			asm.JEq.Imm(asm.R0, 0, skip),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		)
		if r.Redirects() {
			label(skip, mapPtr(asm.R1, m.xsks))
			add(
				asm.Mov.Reg(asm.R2, queue),
				asm.Mov.Imm(asm.R3, xdpPass),
				asm.FnRedirectMap.Call(),
				asm.Return(),
			)
		} else {
			label(skip, asm.Mov.Imm(asm.R0, xdpPass))
			add(asm.Return())
		}
	}
	return p
}
