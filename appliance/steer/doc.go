// Package steer is the appliance's XDP steering program: it decides, per frame and in the
// kernel, which frames go to the queue's AF_XDP socket and which pass to the kernel's stack.
//
// The program is written in Go with cilium/ebpf's asm package (no C compiler) and loaded with
// cilium/ebpf. It parses Ethernet (one 802.1Q/802.1ad tag), IPv4 (IHL-aware; non-first
// fragments pass), the fixed IPv6 header and the TCP/UDP destination port, and redirects with
// bpf_redirect_map(xsks, rx_queue_index, XDP_PASS):
//
//   - TCP/UDP whose (dst, dst port, proto) is in the frontend map (IPv4 and IPv6 maps), and
//     TCP/UDP to any port of a held IPv4 VIP (the VIP is also the floating SNAT address
//     backends reply to);
//   - ICMP echo requests to a held VIP, and ICMP/ICMPv6 to an address with a port-0 ICMP entry
//     whose Flags allow the message (FlagEcho: echo requests; FlagICMPError: unreachable,
//     time exceeded, packet too big);
//   - ARP requests whose target is a held VIP, and ARP replies whose sender is one (another
//     node answering for "our" VIP).
//
// Everything else passes, so SSH, gossip, the admin API and the kernel's own ARP keep working
// on the same NIC. With no socket in the queue's XSKMAP slot a redirect also passes. Classify
// is the same decision in Go; tests and a fuzz target run frames through both (BPF_PROG_TEST_RUN)
// and require the same per-reason counter to move.
//
// Attachment is through netlink (IFLA_XDP), not a bpf_link: a bpf_link cannot replace a
// program attached by netlink (asavie's, or a crashed run's), while a netlink attach in the same
// mode replaces whatever is there atomically, and one in another mode is removed first. A
// program left behind by a crash is harmless: its sockets closed with the process, so their
// XSKMAP slots are empty and every frame passes; the next Attach replaces it. Detach and Close
// remove the program with the flags of the mode it was attached in (never asavie's Detach,
// which loops in generic mode), and only if the program on the link is still this one.
//
// Invariants: SetFrontends and SetVIPs make the maps equal to the given set, writing new
// entries before deleting gone ones, so an entry that stays never disappears. The Go shadow
// copy of each map always equals the kernel map.
//
// Goroutines: a Program's methods may be called from any goroutine (a mutex serialises map
// rewrites and attach bookkeeping). Attach works in the calling thread's network namespace;
// Detach and Close re-enter the namespace recorded at Attach.
package steer
