// Command bench is the appliance's lab and benchmarking tool (`go run ./bench --help`).
//
// Subcommands: `lab up` builds the namespace lab of ARCHITECTURE.md, "The lab" (package bench/lab) as a persistent
// lab, starts `bench backend` in every backend namespace as a detached process and records namespaces and
// PIDs in /run/xdpsvc-lab/<prefix>.json; `lab down --prefix P | --all` stops exactly those PIDs and deletes
// exactly those namespaces; `lab list` and `lab sweep` show and clean up recorded labs; `backend` runs the
// servers of package bench/backend in the current namespace until SIGINT/SIGTERM; `demo` is make demo (bench/demo);
// `pktgen` sends AF_XDP traffic (bench/pktgen, bench/sink); `compare` runs the appliance, the kube-proxy
// nftables path, the MAC-swap AF_XDP ceiling and an in-kernel XDP redirect side by side (bench/compare); `failover` kills the VIP owner of a
// three-node cluster N times and measures the time to serve again and the connections kept (bench/failover).
//
// Invariants: main stays thin: flag parsing, calls and printing; the work is in the packages it calls
// (bench/lab, bench/lab/appliance, bench/backend, bench/demo, bench/pktgen, bench/sink, bench/compare,
// bench/failover);
// progress and errors go to stderr, tables to stdout; exit 0 on success, 1 on failure, 2 on bad usage.
//
// # Concurrency
//
// Single goroutine except inside the packages it calls (servers, the driver, the measurement runners).
package main
