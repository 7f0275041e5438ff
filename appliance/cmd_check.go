package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
)

// cmdCheck loads and validates the config and its manifests, reads (never writes) the state file,
// and prints the allocations as `kubectl get services` does. Exit 0 valid, 1 invalid, 2 usage.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "appliance config file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: appliance check --config FILE")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	objs, err := service.LoadManifests(cfg.Services.Manifests)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	prev, err := service.LoadState(cfg.State.Path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	snap, _, err := service.Build(objs, cfg, prev)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	printServices(stdout, snap, time.Now())
	return 0
}

func printErrors(w io.Writer, err error) {
	var el config.ErrorList
	if errors.As(err, &el) {
		for _, e := range el {
			fmt.Fprintln(w, e.Error())
		}
		fmt.Fprintf(w, "%d error(s)\n", len(el))
		return
	}
	fmt.Fprintln(w, err)
}

// printServices writes the kubectl-style table, then notes on Services that are not load-balanced.
func printServices(w io.Writer, snap *service.Snapshot, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tTYPE\tCLUSTER-IP\tEXTERNAL-IP\tPORT(S)\tAGE")
	var notes []string
	for _, s := range snap.Services {
		clusterIP, external := "<none>", "<none>"
		if len(s.ClusterIPs) > 0 {
			clusterIP = s.ClusterIPs[0].String()
		}
		switch {
		case s.Headless:
			clusterIP = "None"
			notes = append(notes, fmt.Sprintf("%s: headless (clusterIP: None): not load-balanced", s.Key()))
		case s.Type == service.TypeExternalName:
			external = s.ExternalName
			notes = append(notes, fmt.Sprintf("%s: ExternalName %s: not load-balanced", s.Key(), s.ExternalName))
		case s.Pending:
			external = "<pending>"
		case s.ExternalIP.IsValid():
			external = s.ExternalIP.String()
		}
		var ports []string
		for _, p := range s.Ports {
			if p.NodePort != 0 {
				ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
			} else {
				ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
			}
		}
		portStr := strings.Join(ports, ",")
		if portStr == "" {
			portStr = "<none>"
		}
		age := "<unknown>"
		if s.CreationTimestampUnix != 0 {
			age = shortDuration(now.Sub(time.Unix(s.CreationTimestampUnix, 0)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, clusterIP, external, portStr, age)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%d services, %d frontends, %d nodePorts\n", len(snap.Services), len(snap.Frontends), len(snap.NodePorts))
}

// shortDuration formats like kubectl's AGE column (45s, 3m, 5h, 2d).
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "<invalid>"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
