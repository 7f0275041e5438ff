// Package sink is the counting receiver of the benchmarks: an XDP program, built in Go with cilium/ebpf's asm
// (no C compiler), that counts and drops the frames a benchmark sends, so that the receiving side is never the
// bottleneck of a measurement (ARCHITECTURE.md: count at the receiver with XDP, not with nftables counters).
//
// What the program does with each frame on the interface it is attached to:
//   - IPv4 or IPv6 frames that match the Filter (IP protocol, and for TCP/UDP the destination port) are
//     counted (packets and bytes, in a per-CPU array) and dropped (XDP_DROP);
//   - everything else (ARP, other protocols or ports, truncated frames, IPv4 fragments after the first when a
//     port is asked for) is counted as passed and goes on to the kernel (XDP_PASS), so the namespace keeps
//     answering ARP and ping and a generator can resolve its destination MAC.
//
// Filter.Match is the same decision written in Go; it is the reference the program is tested and fuzzed
// against (BPF_PROG_TEST_RUN), and it documents exactly what the program looks at.
//
// Invariants: the program is attached through a bpf_link (cilium/ebpf link.AttachXDP), in generic (SKB) mode by
// default, so it goes away with the process even when Close is never called; Close detaches it. IPv6 extension
// headers are not walked: an IPv6 frame matches a protocol or port only when its first next-header is TCP or
// UDP (benchmark traffic never carries extension headers).
//
// # Concurrency
//
// Attach must run inside the network namespace of the interface (a locked OS thread switched into
// it, e.g. lab.NS.Do); the ifindex is looked up there. Counts, Passed and Close may be called from any goroutine
// and any namespace afterwards; Close is idempotent.
package sink
