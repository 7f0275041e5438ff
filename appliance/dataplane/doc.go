// Package dataplane is the appliance's per-packet pipeline: it takes frames from AF_XDP queues
// (through the FrameIO interface, so tests run it on in-memory frames), parses them with
// packet, looks them up in conntrack, picks a backend for a new flow with Maglev over the
// current Plan, rewrites addresses, ports, TTL, checksums and MACs in place, and hands them to
// the egress port's transmit batch.
//
// # Concurrency
//
// One Worker per queue index owns that queue's FrameIO on every port (interface): only it
// receives, transmits and releases frames there, so no ring is shared. Workers share the
// conntrack.Table (lock-free on hits; see conntrack's doc.go: a flow's reply may arrive on
// another queue than its original direction) and read the current *Plan through an
// atomic.Pointer once per batch. The control goroutine (DataPlane.Apply) compiles a new Plan
// from a service.Snapshot and swaps it in; it never touches a frame.
//
// # Invariants of the hot path
//
// Per frame: no allocation, no lock, no interface call, no defer, no time.Now, no log line.
// Time is read once per batch by the caller of Worker.Poll. Counters are per worker, written
// only by it with atomic stores (readers load them atomically), and summed on scrape. Map
// lookups happen only for a flow's first packet (frontend index) and on a neighbour-cache miss;
// a conntrack hit touches the flow entry, the plan's endpoint-liveness bitset and the worker's
// direct-mapped neighbour cache only.
//
// # Stages
//
// Worker.Poll reads the plan, the neighbour generation and takes the caller's time once, into a
// batchContext, parses the batch and looks up its TCP/UDP keys in one conntrack.LookupBatch.
// Each frame then goes through the stages (pipeline, then arp, icmp, icmpError, newFlow,
// forward, emit, reject), each taking the batchContext, the frame and its parsed
// packet.Headers as arguments and returning a verdict: drop (the stage counted the reason) or
// transmit on an egress port with the frame's new length.
//
// # Translation (externalTrafficPolicy: Cluster)
//
// client → frontend becomes SNAT(egress port address):port → backend:targetPort; the reply
// backend → SNAT:port becomes frontend → client. With externalTrafficPolicy: Local the client's
// address is kept and the backend must route its reply through this node. ClusterIP frontends
// answer only sources inside network.clusterCIDRs; LoadBalancer VIPs enforce
// loadBalancerSourceRanges; a Service port without usable endpoints answers TCP with a RST and
// UDP with ICMP port unreachable. Only IPv4 is forwarded today: IPv6 frames are parsed and dropped
// with a counted reason (the Service model is single-stack IPv4).
//
// # Trust
//
// Nothing a frame says is trusted beyond what its arrival port allows:
//
//   - Port roles: a ClusterIP takes new flows (and answers echo) only on cluster or both-role
//     ports, and no frame from a source inside clusterCIDRs opens a flow on an external-role
//     port. Each direction of a flow is accepted only on its port (the original direction on
//     the port it first arrived on, the reply on the port the original leaves by), so a
//     spoofed reply, RST or segment from the other side neither passes nor changes the flow's
//     state (reason wrong_port). RSTs get no sequence-window check: conntrack entries have no
//     room for the windows, so a RST with the right tuple on the right port closes the flow
//     (from the backend side only the backend's own address and port match the reply tuple).
//   - ICMP errors quoting a flow's packet are relayed only when they arrive on the port that
//     packet left by (wrong_port otherwise).
//   - Martian sources (0/8, 127/8, 224/3 with broadcast, node addresses, VIPs, ClusterIPs)
//     open no flow and get no echo reply (martian_source).
//   - Next-hop MACs come from DataPlane.Learn, then the NeighborSource (the kernel's table),
//     then a fixed-size table of client MACs learned from the first frame of a client's flow
//     on an external-role port. A learned MAC is used only for frames leaving through the port
//     it was learned on, ages out after Config.LearnedMACMaxAge without a new flow refreshing
//     it, and is never learned for an address of the plan (clusterCIDRs, node, VIP,
//     ClusterIP, backend).
//   - Local replies (RSTs, ICMP unreachables, echo and ARP replies) pass a per-worker token
//     bucket (local_reply_limit), and new flows a per-source limit shared by the workers
//     (conntrack.SourceLimiter, source_limit).
package dataplane
