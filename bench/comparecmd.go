package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/xdpsvc/lb/bench/compare"
)

// compareCommand runs `bench compare`: the appliance, the kube-proxy-style nftables path and the MAC-swap
// AF_XDP ceiling in turn over the same lab and traffic, and writes results.json, results.md and PNG plots.
func compareCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := compare.DefaultConfig()
	bin := fs.String("appliance", def.ApplianceBin, "the appliance program to run")
	rounds := fs.Int("rounds", def.Rounds, "rounds; every system runs every scenario once per round (A B C A B C ...)")
	duration := fs.Duration("duration", def.Duration, "time bound of each measurement")
	packets := fs.Uint64("packets", def.MaxPackets, "packet bound of each measurement")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios (default all: "+scenarioNames()+")")
	systems := fs.String("systems", "", "comma-separated systems besides the appliance (default all: appliance,nftables,ceiling,xdp-redirect)")
	out := fs.String("out", def.OutDir, "folder for results.json, results.md and the plots")
	quick := fs.Bool("quick", false, "tiny counts for a smoke test (one round, 0.3 s, 20k packets, flows ÷100)")
	replot := fs.Bool("replot", false, "only rewrite results.md and the plots from --out's results.json (no lab, no root)")
	nice := fs.Int("nice", def.Nice, "niceness of the appliance and the ceiling forwarder (both), e.g. -10; 0: unchanged")
	napiNice := fs.Int("napi-nice", def.NAPINice, "niceness of the node's NAPI threads while the appliance or the ceiling forwarder runs (0 for the kernel systems)")
	profile := fs.Bool("profile", false, "perf record the system-under-test core during round 1 of each UDP and SYN scenario (perf-<system>-<scenario>.txt)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *replot {
		return replotResults("compare", stdout, stderr, filepath.Join(*out, compare.MarkdownFile), func() error {
			res, err := compare.ReadResult(filepath.Join(*out, compare.JSONFile))
			if err != nil {
				return err
			}
			return compare.WriteOutputs(res, *out)
		})
	}
	cfg := def
	if *quick {
		cfg = compare.QuickConfig()
	}
	set := setFlags(fs)
	cfg.ApplianceBin, cfg.OutDir, cfg.Profile, cfg.Nice, cfg.NAPINice = *bin, *out, *profile, *nice, *napiNice
	if set["rounds"] || !*quick {
		cfg.Rounds = *rounds
	}
	if set["duration"] || !*quick {
		cfg.Duration = *duration
	}
	if set["packets"] || !*quick {
		cfg.MaxPackets = *packets
	}
	if *scenarios != "" {
		cfg.Scenarios = strings.Split(*scenarios, ",")
	}
	if *systems != "" {
		for _, s := range strings.Split(*systems, ",") {
			cfg.Systems = append(cfg.Systems, compare.System(s))
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	cfg.ForwarderArgv = []string{self, "compare-forwarder"}
	cfg.Progress = stderr
	cfg.Command = "bench compare " + strings.Join(args, " ")
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 2
	}
	var res *compare.Result
	if code := runInterruptible("compare", stderr, func(ctx context.Context) (err error) {
		res, err = compare.Compare(ctx, cfg)
		return err
	}); code != 0 {
		return code
	}
	return printMarkdown("compare", stdout, stderr, filepath.Join(cfg.OutDir, compare.MarkdownFile),
		fmt.Sprintf("%s, %d rounds, written to %s\n", res.Machine.CPUModel, res.Rounds, cfg.OutDir))
}

func scenarioNames() string {
	var names []string
	for _, s := range compare.AllScenarios {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}
