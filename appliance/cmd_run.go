package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/xdpsvc/lb/appliance/daemon"
)

// cmdRun runs a node until SIGINT/SIGTERM: appliance run --config FILE [--log-format json|text].
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "appliance config file (YAML)")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	const usage = "usage: appliance run --config FILE [--log-format json|text] [--log-level info]"
	if exit, ok := parseFlags(fs, args, usage, stdout, stderr); !ok {
		return exit
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "appliance run: --log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(stderr, opts)
	if *logFormat == "text" {
		h = slog.NewTextHandler(stderr, opts)
	}
	log := slog.New(h)
	if err := daemon.Run(context.Background(), daemon.Options{ConfigPath: *cfgPath, Logger: log}); err != nil {
		printErrors(stderr, err)
		log.Error("appliance stopped", "err", err)
		return 1
	}
	return 0
}
