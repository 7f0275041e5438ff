package compare

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// The in-kernel XDP redirect system: an XDP program on ext0 that rewrites the two MACs of every
// IPv4 frame and redirects it to int0 with bpf_redirect, never leaving the driver's receive path.
// It is the rate the kernel's own fast path reaches on this link (no AF_XDP copy, no skb on the
// transmit side); like the ceiling it does no NAT, so it stands for the I/O cost alone.

// xdpMACEntry is one value of the program's MAC table: destination MAC, 2 bytes padding, source
// MAC, 2 bytes padding.
const xdpMACEntry = 16

// xdpRedirectInstructions builds the program: frames shorter than 36 bytes or not IPv4 pass to the
// kernel; others get dst MAC macs[srcport low byte % n] and src MAC, then bpf_redirect(out).
func xdpRedirectInstructions(macs *ebpf.Map, n int, outIfindex int) asm.Instructions {
	const data, end = asm.R7, asm.R8
	return asm.Instructions{
		asm.LoadMem(data, asm.R1, 0, asm.Word),
		asm.LoadMem(end, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R2, data),
		asm.Add.Imm(asm.R2, 36),
		asm.JGT.Reg(asm.R2, end, "pass"),
		asm.LoadMem(asm.R3, data, 12, asm.Half),
		asm.JNE.Imm(asm.R3, 0x0008, "pass"),     // EtherType IPv4 (0x0800, little-endian load)
		asm.LoadMem(asm.R3, data, 35, asm.Byte), // low byte of the L4 source port (IHL 5)
		asm.Mod.Imm(asm.R3, int32(n)),
		asm.StoreMem(asm.RFP, -4, asm.R3, asm.Word),
		asm.LoadMapPtr(asm.R1, macs.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(data, 0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Half),
		asm.StoreMem(data, 4, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.Word),
		asm.StoreMem(data, 6, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 12, asm.Half),
		asm.StoreMem(data, 10, asm.R1, asm.Half),
		asm.Mov.Imm(asm.R1, int32(outIfindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS
		asm.Return(),
	}
}

// RunXDPRedirect loads and attaches the redirect program on cfg.In (native mode unless
// cfg.Native is false) toward cfg.Out, calls ready, and keeps it attached until ctx ends; the
// bpf_link goes with the process too.
func RunXDPRedirect(ctx context.Context, cfg ForwarderConfig, ready func()) error {
	if len(cfg.DstMACs) == 0 || len(cfg.DstMACs) > 256 {
		return fmt.Errorf("xdp redirect: %d destination MACs, want 1-256", len(cfg.DstMACs))
	}
	in, err := netlink.LinkByName(cfg.In)
	if err != nil {
		return fmt.Errorf("find %s: %w", cfg.In, err)
	}
	out, err := netlink.LinkByName(cfg.Out)
	if err != nil {
		return fmt.Errorf("find %s: %w", cfg.Out, err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "fwd_macs", Type: ebpf.Array, KeySize: 4, ValueSize: xdpMACEntry,
		MaxEntries: uint32(len(cfg.DstMACs))})
	if err != nil {
		return fmt.Errorf("xdp redirect: MAC table: %w", err)
	}
	defer m.Close()
	src := out.Attrs().HardwareAddr
	for i, mac := range cfg.DstMACs {
		var v [xdpMACEntry]byte
		copy(v[0:6], mac)
		copy(v[8:14], src)
		if err := m.Put(uint32(i), v); err != nil {
			return fmt.Errorf("xdp redirect: MAC table: %w", err)
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "fwd_redirect", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: xdpRedirectInstructions(m, len(cfg.DstMACs), out.Attrs().Index)})
	if err != nil {
		return fmt.Errorf("xdp redirect: load program: %w", err)
	}
	defer prog.Close()
	flags := link.XDPGenericMode
	if cfg.Native {
		flags = link.XDPDriverMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: in.Attrs().Index, Flags: flags})
	if err != nil {
		return fmt.Errorf("xdp redirect: attach to %s: %w", cfg.In, err)
	}
	defer l.Close()
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil
	}
	return ctx.Err()
}
