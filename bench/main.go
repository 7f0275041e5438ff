package main

import (
	"fmt"
	"io"
	"os"

	"github.com/xdpsvc/lb/bench/compare"
)

const usage = `bench: the appliance's lab and benchmarking tool (ARCHITECTURE.md, "The lab").

Usage:
  bench lab up [--nodes N] [--backends M] [--clients K] [--cluster-clients C] [--queues Q] [--gateway-node I] [--prefix P] [--no-backends]
        build the namespace lab, start a backend server in every backend namespace, write the state file
        /run/xdpsvc-lab/<prefix>.json and print the namespaces and addresses
  bench lab down (--prefix P | --all)
        stop the lab's processes by PID and delete its namespaces and state file
        (--all skips labs whose owner process, e.g. a running test, is alive)
  bench lab list
        print the labs recorded in /run/xdpsvc-lab
  bench lab sweep
        remove labs of crashed test runs (owner process dead); persistent labs are kept
  bench backend --name NAME [--http ADDR] [--udp ADDR] [--tcp-echo ADDR] [--idle-timeout D] [--max-conns N]
        run the backend servers in the current namespace until SIGINT/SIGTERM

  bench demo [--appliance bin/appliance] [--configs configs]
        one-node lab: run the appliance with the configs/ examples, show all three Service types
        answering real HTTP requests, print the counters, tear down (make demo)

  bench pktgen --lab P --from NS --to IP:PORT [--proto udp|tcp-syn|tcp-ack] [--flows N] [--size BYTES]
        [--count N] [--duration D] [--rate PPS] [--sink NS] [--json]   (--help for the rest)
        AF_XDP traffic from a lab namespace, bounded in packets and time; prints offered pps, and with
        --sink the frames an XDP program counted and dropped in that namespace (received pps, loss)

  bench compare [--appliance bin/appliance] [--rounds 3] [--duration 5s] [--scenarios a,b] [--systems s,t]
        [--out DIR] [--quick] [--profile] [--nice N]
        the appliance vs. the kube-proxy nftables path vs. a MAC-swap AF_XDP ceiling vs. in-kernel XDP redirect, same lab and traffic,
        rounds alternating; writes results.json, results.md and PNG plots

  bench failover [--appliance bin/appliance] [--kills 10] [--conns 5] [--out bench/results/failover] [--quick]
        [--replot]
        three appliance nodes; kill the current VIP owner (SIGKILL) --kills times while a client opens new
        connections and holds long-lived ones; time until new connections succeed again, broken connections;
        writes results.json, results.md and PNG plots (timeline, distribution)

Progress and errors go to stderr; tables to stdout. Run as root.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "lab":
		return labCommand(args[1:], stdout, stderr)
	case "backend":
		return backendCommand(args[1:], stderr)
	case "demo":
		return demoCommand(args[1:], stdout, stderr)
	case "pktgen":
		return pktgenCommand(args[1:], stdout, stderr)
	case "compare":
		return compareCommand(args[1:], stdout, stderr)
	case "compare-forwarder": // the ceiling forwarder (and, --mode xdp, the XDP redirect) that compare starts in the node namespace
		return compare.ForwarderMain(args[1:], stdout, stderr)
	case "failover":
		return failoverCommand(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
