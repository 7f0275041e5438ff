// Package failover measures LoadBalancer VIP failover in the namespace lab: the figures issue 5 asks for
// (time until new connections through the VIP succeed again after the owner's death, established
// connections that survived), over N kills, and writes them as results.json, results.md and PNG plots.
//
// A run builds a lab of three appliance nodes, two backends and one external client (bench/lab), runs the
// real appliance program on every node (bench/lab/appliance) with a three-node cluster config and one
// LoadBalancer Service with a VIP, and then, per kill: opens Config.Conns long-lived TCP connections through the VIP that exchange
// data every Config.EchoInterval; starts an open-loop stream of new connections (an HTTP GET every
// Config.AttemptInterval, each bounded by Config.AttemptTimeout, every attempt's start and outcome
// recorded); SIGKILLs the current VIP owner by PID; waits until new connections succeed again; reads the
// new owner's appliance_failover_duration_seconds histogram (detected loss → VIP announced) from its
// /metrics; counts the long-lived connections that broke; restarts the killed node and waits for a steady
// owner before the next kill.
//
// Definitions (Analyze): attempts are timed relative to the kill. "Served again" is the completion of the
// first successful attempt that started at or after the first failed attempt (with no failed attempt: the
// first successful one after the kill, and NoOutage is set). "Steady" is the completion of the first
// successful attempt that started after the last failed one. A long-lived connection is broken when a
// write or read fails or an echo takes longer than Config.EchoDeadline.
//
// Invariants: every load loop is bounded in attempts and time (Config.ServeTimeout, Config.Observe);
// traffic goes only between the lab's namespaces (198.18.0.0/15); processes are stopped by PID; the lab
// (namespaces, processes, XDP programs attached inside it) is removed before Run returns, also on error
// and when ctx is cancelled (SIGINT).
//
// # Concurrency
//
// Run from one goroutine; it starts its own workers (attempt loop, long-lived connections)
// and joins them before each kill ends. Analyze, Summarize, WriteOutputs, ReadResult, DecodeResult and ParseMetric are
// pure and safe for concurrent use.
package failover
