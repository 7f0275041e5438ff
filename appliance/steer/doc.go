// Package steer is the appliance's XDP steering program: it decides, per frame and in the
// kernel, which frames go to the queue's AF_XDP socket and which pass to the kernel's stack.
//
// The program is written in Go with cilium/ebpf's asm package (no C compiler) and loaded with
// cilium/ebpf. It parses Ethernet (one 802.1Q/802.1ad tag), IPv4 (IHL-aware; non-first
// fragments pass), the fixed IPv6 header and the TCP/UDP destination port, and redirects with
// bpf_redirect_map(xsks, rx_queue_index, XDP_PASS):
//
//   - TCP/UDP whose (dst, dst port, proto) is the appliance's: in the frontend map (IPv4 and
//     IPv6 maps), to any port of a held IPv4 VIP (the VIP is also the floating SNAT address
//     backends reply to), or to a port inside the destination's port range (SetPortRanges: a
//     node address and its SNAT ports, one map entry per address checked by comparison, so the
//     map size does not grow with the range);
//   - ICMP echo requests to a held VIP or to an address whose port-0 ICMP entry has FlagEcho;
//   - ICMP/ICMPv6 errors (unreachable incl. fragmentation needed, time exceeded, parameter
//     problem, packet too big) to an address whose port-0 ICMP entry has FlagICMPError, and only
//     when the quoted packet (one the destination sent) has a source tuple (src, src port,
//     proto) that is the appliance's by the rule above. Errors about the host's own
//     connections (path MTU discovery for SSH, gossip, the Kubernetes API) pass; so do errors
//     quoting anything but a TCP/UDP first fragment with the fixed IPv6 header;
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
// Invariants: SetFrontends, SetVIPs and SetPortRanges make the maps equal to the given set, or
// return an error and leave the previous set: a set over the map's capacity is refused before
// any write, and a write the kernel refuses midway is undone. New entries are written before
// gone ones are deleted (gone ones first only when both would not fit at once), so an entry
// that stays never disappears. The Go shadow copy of each map always equals the kernel map.
//
// The port ranges are the reason the host's ephemeral ports (net.ipv4.ip_local_port_range,
// which also covers IPv6) must not overlap the SNAT range: replies to the host's own
// connections on a node address would be steered away. CheckSNATRange is that check.
//
// # Concurrency
//
// A Program's methods may be called from any goroutine (a mutex serialises map
// rewrites and attach bookkeeping). Attach works in the calling thread's network namespace;
// Detach and Close re-enter the namespace recorded at Attach.
package steer
