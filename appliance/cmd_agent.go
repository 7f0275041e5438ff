package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xdpsvc/lb/appliance/agent"
)

// cmdAgent runs a backend agent until SIGTERM/SIGINT: it drains for --drain-timeout (or until a
// second signal), leaves the cluster and exits 0.
func cmdAgent(args []string, stdout, stderr io.Writer) int {
	usageOut := stderr
	if wantsHelp(args) {
		usageOut = stdout // --help: the usage is the answer, on stdout
	}
	cfg, err := agent.ParseArgs(args, usageOut)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "appliance agent: %v\n", err)
		return 2
	}
	cfg.Version = version
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "appliance agent: %v\n", err)
		return 1
	}
	stop := make(chan struct{}, 2)
	go func() {
		for range sig {
			select {
			case stop <- struct{}{}:
			default:
			}
		}
	}()
	if err := a.Run(stop); err != nil {
		fmt.Fprintf(stderr, "appliance agent: %v\n", err)
		return 1
	}
	return 0
}
