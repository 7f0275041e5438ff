// Package lab builds the network-namespace lab of ARCHITECTURE.md, "The lab" and tears it down again.
//
// Topology, for a Spec of N nodes, K clients, M backends and C in-cluster clients:
//
//	<prefix>-sw   the switch: bridges brx (external segment 198.18.0.0/24) and brc (cluster segment
//	              198.18.1.0/24); nothing is added to the root namespace
//	<prefix>-nN   appliance node N: ext0 198.18.0.(10+N)/24 on brx, int0 198.18.1.(10+N)/24 on brc
//	<prefix>-cN   external client N: eth0 198.18.0.(99+N)/24; 198.19.1.0/24 (LoadBalancer pool) on-link
//	<prefix>-bN   backend N: eth0 198.18.1.(20+N)/24; 198.19.0.0/24 and default via the gateway node's int0;
//	              198.19.1.0/24 (LoadBalancer pool: VIPs are the floating SNAT source) on-link
//	<prefix>-kN   in-cluster client N: eth0 198.18.1.(49+N)/24; 198.19.0.0/24 via the gateway node's int0
//
// Each veth is created straight into its two namespaces; its switch end is named after the host (n1x, n1i,
// c1, b1, k1). MACs are deterministic: 02:<hash of prefix>:<segment>:<host octet>:<0 inside | 1 switch end>.
//
// What the lab sets, and why (ARCHITECTURE.md):
//   - Node veths have Spec.Queues RX/TX queues (default 1), so an AF_XDP socket on queue 0 sees every frame;
//     all other veths have 1.
//   - TX checksum offload, TSO and GSO are off on every veth end, so frames carry full checksums and are at
//     most MTU-sized, as on a real wire (an AF_XDP program otherwise sees partial checksums and 64 KiB frames).
//   - GRO is on at the switch ends of node interfaces: frames an XDP program redirects or XDP_TXes out of a
//     node interface are otherwise dropped by the veth; GRO on also permits threaded NAPI there. No dummy XDP
//     program is attached anywhere.
//   - In every namespace, before links exist: IPv6 off (the lab speaks only 198.18.0.0/15, no link-local
//     chatter), rp_filter 0, ip_forward 0 (an appliance node forwards in userspace, never in the kernel).
//
// Invariants: only addresses of 198.18.0.0/15 are ever configured. Every namespace name is
// <prefix>-(sw|n1|c1|b1|k1...) with a per-run prefix ("l" + 4 hex digits by default), so parallel runs and
// parallel test packages never collide. The state file <StateDir>/<prefix>.json (default /run/xdpsvc-lab) is
// created exclusively before the first namespace and lists every namespace, the owner PID and every process
// started in the lab; Down and Teardown remove exactly what it lists; Sweep removes labs whose owner PID is
// dead (checked with its start time, so a reused PID does not count) and never touches persistent labs or
// namespaces without a state file. A failed Up removes what it made.
//
// Besides the lab: Manifests writes the v1 Service and EndpointSlice YAML the appliance reads (one generator
// for the e2e tests, bench compare and bench failover); Poll and Sleep are the bounded waits of the bench
// commands; Pair, NewPair, DoIn and Ifindex are a throw-away pair of namespaces joined by one veth, for the
// privileged tests of the steering program and the AF_XDP layer (test code only; removed in t.Cleanup).
// Package bench/lab/appliance runs the appliance program in a lab node.
//
// # Concurrency
//
// Up, New and Sweep from any goroutine; a Lab's and NS's methods are safe for concurrent use;
// Down is idempotent. NS.Do runs a function on a locked OS thread switched into the namespace; sockets made
// there (NS.Listen, NS.ListenPacket, NS.DialContext, Dial, HTTPClient) stay in the namespace wherever they are
// used. Listeners, in-process backends (StartBackends) and processes (NS.Start) are closed or stopped by Down;
// StartDetached processes outlive the caller and are stopped by PID from the state file.
package lab
