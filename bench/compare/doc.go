// Package compare is `bench compare`: it runs the appliance, the kernel path kube-proxy's nftables mode uses,
// a MAC-swap AF_XDP ceiling and an in-kernel XDP redirect in turn over the same namespace lab and the same
// traffic, several rounds alternating (A B C D A B C D ... for each scenario of a round), and reports medians
// and the ratio of each system to the appliance, paired within each round and scenario (runs seconds apart)
// so that noise common to both cancels (issue 6).
//
// The lab: one appliance node (ext0 198.18.0.11, int0 198.18.1.11), one client c1, nine backends (LoadBalancer
// flows SNAT to the VIP with the ports from the data plane's floatingSNATPortMin up, per backend and
// protocol: more backends, more room for the SYN scenarios' flows). One
// LoadBalancer Service (VIP 198.19.1.1: UDP 9000, TCP 9001, TCP echo 7000; service port = target port) is
// written as v1 Service + EndpointSlice manifests; the appliance reads them, and NFTRuleset turns the very same
// manifests (decoded with the upstream Kubernetes types by ParseManifests) into a ruleset of kube-proxy's
// nftables shape. The client reaches the VIP through a static neighbour entry (ext0's MAC), so every system
// gets identical frames. Traffic comes from bench/pktgen on c1 and is counted and dropped by bench/sink XDP
// programs on the backends' interfaces; the latency scenario uses real TCP sockets to the backends' echo.
//
// Systems: the appliance program (started with taskset on the system-under-test core); nftables (nft -f in
// the node namespace, ip_forward=1 there, removed afterwards with nft delete table, ip_forward restored and the
// node's conntrack table flushed, also on failure); the ceiling, ForwarderMain run as a subprocess in the node
// namespace (asavie/xdp's redirect-all program on ext0 attached through a bpf_link, so it goes with the process,
// copy into int0's UMEM, MAC rewrite, transmit).
//
// Pinning and CPU (ARCHITECTURE.md, "Measuring on this machine"): GRO and threaded NAPI on the node's interfaces;
// the NAPI kthreads that appeared with this lab are pinned to Config.ApplianceCPU before each system's
// scenarios; the generator's thread is pinned to Config.GeneratorCPU. CPU per packet is the busy time of the
// system-under-test core (/proc/stat) over the generator's run divided by the packets the sinks counted; the
// process's and NAPI threads' own utime+stime are kept as well.
//
// Invariants: every address is in 198.18.0.0/15; every measurement is bounded by Config.MaxPackets and
// Config.Duration (SYN floods by their flow count: one SYN per 5-tuple); the lab and everything in it are
// removed when Compare returns, whatever happened.
//
// # Concurrency
//
// Compare runs one comparison at a time on the calling goroutine (it locks OS threads into
// namespaces through lab.NS.Do); ParseManifests, NFTRuleset, Summarize, Targets, WriteMarkdown and WriteOutputs
// are pure or touch only their output and may be called from anywhere. ForwarderMain is a program's main.
package compare
