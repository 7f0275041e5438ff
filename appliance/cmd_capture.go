package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/appliance/config"
)

const captureUsage = `usage: appliance capture [--admin ADDR|unix:///PATH | --config FILE] [--token-file FILE]
                         [--service NS/NAME | --vip IP | --flow "PROTO SRC:PORT DST:PORT"]
                         [--count N] [--duration D] [--snaplen BYTES] -w FILE|-`

// cmdCapture asks a running node for a pcapng capture of its data plane and writes it to a
// file (or stdout with -w -); it ends after --count frames, --duration, or Ctrl-C. The node
// serves captures only to authorized callers: on its admin Unix socket (--admin unix:///PATH;
// tried first at admin.DefaultSocketPath when no address is given) or over TCP with its admin
// token (--token-file). The file is created mode 0600: it holds payloads.
func cmdCapture(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	adminURL := fs.String("admin", "", "admin API address, host:port or unix:///PATH (default: unix://"+admin.DefaultSocketPath+
		" if it exists, else the config's admin.listen, else "+config.DefaultConfig().Admin.Listen+")")
	tokenFile := fs.String("token-file", "", "file holding the node's admin token (mode 0600), for a capture over TCP")
	cfgPath := fs.String("config", "", "read the admin address from this appliance config")
	svc := fs.String("service", "", "capture one Service's traffic (namespace/name)")
	vip := fs.String("vip", "", "capture traffic to or from this address")
	flow := fs.String("flow", "", `capture one flow, both directions: "tcp 198.18.0.100:40000 198.19.1.1:80"`)
	count := fs.Uint64("count", 0, "stop after this many frames (before and after translation count separately); 0: no limit")
	duration := fs.Duration("duration", 0, "stop after this long; 0: until Ctrl-C or --count (the node caps it at 10m)")
	snaplen := fs.Int("snaplen", 0, "bytes kept of each frame; 0: whole frames")
	out := fs.String("w", "", "pcapng file to write, - for stdout")
	if exit, ok := parseFlags(fs, args, captureUsage, stdout, stderr); !ok {
		return exit
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
	c, err := adminClient(*adminURL, *cfgPath, *tokenFile, true)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration+30*time.Second) // the node ends it; this is a backstop
		defer cancel()
	}
	resp, err := c.Open(ctx, "/api/v1/capture?"+q.Encode())
	if err != nil {
		fmt.Fprintf(stderr, "appliance capture: %v\n", err)
		return 1
	}
	defer resp.Body.Close()

	var w io.Writer = stdout
	var f *os.File
	if *out != "-" {
		f, err = createPrivate(*out)
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

// createPrivate creates (or truncates) path with mode 0600, also when it existed with a wider one.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod 0600 %s: %w", path, err)
	}
	return f, nil
}
