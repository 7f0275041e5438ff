package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/xdpsvc/lb/bench/demo"
)

// demoCommand parses `bench demo`'s flags and runs package demo.
func demoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("appliance", "bin/appliance", "the appliance program to run")
	configs := fs.String("configs", "configs", "folder with lab-node-a.yaml and its manifests")
	requests := fs.Int("requests", 6, "requests per Service type")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := demo.Config{ApplianceBin: *bin, ConfigsDir: *configs, Requests: *requests, Stdout: stdout, Stderr: stderr}
	if err := demo.Run(context.Background(), cfg); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	return 0
}
