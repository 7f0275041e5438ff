package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/pktgen"
	"github.com/xdpsvc/lb/bench/sink"
)

// pktgenReport is the --json output of `bench pktgen`.
type pktgenReport struct {
	Lab    string        `json:"lab"`
	From   string        `json:"from"`
	To     string        `json:"to"`
	Pktgen pktgen.Result `json:"pktgen"`
	Sink   *sinkReport   `json:"sink,omitempty"`
}

// sinkReport is what the counting receiver saw.
type sinkReport struct {
	Namespace     string  `json:"namespace"`
	Iface         string  `json:"iface"`
	Filter        string  `json:"filter"`
	Received      uint64  `json:"received"`
	ReceivedBytes uint64  `json:"receivedBytes"`
	ReceivedPPS   float64 `json:"receivedPPS"`
	Loss          int64   `json:"loss"`
	LossRatio     float64 `json:"lossRatio"`
}

// pktgenCommand runs `bench pktgen`: AF_XDP traffic from one lab namespace, optionally counted by an XDP sink
// in another.
func pktgenCommand(args []string, stdout, stderr io.Writer) int {
	err := pktgenRun(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usageErr usageError
	if errors.As(err, &usageErr) {
		fmt.Fprintf(stderr, "bench pktgen: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench pktgen: %v\n", err)
		return 1
	}
	return 0
}

// pktgenOptions are the flags of `bench pktgen` that are not the generator's Config.
type pktgenOptions struct {
	prefix, from, sinkNS, sinkIface string
	dst                             netip.AddrPort
	json                            bool
}

func pktgenRun(args []string, stdout, stderr io.Writer) error {
	cfg, opt, err := parsePktgenFlags(args, stderr)
	if err != nil {
		return err
	}
	st, err := lab.ReadState("", opt.prefix)
	if err != nil {
		return err
	}
	fromNS, err := st.Namespace(opt.from)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	rep := pktgenReport{Lab: st.Prefix, From: fromNS.Name, To: opt.dst.String()}
	var sk *sink.Sink
	if opt.sinkNS != "" {
		ns, err := st.Namespace(opt.sinkNS)
		if err != nil {
			return err
		}
		filter := sink.Filter{Proto: cfg.Proto.IPProto(), DstPort: opt.dst.Port()}
		var ifname string
		err = ns.Do(func() error {
			var err error
			sk, ifname, err = sink.AttachToAddr(opt.sinkIface, opt.dst.Addr(), filter)
			return err
		})
		if err != nil {
			return fmt.Errorf("sink in %s: %w", ns.Name, err)
		}
		defer sk.Close()
		rep.Sink = &sinkReport{Namespace: ns.Name, Iface: ifname, Filter: filter.String()}
		fmt.Fprintf(stderr, "sink: counting %s on %s %s\n", filter, ns.Name, ifname)
	}
	rate := "flat out"
	if cfg.RatePPS > 0 {
		rate = fmt.Sprintf("at %.0f pps", cfg.RatePPS)
	}
	fmt.Fprintf(stderr, "pktgen: %s -> %s %v, %d flows, %d-byte frames, %s, at most %d packets or %v\n",
		fromNS.Name, opt.dst, cfg.Proto, cfg.Flows, cfg.FrameSize, rate, cfg.MaxPackets, cfg.MaxDuration)
	err = fromNS.Do(func() error {
		var err error
		rep.Pktgen, err = pktgen.Run(ctx, cfg)
		return err
	})
	if err != nil {
		return err
	}
	if sk != nil {
		if err := rep.Sink.count(sk, rep.Pktgen); err != nil {
			return err
		}
	}
	return printPktgen(stdout, rep, opt.json)
}

// count records what the sink received against what the generator offered.
func (s *sinkReport) count(sk *sink.Sink, res pktgen.Result) error {
	pkts, bytes, err := sk.Settled()
	if err != nil {
		return err
	}
	s.Received, s.ReceivedBytes = pkts, bytes
	if res.Elapsed > 0 {
		s.ReceivedPPS = float64(pkts) / res.Elapsed.Seconds()
	}
	offered := res.Sent - res.Failed
	s.Loss = int64(offered) - int64(pkts)
	if offered > 0 {
		s.LossRatio = float64(s.Loss) / float64(offered)
	}
	return nil
}

// printPktgen prints rep as JSON or as three lines.
func printPktgen(stdout io.Writer, rep pktgenReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	res := rep.Pktgen
	fmt.Fprintf(stdout, "offered   %12.0f pps  sent %d, failed %d, in %.3f s (stopped by %s; %s %s -> %s)\n",
		res.OfferedPPS, res.Sent, res.Failed, res.Elapsed.Seconds(), res.StoppedBy, res.Iface, res.SrcMAC, res.DstMAC)
	if s := rep.Sink; s != nil {
		fmt.Fprintf(stdout, "received  %12.0f pps  %d frames (%d bytes) at %s %s\n", s.ReceivedPPS, s.Received, s.ReceivedBytes, s.Namespace, s.Iface)
		fmt.Fprintf(stdout, "loss      %12d      %.2f%% of offered\n", s.Loss, 100*s.LossRatio)
	}
	return nil
}

// parsePktgenFlags parses `bench pktgen`'s command line into the generator's Config and the options.
func parsePktgenFlags(args []string, stderr io.Writer) (pktgen.Config, pktgenOptions, error) {
	var opt pktgenOptions
	cfg := pktgen.DefaultConfig()
	fs := flag.NewFlagSet("bench pktgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.prefix, "lab", "", "prefix of a running lab (bench lab up) (required)")
	fs.StringVar(&opt.from, "from", "", "namespace to send from, e.g. c1 (required)")
	to := fs.String("to", "", "destination IP:PORT in 198.18.0.0/15 (required)")
	proto := fs.String("proto", "udp", "udp, tcp-syn or tcp-ack")
	fs.IntVar(&cfg.Flows, "flows", cfg.Flows, "distinct 5-tuples (source ports vary first, then source addresses)")
	fs.IntVar(&cfg.FrameSize, "size", cfg.FrameSize, "frame size in bytes including the FCS (64-1518)")
	fs.Uint64Var(&cfg.MaxPackets, "count", cfg.MaxPackets, "stop after this many packets")
	fs.DurationVar(&cfg.MaxDuration, "duration", cfg.MaxDuration, "stop after this long")
	fs.Float64Var(&cfg.RatePPS, "rate", 0, "target packets per second (0: flat out)")
	fs.StringVar(&cfg.Iface, "iface", "", "interface to send from (default: the route's to the destination)")
	fs.IntVar(&cfg.Queue, "queue", 0, "TX queue of the AF_XDP socket")
	src := fs.String("src", "", "source prefix in 198.18.0.0/15 (default: the interface's address)")
	srcPorts := fs.String("src-ports", "1024-65535", "source port range FIRST-LAST")
	dstMAC := fs.String("dst-mac", "", "destination MAC (default: resolved through the kernel's neighbour table)")
	fs.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "descriptors per TX batch")
	fs.IntVar(&cfg.TxRingSize, "ring", cfg.TxRingSize, "TX and completion ring entries (power of two)")
	fs.IntVar(&cfg.TxSkbBudget, "tx-budget", 0, "frames per sendto in copy mode (XDP_MAX_TX_SKB_BUDGET; 0: kernel default 32)")
	fs.StringVar(&opt.sinkNS, "sink", "", "namespace whose interface holding the destination address counts and drops the traffic, e.g. n1")
	fs.StringVar(&opt.sinkIface, "sink-iface", "", "interface in the --sink namespace (default: the one holding the destination address)")
	fs.BoolVar(&opt.json, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return cfg, opt, usageErrorOf(err)
	}
	if fs.NArg() > 0 {
		return cfg, opt, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if opt.prefix == "" || opt.from == "" || *to == "" {
		return cfg, opt, usageError{errors.New("--lab, --from and --to are required")}
	}
	var err error
	if opt.dst, err = netip.ParseAddrPort(*to); err != nil {
		return cfg, opt, usageError{fmt.Errorf("--to %q: want IP:PORT: %w", *to, err)}
	}
	cfg.DstPrefix = netip.PrefixFrom(opt.dst.Addr(), opt.dst.Addr().BitLen())
	cfg.DstPorts = pktgen.PortRange{First: opt.dst.Port()}
	if cfg.Proto, err = pktgen.ParseProto(*proto); err != nil {
		return cfg, opt, usageError{err}
	}
	if *src != "" {
		if cfg.SrcPrefix, err = parsePrefixOrAddr(*src); err != nil {
			return cfg, opt, usageError{fmt.Errorf("--src: %w", err)}
		}
	}
	if cfg.SrcPorts, err = parsePortRange(*srcPorts); err != nil {
		return cfg, opt, usageError{fmt.Errorf("--src-ports: %w", err)}
	}
	if *dstMAC != "" {
		if cfg.DstMAC, err = net.ParseMAC(*dstMAC); err != nil {
			return cfg, opt, usageError{fmt.Errorf("--dst-mac: %w", err)}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, opt, usageError{err}
	}
	return cfg, opt, nil
}

// parsePrefixOrAddr accepts 198.18.0.100 or 198.18.2.0/24.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parsePortRange accepts PORT or FIRST-LAST.
func parsePortRange(s string) (pktgen.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return pktgen.PortRange{}, fmt.Errorf("port %q: %w", lo, err)
	}
	r := pktgen.PortRange{First: uint16(first)}
	if isRange {
		last, err := strconv.ParseUint(hi, 10, 16)
		if err != nil {
			return pktgen.PortRange{}, fmt.Errorf("port %q: %w", hi, err)
		}
		r.Last = uint16(last)
	}
	return r, nil
}
