// Command appliance is the AF_XDP Service load balancer daemon: appliance check|run|get|capture|agent|keygen|version.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: appliance <command> [flags]

commands:
  check --config FILE   validate config and manifests, print the allocations, change nothing
  run --config FILE     run a node until SIGINT/SIGTERM; SIGHUP or a changed manifest reloads
  get services|endpoints|flows|members [--admin URL] [-o table|json]   query a running node
  capture [--service NS/NAME | --vip IP | --flow "PROTO SRC:PORT DST:PORT"] [--count N] [--duration D] -w FILE
                        pcapng of the frames a running node's data plane sees, before and after translation
  agent --join ADDR[,ADDR] --service NS/NAME --port N[,M|name=N][/udp] [--service ... --port ...]
        [--address IP] [--bind IP:PORT] [--name NAME] [--secret-key-file F] [--check-interval 1s]
        [--drain-timeout 10s] [--admin ADDR]
                        backend agent: join the appliances' cluster and announce this host's endpoints
  keygen [FILE]         make a gossip key (base64) and write it to FILE with mode 0600, or print it
  version [-o json]     print the version, build and kernel
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs one subcommand and returns the process exit code (0 ok, 1 invalid, 2 usage).
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "get":
		return cmdGet(args[1:], stdout, stderr)
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "capture":
		return cmdCapture(args[1:], stdout, stderr)
	case "agent":
		return cmdAgent(args[1:], stdout, stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout, stderr)
	case "version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "appliance: unknown command %q\n%s", args[0], usage)
	return 2
}
