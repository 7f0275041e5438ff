package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/xdpsvc/lb/bench/backend"
)

// backendCommand runs `bench backend` until SIGINT or SIGTERM.
func backendCommand(args []string, stderr io.Writer) int {
	cfg := backend.DefaultConfig()
	cfg.Name, cfg.HTTPAddr, cfg.UDPAddr, cfg.TCPEchoAddr = "", "", "", ""
	fs := flag.NewFlagSet("bench backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Name, "name", "", "backend name in every answer (required)")
	fs.StringVar(&cfg.HTTPAddr, "http", "", "HTTP listen address, e.g. :8080")
	fs.StringVar(&cfg.UDPAddr, "udp", "", "UDP echo listen address, e.g. :9000")
	fs.StringVar(&cfg.TCPEchoAddr, "tcp-echo", "", "TCP echo listen address, e.g. :7000")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close echo and stream connections idle this long")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most concurrent HTTP and echo connections each")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cfg.HTTPAddr == "" && cfg.UDPAddr == "" && cfg.TCPEchoAddr == "" {
		fmt.Fprintln(stderr, "bench backend: give at least one of --http, --udp, --tcp-echo")
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := backend.ListenAndServe(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "bench backend: %v\n", err)
		return 1
	}
	return 0
}
