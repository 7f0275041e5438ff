package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
)

// cmdCheck loads and validates the config and its manifests, reads (never writes) the state file,
// and prints the allocations as `kubectl get services` does. Exit 0 valid, 1 invalid, 2 usage.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "appliance config file (YAML)")
	if exit, ok := parseFlags(fs, args, "usage: appliance check --config FILE", stdout, stderr); !ok {
		return exit
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
	// Every error is reported: the credentials' and the manifests' alike.
	secErr := checkSecrets(cfg)
	fail := func(err error) int {
		if secErr != nil {
			fmt.Fprintln(stderr, secErr)
		}
		if err != nil {
			printErrors(stderr, err)
		}
		return 1
	}
	objs, err := service.LoadManifests(cfg.Services.Manifests)
	if err != nil {
		return fail(err)
	}
	prev, err := service.LoadState(cfg.State.Path)
	if err != nil {
		return fail(err)
	}
	snap, _, err := service.Build(objs, cfg, prev)
	if err != nil {
		return fail(err)
	}
	if secErr != nil {
		return fail(nil)
	}
	printServices(stdout, snap, time.Now())
	return 0
}

// checkSecrets reads the credentials the config names, as `appliance run` does before it starts:
// the gossip key (or cluster.insecure) and the admin token file.
func checkSecrets(cfg *config.Config) error {
	_, err := cfg.ClusterKey()
	if _, aerr := cfg.AgentKey(); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if cfg.Admin.TokenFile != "" {
		if _, terr := admin.ReadTokenFile(cfg.Admin.TokenFile); terr != nil {
			err = errors.Join(err, fmt.Errorf("admin.tokenFile: %w", terr))
		}
	}
	return err
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
	_ = admin.WriteServices(w, admin.ServicesFromSnapshot(snap), now)
	for _, s := range snap.Services {
		switch {
		case s.Headless:
			fmt.Fprintf(w, "note: %s: headless (clusterIP: None): not load-balanced\n", s.Key())
		case s.Type == service.TypeExternalName:
			fmt.Fprintf(w, "note: %s: ExternalName %s: not load-balanced\n", s.Key(), s.ExternalName)
		}
	}
	fmt.Fprintf(w, "%d services, %d frontends, %d nodePorts\n", len(snap.Services), len(snap.Frontends), len(snap.NodePorts))
}
