// Package pktgen is the benchmarks' AF_XDP traffic generator: it sends UDP datagrams or TCP SYN or ACK
// segments from one interface of a lab namespace, as fast as the kernel takes them or at a target rate,
// bounded by a packet count and a duration.
//
// How it sends: every flow's frame is built once with gopacket (lengths and checksums filled in) into a UMEM
// image before the first packet; the send loop then only recycles descriptors. The UMEM holds
// Flows × ceil(TxRingSize/Flows) frame slots (slot i carries flow i mod Flows, several slots packed into each
// 2048-byte chunk), the loop hands out slots round robin in batches onto the TX ring, kicks the kernel with
// sendto until the ring drains (copy mode sends at most 32 frames per sendto and asavie/xdp's Transmit ignores
// EAGAIN), and reaps the completion ring itself (asavie's Poll only completes what it polls). At most the
// completion ring's size of descriptors is outstanding, so a slot is only handed out again after the kernel
// completed it; the frames are never written after the build, so the per-packet path copies and allocates
// nothing. Time is read once per batch; the rate limiter is a token bucket on batches.
//
// Flows: flow i varies the source port fastest, then the source address, the destination port and the
// destination address, so N flows are N distinct 5-tuples (Config.Validate refuses more flows than the ranges
// hold). Every address must lie in 198.18.0.0/15, the range reserved for benchmarks (ARCHITECTURE.md, "The lab").
//
// Counting: Result.Sent is what the kernel completed, Result.Failed what the device dropped on transmit (its
// tx_dropped counter over the run: a veth drops when its peer's backlog is full), Result.OfferedPPS is
// (Sent-Failed)/Elapsed. What actually arrived is measured at the receiver (package bench/sink).
//
// asavie/xdp v0.3.3 never unmaps a socket's ring mappings, which keeps the socket bound to its queue until the
// process exits (the next bind there fails with EBUSY); Run unmaps them before closing the socket
// (release.go), so runs can follow each other on the same queue in one process.
//
// AF_XDP transmit needs no XDP program on the interface (asavie/xdp's NewSocket binds without one); only
// receiving does, and pktgen never receives.
//
// # Concurrency
//
// Run must be called on a goroutine whose OS thread is locked into the sending interface's
// network namespace (lab.NS.Do); it resolves the interface, its addresses and the destination MAC there
// through netlink, and starts no goroutines. BuildFrames and the Config methods are pure and may be called
// from anywhere.
package pktgen
