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
	RedirectICMP                   // echo to a held VIP or echo-flagged address; ICMP error to an error-flagged address
	PassNoFrontend                 // TCP/UDP/ICMP not matching any entry
	PassARP                        // ARP not about a held VIP (the kernel answers for its own addresses)
	PassNotIP                      // neither IPv4, IPv6 nor ARP
	PassMalformed                  // truncated frame or bad IPv4 header
	PassFragment                   // IPv4 non-first fragment (no L4 header)
	PassOtherL4                    // IP protocol other than TCP/UDP/ICMP (IPv6: next header, extension headers included)
	NumReasons
)

var reasonNames = [NumReasons]string{
	"redirect_frontend", "redirect_arp", "redirect_icmp",
	"pass_no_frontend", "pass_arp", "pass_not_ip", "pass_malformed", "pass_fragment", "pass_other_l4",
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
)

// Stack slots (offsets from the frame pointer R10).
const (
	stKey4    = -8  // key4: 8 bytes
	stKey6    = -32 // key6: 20 bytes, up to -13
	stCounter = -40 // u32 counter index
)

// instructions builds the steering program for the given maps.
func instructions(xsks, front4, front6, vips, counters *ebpf.Map) asm.Instructions {
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
	// flagged: entry in R0 (non-nil) must have flag set, else pass.
	flagged := func(flag Flags, yes string) asm.Instructions {
		return asm.Instructions{
			asm.JEq.Imm(asm.R0, 0, PassNoFrontend.String()),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.And.Imm(asm.R1, int32(flag)),
			asm.JNE.Imm(asm.R1, 0, yes),
			asm.Ja.Label(PassNoFrontend.String()),
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

	// IPv4.
	label("ipv4", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, 20),
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
		asm.LoadMem(asm.R5, data, 16, asm.Word),
		asm.StoreMem(asm.RFP, stKey4, asm.R5, asm.Word),
		asm.StoreImm(asm.RFP, stKey4+4, 0, asm.Word),
		asm.LoadMem(asm.R4, data, 9, asm.Byte),
		asm.Add.Reg(data, asm.R3),
	)
	addAll(need(data, 4))
	add(
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v4ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v4ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoICMP), "v4icmp"),
		asm.Ja.Label(PassOtherL4.String()),
	)
	label("v4ports", asm.LoadMem(asm.R5, data, 2, asm.Half))
	add(
		asm.StoreMem(asm.RFP, stKey4+4, asm.R5, asm.Half),
		asm.StoreMem(asm.RFP, stKey4+6, asm.R4, asm.Byte),
	)
	addAll(lookup(front4, stKey4))
	add(asm.JNE.Imm(asm.R0, 0, RedirectFrontend.String()))
	// Any TCP/UDP port of a held VIP: the VIP is also the floating SNAT address backends reply
	// to, so its SNAT reply ports belong to the appliance (the key's first 4 bytes are the
	// destination address, the VIP map's key).
	addAll(lookup(vips, stKey4))
	add(
		asm.JEq.Imm(asm.R0, 0, PassNoFrontend.String()),
		asm.Ja.Label(RedirectFrontend.String()),
	)
	label("v4icmp", asm.LoadMem(asm.R5, data, 0, asm.Byte))
	add(
		asm.StoreImm(asm.RFP, stKey4+6, int64(ProtoICMP), asm.Byte),
		asm.JEq.Imm(asm.R5, 8, "v4echo"),
		asm.JEq.Imm(asm.R5, 3, "v4err"),
		asm.JEq.Imm(asm.R5, 11, "v4err"),
		asm.Ja.Label(PassNoFrontend.String()),
	)
	label("v4echo", mapPtr(asm.R1, vips))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, RedirectICMP.String()),
	)
	addAll(lookup(front4, stKey4), flagged(FlagEcho, RedirectICMP.String()))
	label("v4err", mapPtr(asm.R1, front4))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey4),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagICMPError, RedirectICMP.String()))

	// IPv6: fixed header only; extension headers pass.
	label("ipv6", asm.Mov.Reg(asm.R2, data))
	add(
		asm.Add.Imm(asm.R2, 40),
		asm.JGT.Reg(asm.R2, end, PassMalformed.String()),
		asm.LoadMem(asm.R4, data, 6, asm.Byte),
	)
	for i := int16(0); i < 4; i++ {
		add(
			asm.LoadMem(asm.R5, data, 24+4*i, asm.Word),
			asm.StoreMem(asm.RFP, stKey6+4*i, asm.R5, asm.Word),
		)
	}
	add(
		asm.StoreImm(asm.RFP, stKey6+16, 0, asm.Word),
		asm.Add.Imm(data, 40),
	)
	addAll(need(data, 4))
	add(
		asm.JEq.Imm(asm.R4, int32(ProtoTCP), "v6ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoUDP), "v6ports"),
		asm.JEq.Imm(asm.R4, int32(ProtoICMPv6), "v6icmp"),
		asm.Ja.Label(PassOtherL4.String()),
	)
	label("v6ports", asm.LoadMem(asm.R5, data, 2, asm.Half))
	add(
		asm.StoreMem(asm.RFP, stKey6+16, asm.R5, asm.Half),
		asm.StoreMem(asm.RFP, stKey6+18, asm.R4, asm.Byte),
	)
	addAll(lookup(front6, stKey6))
	add(
		asm.JEq.Imm(asm.R0, 0, PassNoFrontend.String()),
		asm.Ja.Label(RedirectFrontend.String()),
	)
	label("v6icmp", asm.LoadMem(asm.R5, data, 0, asm.Byte))
	add(
		asm.StoreImm(asm.RFP, stKey6+18, int64(ProtoICMPv6), asm.Byte),
		asm.JEq.Imm(asm.R5, 128, "v6echo"),
		asm.JEq.Imm(asm.R5, 1, "v6err"),
		asm.JEq.Imm(asm.R5, 2, "v6err"),
		asm.JEq.Imm(asm.R5, 3, "v6err"),
		asm.Ja.Label(PassNoFrontend.String()),
	)
	label("v6echo", mapPtr(asm.R1, front6))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey6),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagEcho, RedirectICMP.String()))
	label("v6err", mapPtr(asm.R1, front6))
	add(
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stKey6),
		asm.FnMapLookupElem.Call(),
	)
	addAll(flagged(FlagICMPError, RedirectICMP.String()))

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
	addAll(lookup(vips, stKey4))
	add(
		asm.JNE.Imm(asm.R0, 0, RedirectARP.String()),
		asm.Ja.Label(PassARP.String()),
	)

	// Exits: count the reason, then redirect or pass.
	for r := Reason(0); r < NumReasons; r++ {
		label(r.String(), asm.StoreImm(asm.RFP, stCounter, int64(r), asm.Word))
		addAll(lookup(counters, stCounter))
		skip := "counted_" + r.String()
		add(
			asm.JEq.Imm(asm.R0, 0, skip),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		)
		if r.Redirects() {
			label(skip, mapPtr(asm.R1, xsks))
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
