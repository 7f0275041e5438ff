package compare

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
	"github.com/xdpsvc/lb/bench/outputs"
)

// The Service every system serves (same manifests for the appliance and the nftables ruleset). Service ports
// equal target ports so that one sink filter counts what any system forwards (the ceiling does not translate).
const (
	vipAddr  = "198.19.1.1"
	udpPort  = 9000 // UDP scenarios; the backends' UDP echo port
	tcpPort  = 9001 // SYN and ACK scenarios; nothing listens, the sink counts and drops
	echoPort = 7000 // latency scenario: the backends' TCP echo
	adminAt  = "127.0.0.1:9100"
	backends = 9 // SNAT space: LoadBalancer flows SNAT to the VIP, from the data plane's floatingSNATPortMin up, per backend and protocol
)

var vip = netip.MustParseAddr(vipAddr)

// runner holds a comparison's live state.
type runner struct {
	cfg     Config
	lab     *lab.Lab
	node    *lab.NS
	client  *lab.NS
	dir     string
	res     *Result
	ruleset string
	// appliance is the appliance system; its config and manifests are written once, by setUp.
	appliance *appliance.Node
	baseline  map[int]bool // NAPI threads that existed before this lab's
	napi      []int
	started   time.Time
	done      int
	total     int
	stderrMu  sync.Mutex
}

func (r *runner) progress(format string, a ...any) {
	if r.cfg.Progress == nil {
		return
	}
	r.stderrMu.Lock()
	defer r.stderrMu.Unlock()
	left := ""
	if r.done > 0 {
		per := time.Since(r.started) / time.Duration(r.done)
		left = fmt.Sprintf(" (%d/%d done, ~%v left)", r.done, r.total, (per * time.Duration(r.total-r.done)).Round(time.Second))
	}
	fmt.Fprintf(r.cfg.Progress, "compare: "+format+left+"\n", a...)
}

// Compare runs the comparison and writes results.json, results.md and the plots into cfg.OutDir. It needs
// root (namespaces, XDP, nftables). Everything it creates is removed before it returns, also on error or
// when ctx is cancelled (Ctrl-C): the lab's namespaces take the nftables table, addresses and sysctls with them.
func Compare(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scens, _ := cfg.scenarios()
	systems, _ := cfg.systems()
	bin, err := appliance.Preflight(cfg.ApplianceBin, cfg.OutDir, "compare: needs root (namespaces, XDP, nftables)")
	if err != nil {
		return nil, err
	}
	cfg.ApplianceBin = bin
	r := &runner{cfg: cfg, started: time.Now()}
	r.res = &Result{
		Provenance: outputs.Provenance{Command: cfg.Command, Machine: outputs.DescribeMachine(), Started: time.Now()}, Rounds: cfg.Rounds, DurationSeconds: cfg.Duration.Seconds(),
		MaxPackets: cfg.MaxPackets, Systems: systems, Modes: map[System]string{},
		Pinning: fmt.Sprintf("generator thread on cpu%d; system under test (its process, the node's threaded NAPI kthreads) on cpu%d", cfg.GeneratorCPU, cfg.ApplianceCPU) +
			niceNote(cfg.Nice, cfg.NAPINice),
	}
	for _, s := range scens {
		s.Flows = max(1, s.Flows/cfg.FlowsScale)
		r.res.Scenarios = append(r.res.Scenarios, s)
	}
	r.total = cfg.Rounds * len(systems) * len(scens)
	if runtime.NumCPU() <= max(cfg.GeneratorCPU, cfg.ApplianceCPU) {
		return nil, fmt.Errorf("compare: cpus %d and %d asked for, the machine has %d", cfg.GeneratorCPU, cfg.ApplianceCPU, runtime.NumCPU())
	}
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	defer r.tearDown()
	// Scenario by scenario within a round, every system in turn: the runs a ratio pairs are seconds
	// apart, not minutes, so more of the shared machine's drifting load cancels.
	for round := 1; round <= cfg.Rounds; round++ {
		for _, sc := range r.res.Scenarios {
			for _, sys := range systems {
				if err := ctx.Err(); err != nil {
					return r.res, err
				}
				if err := r.runScenario(ctx, round, sys, sc); err != nil {
					return r.res, fmt.Errorf("round %d %s %s: %w", round, sys, sc.Name, err)
				}
			}
		}
	}
	r.res.Finished = time.Now()
	if err := WriteOutputs(r.res, cfg.OutDir); err != nil {
		return r.res, err
	}
	return r.res, nil
}

// system is a started system under test.
type system struct {
	pid       int          // its process (0 for nftables)
	appliance bool         // it serves /metrics
	stop      func() error // undo everything it set up
}

// runScenario runs one scenario through one system. The system is started afresh (empty flow tables
// and SNAT port space for every system alike: the kernel's conntrack table is flushed too), then warmed
// up, measured and stopped.
func (r *runner) runScenario(ctx context.Context, round int, sys System, sc Scenario) error {
	run := Run{Round: round, System: sys, Scenario: sc.Name, Kind: sc.Kind}
	if sc.Kind == KindLatency && (sys == SystemCeiling || sys == SystemXDPRedirect) {
		run.Skipped = "no NAT: a MAC-swap forwarder cannot carry a TCP connection to a backend"
		r.res.Runs = append(r.res.Runs, run)
		r.done++
		return nil
	}
	r.progress("round %d/%d: %s %s", round, r.cfg.Rounds, sc.Name, sys)
	if err := r.runOne(ctx, sys, sc, &run); err != nil {
		return err
	}
	if run.Error != "" {
		r.progress("round %d %s %s: %s", round, sys, sc.Name, run.Error)
	}
	r.res.Runs = append(r.res.Runs, run)
	r.done++
	return nil
}

func (r *runner) runOne(ctx context.Context, sys System, sc Scenario, run *Run) error {
	_ = r.node.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })
	s, err := r.start(ctx, sys)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.stop(); err != nil {
			r.progress("stopping %s: %v", sys, err)
		}
	}()
	r.pinNAPI(sys)
	if sc.Kind == KindLatency {
		r.latency(ctx, run)
		return nil
	}
	if err := r.warmUp(ctx, s); err != nil {
		return fmt.Errorf("%s: %w", sys, err)
	}
	r.packets(ctx, s, sc, run, r.cfg.MaxPackets, r.cfg.Duration)
	return nil
}

func (r *runner) start(ctx context.Context, sys System) (*system, error) {
	switch sys {
	case SystemAppliance:
		return r.startAppliance(ctx)
	case SystemNFTables:
		return r.startNFTables(ctx)
	case SystemCeiling:
		return r.startCeiling(ctx)
	case SystemXDPRedirect:
		return r.startXDPRedirect(ctx)
	}
	return nil, fmt.Errorf("unknown system %q", sys)
}

// tearDown removes the lab and everything in it.
func (r *runner) tearDown() {
	r.progress("tearing the lab down")
	if err := r.lab.Down(); err != nil {
		fmt.Fprintf(r.cfg.Progress, "compare: lab down: %v\n", err)
	}
}
