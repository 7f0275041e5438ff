package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/appliance/config"
)

const captureUsage = `usage: appliance capture [--admin ADDR | --config FILE] [--service NS/NAME | --vip IP | --flow "PROTO SRC:PORT DST:PORT"]
                         [--count N] [--duration D] [--snaplen BYTES] -w FILE|-`

// cmdCapture asks a running node for a pcapng capture of its data plane and writes it to a
// file (or stdout with -w -); it ends after --count frames, --duration, or Ctrl-C.
func cmdCapture(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", "", "admin API address (default: the config's admin.listen, else "+config.DefaultConfig().Admin.Listen+")")
	cfgPath := fs.String("config", "", "read the admin address from this appliance config")
	svc := fs.String("service", "", "capture one Service's traffic (namespace/name)")
	vip := fs.String("vip", "", "capture traffic to or from this address")
	flow := fs.String("flow", "", `capture one flow, both directions: "tcp 198.18.0.100:40000 198.19.1.1:80"`)
	count := fs.Uint64("count", 0, "stop after this many frames (before and after translation count separately); 0: no limit")
	duration := fs.Duration("duration", 0, "stop after this long; 0: until Ctrl-C or --count (the node caps it at 10m)")
	snaplen := fs.Int("snaplen", 0, "bytes kept of each frame; 0: whole frames")
	out := fs.String("w", "", "pcapng file to write, - for stdout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	filters := 0
	for _, s := range []string{*svc, *vip, *flow} {
		if s != "" {
			filters++
		}
	}
	if fs.NArg() > 0 || *out == "" || filters > 1 {
		fmt.Fprintln(stderr, captureUsage)
		return 2
	}
	q := url.Values{}
	switch {
	case *svc != "":
		q.Set("service", *svc)
	case *vip != "":
		q.Set("vip", *vip)
	case *flow != "":
		if _, err := capture.ParseFlow(*flow); err != nil {
			fmt.Fprintf(stderr, "appliance capture: %v\n", err)
			return 2
		}
		q.Set("flow", *flow)
	}
	if *count > 0 {
		q.Set("count", strconv.FormatUint(*count, 10))
	}
	if *duration > 0 {
		q.Set("duration", duration.String())
	}
	if *snaplen > 0 {
		q.Set("snaplen", strconv.Itoa(*snaplen))
	}
	base := *adminURL
	if base == "" && *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			printErrors(stderr, err)
			return 1
		}
		base = cfg.Admin.Listen
	}
	if base == "" {
		base = config.DefaultConfig().Admin.Listen
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration+30*time.Second) // the node ends it; this is a backstop
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/capture?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintf(stderr, "appliance capture: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "appliance capture: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "appliance capture: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}

	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		f, err = os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "appliance capture: %v\n", err)
			return 1
		}
		w = f
	}
	n, cerr := io.Copy(w, resp.Body)
	if f != nil {
		if err := f.Close(); err != nil && cerr == nil {
			cerr = err
		}
	}
	interrupted := ctx.Err() != nil
	if cerr != nil && !interrupted {
		fmt.Fprintf(stderr, "appliance capture: write %s: %v\n", *out, cerr)
		return 1
	}
	if interrupted {
		fmt.Fprintf(stderr, "appliance capture: stopped; %d bytes of pcapng written to %s\n", n, *out)
		return 0
	}
	fmt.Fprintf(stderr, "appliance capture: %s frames written to %s (%s received frames matched the filter; %s frames lost to a full capture ring)\n",
		resp.Trailer.Get(capture.TrailerWritten), *out, resp.Trailer.Get(capture.TrailerMatched), resp.Trailer.Get(capture.TrailerDropped))
	return 0
}
