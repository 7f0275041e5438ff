package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
)

// labCommand runs `bench lab up|down|list|sweep`.
func labCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "bench lab: want up, down, list or sweep\n")
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		err = labUp(args[1:], stdout, stderr)
	case "down":
		err = labDown(args[1:], stderr)
	case "list":
		err = labList(stdout, stderr)
	case "sweep":
		err = labSweep(stderr)
	default:
		fmt.Fprintf(stderr, "bench lab: unknown command %q (want up, down, list or sweep)\n", args[0])
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usageErr usageError
	if errors.As(err, &usageErr) {
		fmt.Fprintf(stderr, "bench lab %s: %v\n", args[0], err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench lab %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func labUp(args []string, stdout, stderr io.Writer) error {
	spec := lab.DefaultSpec()
	fs := flag.NewFlagSet("bench lab up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&spec.Prefix, "prefix", "", "name prefix of the lab's namespaces (default: l + 4 random hex digits)")
	fs.IntVar(&spec.Nodes, "nodes", spec.Nodes, "appliance-node namespaces (1-9)")
	fs.IntVar(&spec.Backends, "backends", spec.Backends, "backend namespaces (0-29)")
	fs.IntVar(&spec.Clients, "clients", spec.Clients, "external client namespaces (0-100)")
	fs.IntVar(&spec.ClusterClients, "cluster-clients", spec.ClusterClients, "in-cluster client namespaces (0-50)")
	fs.IntVar(&spec.Queues, "queues", spec.Queues, "RX/TX queues per appliance-node veth (1-16)")
	fs.IntVar(&spec.GatewayNode, "gateway-node", spec.GatewayNode, "node whose cluster address routes the service CIDR")
	noBackends := fs.Bool("no-backends", false, "do not start backend servers")
	if err := fs.Parse(args); err != nil {
		return usageErrorOf(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	spec.Persistent = true
	if res, err := lab.Sweep(""); err != nil {
		fmt.Fprintf(stderr, "sweeping stale labs: %v\n", err)
	} else {
		for _, r := range res {
			if r.Removed {
				fmt.Fprintf(stderr, "removed stale lab %s (%s)\n", r.Prefix, r.Reason)
			}
		}
	}
	spec.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, spec)
	if err != nil {
		return err
	}
	if !*noBackends {
		self, err := os.Executable()
		if err != nil {
			return errors.Join(fmt.Errorf("find own executable: %w", err), l.Down())
		}
		for _, b := range l.Backends {
			logPath := filepath.Join(l.Spec.StateDir, l.Prefix()+"-"+b.Short+".log")
			rec, err := b.StartDetached(logPath, append([]string{self}, lab.BackendArgs(b)...)...)
			if err != nil {
				return errors.Join(err, l.Down())
			}
			fmt.Fprintf(stderr, "backend %s: PID %d, log %s\n", b.Short, rec.PID, logPath)
		}
	}
	printLab(stdout, l)
	fmt.Fprintf(stderr, "lab %s is up; state %s; remove it with: bench lab down --prefix %s\n", l.Prefix(), l.StatePath(), l.Prefix())
	return nil
}

// printLab prints one row per interface.
func printLab(w io.Writer, l *lab.Lab) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tROLE\tIFACE\tADDRESS\tMAC\tSWITCH-PORT")
	fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\n", l.Switch.Name, l.Switch.Role, lab.ExternalBridge+","+lab.ClusterBridge)
	for _, n := range l.All()[1:] {
		for _, i := range n.Ifaces {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s@%s\n", n.Name, n.Role, i.Name, i.Addr, i.MAC, i.SwitchPort, i.Bridge)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nservice CIDR %s via %s; LoadBalancer pool %s on-link from clients\n", lab.ServiceCIDR, l.GatewayAddr(), lab.LoadBalancerPool)
	fmt.Fprintf(w, "run in a namespace: ip netns exec %s <command>\n", l.Nodes[0].Name)
}

func labDown(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench lab down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("prefix", "", "the lab to remove")
	all := fs.Bool("all", false, "remove every lab recorded in "+lab.DefaultStateDir+" except those whose owner process still runs")
	if err := fs.Parse(args); err != nil {
		return usageErrorOf(err)
	}
	if (*prefix == "") == !*all || fs.NArg() > 0 {
		return usageError{errors.New("want exactly one of --prefix P or --all")}
	}
	var states []lab.State
	if *all {
		var errs []error
		states, errs = lab.ListStates("")
		for _, err := range errs {
			fmt.Fprintf(stderr, "skipping: %v\n", err)
		}
		if len(states) == 0 {
			fmt.Fprintln(stderr, "no labs recorded")
		}
	} else {
		st, err := lab.ReadState("", *prefix)
		if err != nil {
			return err
		}
		states = append(states, st)
	}
	var errs []error
	for _, st := range states {
		if st.OwnerPID != 0 && st.OwnerAlive() {
			if *all {
				// Another running program (a test) owns it and removes it itself.
				fmt.Fprintf(stderr, "lab %s: kept, its owner PID %d still runs (use --prefix to force)\n", st.Prefix, st.OwnerPID)
				continue
			}
			fmt.Fprintf(stderr, "lab %s: its owner PID %d still runs; removing it anyway\n", st.Prefix, st.OwnerPID)
		}
		fmt.Fprintf(stderr, "lab %s: stopping %d processes, deleting %d namespaces\n", st.Prefix, len(st.Processes), len(st.Namespaces))
		if err := lab.Teardown(st, ""); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range st.Processes {
			if p.Log != "" {
				_ = os.Remove(p.Log)
			}
		}
		fmt.Fprintf(stderr, "lab %s: down\n", st.Prefix)
	}
	return errors.Join(errs...)
}

func labList(stdout, stderr io.Writer) error {
	states, errs := lab.ListStates("")
	for _, err := range errs {
		fmt.Fprintf(stderr, "skipping: %v\n", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tOWNER\tNAMESPACES\tPROCESSES\tAGE")
	for _, st := range states {
		owner := "persistent"
		if st.OwnerPID != 0 {
			owner = fmt.Sprintf("pid %d", st.OwnerPID)
			if !st.OwnerAlive() {
				owner += " (dead)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", st.Prefix, owner, len(st.Namespaces), len(st.Processes), time.Since(st.Created).Round(time.Second))
	}
	return tw.Flush()
}

func labSweep(stderr io.Writer) error {
	res, err := lab.Sweep("")
	for _, r := range res {
		verb := "kept"
		if r.Removed {
			verb = "removed"
		}
		fmt.Fprintf(stderr, "lab %s: %s (%s)\n", r.Prefix, verb, r.Reason)
	}
	return err
}

// usageError is a bad command line (exit code 2).
type usageError struct{ error }

func usageErrorOf(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}
