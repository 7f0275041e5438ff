package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/xdpsvc/lb/bench/failover"
)

// failoverCommand runs `bench failover`: three appliance nodes in the lab, the VIP owner killed --kills
// times while clients open new connections and hold long-lived ones; writes results.json, results.md and
// PNG plots, prints the summary table. A missed target is a "no" in the table, not an error.
func failoverCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := failover.DefaultConfig()
	bin := fs.String("appliance", def.ApplianceBin, "the appliance program to run (the default is built with go build when missing)")
	kills := fs.Int("kills", def.Kills, "how many times the current VIP owner is killed (SIGKILL)")
	conns := fs.Int("conns", def.Conns, "long-lived TCP connections through the VIP held across each kill")
	out := fs.String("out", def.OutDir, "folder for results.json, results.md and the plots")
	quick := fs.Bool("quick", false, "smoke run: shorter warm-up and observation, 2 long-lived connections unless --conns")
	replot := fs.Bool("replot", false, "only rewrite results.md and the plots from --out's results.json (no lab, no root)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "failover: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *replot {
		return replotResults("failover", stdout, stderr, filepath.Join(*out, failover.MarkdownFile), func() error {
			res, err := failover.ReadResult(filepath.Join(*out, failover.JSONFile))
			if err != nil {
				return err
			}
			return failover.WriteOutputs(res, *out)
		})
	}
	cfg := def
	if *quick {
		cfg = failover.QuickConfig()
	}
	set := setFlags(fs)
	cfg.ApplianceBin, cfg.OutDir = *bin, *out
	if set["conns"] || !*quick {
		cfg.Conns = *conns
	}
	if set["kills"] || !*quick {
		cfg.Kills = *kills
	}
	cfg.Progress = stderr
	cfg.Command = strings.TrimSpace("bench failover " + strings.Join(args, " "))
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "failover: %v\n", err)
		return 2
	}
	if !set["appliance"] {
		if err := buildAppliance(cfg.ApplianceBin, stderr); err != nil {
			fmt.Fprintf(stderr, "failover: %v\n", err)
			return 1
		}
	}
	var res *failover.Result
	if code := runInterruptible("failover", stderr, func(ctx context.Context) (err error) {
		res, err = failover.Run(ctx, cfg)
		return err
	}); code != 0 {
		return code
	}
	return printMarkdown("failover", stdout, stderr, filepath.Join(cfg.OutDir, failover.MarkdownFile),
		fmt.Sprintf("%s, kernel %s, %d CPUs; written to %s\n", res.Machine.CPUModel, res.Machine.Kernel, res.Machine.CPUs, cfg.OutDir))
}

// buildAppliance builds ./appliance into path with the go tool when path does not exist (as make build
// does); run from the module root.
func buildAppliance(path string, stderr io.Writer) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if _, err := os.Stat("appliance"); err != nil {
		return fmt.Errorf("appliance program %s is missing and ./appliance is not here to build it (run make build, or pass --appliance): %w", path, err)
	}
	fmt.Fprintf(stderr, "failover: building %s (go build -o %s ./appliance)\n", path, path)
	out, err := exec.Command("go", "build", "-o", path, "./appliance").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o %s ./appliance: %w\n%s", path, err, out)
	}
	return nil
}
