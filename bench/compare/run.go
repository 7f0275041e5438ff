package compare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/pktgen"
	"github.com/xdpsvc/lb/bench/sink"
)

// The Service every system serves (same manifests for the appliance and the nftables ruleset). Service ports
// equal target ports so that one sink filter counts what any system forwards (the ceiling does not translate).
const (
	vipAddr  = "198.19.1.1"
	udpPort  = 9000 // UDP scenarios; the backends' UDP echo port
	tcpPort  = 9001 // SYN and ACK scenarios; nothing listens, the sink counts and drops
	echoPort = 7000 // latency scenario: the backends' TCP echo
	adminAt  = "127.0.0.1:9100"
	backends = 9 // SNAT space: the appliance hands out 4,536 ports (61000-65535) per backend and protocol
)

var vip = netip.MustParseAddr(vipAddr)

// manifests is the v1 Service and EndpointSlice both the appliance and the nftables generator read.
func manifests(eps []netip.Addr) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: %s
  clusterIP: 198.19.0.10
  ports:
    - {name: udp, protocol: UDP, port: %d, targetPort: %d}
    - {name: tcp, protocol: TCP, port: %d, targetPort: %d}
    - {name: echo, protocol: TCP, port: %d, targetPort: %d}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: bench-1, namespace: default, labels: {kubernetes.io/service-name: bench}}
addressType: IPv4
ports: [{name: udp, protocol: UDP, port: %d}, {name: tcp, protocol: TCP, port: %d}, {name: echo, protocol: TCP, port: %d}]
endpoints:
`, vipAddr, udpPort, udpPort, tcpPort, tcpPort, echoPort, echoPort, udpPort, tcpPort, echoPort)
	for _, e := range eps {
		fmt.Fprintf(&b, "  - addresses: [%s]\n    conditions: {ready: true}\n", e)
	}
	return []byte(b.String())
}

// Run is one measurement: one system, one scenario, one round.
type Run struct {
	// Round is 1-based.
	Round    int    `json:"round"`
	System   System `json:"system"`
	Scenario string `json:"scenario"`
	Kind     Kind   `json:"kind"`
	// Offered is what the generator got onto the wire (sent minus device drops), OfferedPPS per second.
	Offered    uint64  `json:"offered,omitempty"`
	OfferedPPS float64 `json:"offeredPPS,omitempty"`
	// Received is what the sinks on the backends counted; ReceivedPPS per second of the generator's run.
	Received    uint64  `json:"received,omitempty"`
	ReceivedPPS float64 `json:"receivedPPS,omitempty"`
	// ReceivedBitsPerSecond is the received frames' bytes (without FCS) × 8 per second.
	ReceivedBitsPerSecond float64 `json:"receivedBitsPerSecond,omitempty"`
	// ElapsedSeconds is the generator's run time.
	ElapsedSeconds float64 `json:"elapsedSeconds,omitempty"`
	// StoppedBy is the bound that ended the generator (count, duration or context).
	StoppedBy string `json:"stoppedBy,omitempty"`
	// CoreBusySeconds is the non-idle time of the system-under-test core over the run (/proc/stat): its
	// process, its NAPI threads, the softirqs on that core (including the switch path to the backends and the
	// sinks), and anything else the machine ran there.
	CoreBusySeconds float64 `json:"coreBusySeconds,omitempty"`
	// ProcessCPUSeconds is the appliance's or the forwarder's utime+stime (0 for nftables: no process).
	ProcessCPUSeconds float64 `json:"processCPUSeconds,omitempty"`
	// NAPICPUSeconds is the utime+stime of the node interfaces' threaded-NAPI kernel threads.
	NAPICPUSeconds float64 `json:"napiCPUSeconds,omitempty"`
	// NsPerPacket is CoreBusySeconds per received packet, in nanoseconds.
	NsPerPacket float64 `json:"nsPerPacket,omitempty"`
	// LatencyMicros are the round-trip times of the latency scenario, in order.
	LatencyMicros []float64 `json:"latencyMicros,omitempty"`
	// P50Micros, P99Micros are their percentiles; LatencyErrors counts requests that failed or timed out.
	P50Micros     float64 `json:"p50Micros,omitempty"`
	P99Micros     float64 `json:"p99Micros,omitempty"`
	LatencyErrors int     `json:"latencyErrors,omitempty"`
	// ApplianceCounters are the appliance's own counters over the run (deltas of its /metrics
	// appliance_received/transmitted/dropped_packets_total, drops by reason): where its packets went.
	ApplianceCounters map[string]float64 `json:"applianceCounters,omitempty"`
	// Skipped says why a system does not run a scenario (e.g. the ceiling does no NAT, so no TCP round trip).
	Skipped string `json:"skipped,omitempty"`
	// Error is a measurement that failed; the run goes on.
	Error string `json:"error,omitempty"`
}

// Headline is the scenario's main figure: received pps (conn/s for SYN), or p50 in µs for latency.
func (r Run) Headline() float64 {
	if r.Kind == KindLatency {
		return r.P50Micros
	}
	return r.ReceivedPPS
}

// Result is everything a comparison measured.
type Result struct {
	// Command is the command line that made it.
	Command string `json:"command"`
	// Lab is the prefix of the namespace lab it ran in (gone when Compare returns).
	Lab string `json:"lab"`
	// Machine is where it ran.
	Machine outputs.Machine `json:"machine"`
	// Started and Finished are wall-clock times.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Rounds, DurationSeconds and MaxPackets are the bounds of each measurement.
	Rounds          int     `json:"rounds"`
	DurationSeconds float64 `json:"durationSeconds"`
	MaxPackets      uint64  `json:"maxPackets"`
	// Scenarios and Systems are what ran, in order.
	Scenarios []Scenario `json:"scenarios"`
	Systems   []System   `json:"systems"`
	// Modes are the XDP and AF_XDP modes per system, as the system reported them.
	Modes map[System]string `json:"modes"`
	// Pinning says which core ran what.
	Pinning string `json:"pinning"`
	// Notes are facts a reader needs (what could not be measured, and why).
	Notes []string `json:"notes"`
	// Runs are every raw figure of every round.
	Runs []Run `json:"runs"`
	// Nftables is the ruleset the kernel system loaded.
	Nftables string `json:"nftables"`
}

// runner holds a comparison's live state.
type runner struct {
	cfg      Config
	lab      *lab.Lab
	node     *lab.NS
	client   *lab.NS
	dir      string
	res      *Result
	ruleset  string
	baseline map[int]bool // NAPI threads that existed before this lab's
	napi     []int
	started  time.Time
	done     int
	total    int
	stderrMu sync.Mutex
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
	if os.Geteuid() != 0 {
		return nil, errors.New("compare: needs root (namespaces, XDP, nftables)")
	}
	bin, err := filepath.Abs(cfg.ApplianceBin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("appliance program: %w (run make build)", err)
	}
	cfg.ApplianceBin = bin
	scens, _ := cfg.scenarios()
	systems, _ := cfg.systems()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	r := &runner{cfg: cfg, started: time.Now()}
	r.res = &Result{
		Command: cfg.Command, Machine: outputs.DescribeMachine(), Started: time.Now(), Rounds: cfg.Rounds, DurationSeconds: cfg.Duration.Seconds(),
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
		if r.lab != nil {
			_ = r.lab.Down()
		}
		return nil, err
	}
	defer func() {
		r.progress("tearing the lab down")
		if err := r.lab.Down(); err != nil {
			fmt.Fprintf(cfg.Progress, "compare: lab down: %v\n", err)
		}
	}()
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

// setUp builds the lab and everything that stays for the whole comparison.
func (r *runner) setUp(ctx context.Context) error {
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients, spec.Queues = 1, 1, backends, 0, 1
	r.progress("building the lab (1 node, 1 client, %d backends)", backends)
	upCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	l, err := lab.Up(upCtx, spec)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab, r.node, r.client = l, l.Nodes[0], l.Clients[0]
	r.res.Lab = l.Prefix()
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	var eps []netip.Addr
	for _, b := range l.Backends {
		eps = append(eps, b.Addr())
	}
	m := manifests(eps)
	fronts, err := ParseManifests(m)
	if err != nil {
		return err
	}
	var rs bytes.Buffer
	if err := NFTRuleset(&rs, fronts); err != nil {
		return err
	}
	r.ruleset, r.res.Nftables = rs.String(), rs.String()
	if r.dir, err = os.MkdirTemp("", "bench-compare-"); err != nil {
		return err
	}
	l.Spec.Logf = nil
	if err := os.WriteFile(filepath.Join(r.dir, "services.yaml"), m, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "nft.conf"), rs.Bytes(), 0o644); err != nil {
		return err
	}
	cfgText := lab.ApplianceConfig("bench-lb", r.node, nil, adminAt, "")
	if err := os.WriteFile(filepath.Join(r.dir, "lb.yaml"), []byte(cfgText), 0o644); err != nil {
		return err
	}
	// The client reaches the VIP through a static neighbour: every system then gets the same frames, and
	// the kernel system needs no VIP address on ext0.
	ext := r.node.External()
	if _, err := r.client.Run(ctx, "ip", "neigh", "replace", vipAddr, "lladdr", ext.MAC.String(), "dev", lab.HostIface, "nud", "permanent"); err != nil {
		return err
	}
	// Threaded NAPI on the node's interfaces, pinned with the system under test (PLATFORM.md). veth has NAPI
	// only with XDP or GRO on: GRO on both node interfaces (the kernel path keeps it, as a NIC would).
	r.baseline = map[int]bool{}
	for _, t := range napiThreads([]string{lab.NodeExternalIface, lab.NodeClusterIface}, nil) {
		r.baseline[t] = true
	}
	for _, ifc := range []string{lab.NodeExternalIface, lab.NodeClusterIface} {
		if _, err := r.node.Run(ctx, "ethtool", "-K", ifc, "gro", "on"); err != nil {
			return err
		}
		if _, err := r.node.Run(ctx, "sh", "-c", "echo 1 > /sys/class/net/"+ifc+"/threaded"); err != nil {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("threaded NAPI on %s: %v", ifc, err))
		}
	}
	r.res.Notes = append(r.res.Notes,
		"CPU per packet is the busy time of the system-under-test core (/proc/stat) over the generator's run divided by the packets the sinks counted; it includes the veth/bridge path to the backends and the sinks' XDP programs, which run in softirq on that core for every system alike.",
		"The ceiling forwarder and the XDP redirect program do no NAT, so they have no TCP round trip (latency scenario skipped); their frames fan out over the backends (ceiling: a hash of the source address and port; XDP program: the source port).",
		"The in-kernel XDP redirect reaches close to what the generator offers: its figures are near, not exactly at, its saturation rate.")
	return nil
}

// pinNAPI pins this lab's NAPI threads (they come and go with XDP attach/detach) to the system's core
// and sets their niceness: Config.NAPINice for the user-space systems, 0 for the kernel's.
func (r *runner) pinNAPI(sys System) {
	nice := 0
	if sys == SystemAppliance || sys == SystemCeiling {
		nice = r.cfg.NAPINice
	}
	r.napi = napiThreads([]string{lab.NodeExternalIface, lab.NodeClusterIface}, r.baseline)
	for _, t := range r.napi {
		_ = pinTask(t, r.cfg.ApplianceCPU)
		if err := unix.Setpriority(unix.PRIO_PROCESS, t, nice); err != nil {
			r.progress("nice of NAPI thread %d: %v", t, err)
		}
	}
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

func (r *runner) startAppliance(ctx context.Context) (*system, error) {
	_ = os.Remove(filepath.Join(r.dir, "state.json"))
	argv := append(r.pinned(), r.cfg.ApplianceBin, "run", "--config", filepath.Join(r.dir, "lb.yaml"))
	p, err := r.node.Start(argv...)
	if err != nil {
		return nil, err
	}
	s := &system{pid: p.PID, appliance: true, stop: func() error { p.Stop(); return nil }}
	hc := lab.HTTPClient(r.node)
	hc.Timeout = time.Second
	deadline := time.Now().Add(r.cfg.StartTimeout)
	for {
		if resp, err := hc.Get("http://" + adminAt + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("appliance exited: %v\n%s", p.Err(), p.Output())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("appliance not healthy after %v:\n%s", r.cfg.StartTimeout, p.Output())
		}
	}
	if err := r.waitServing(ctx); err != nil {
		p.Stop()
		return nil, fmt.Errorf("appliance: %w\n%s", err, p.Output())
	}
	if _, ok := r.res.Modes[SystemAppliance]; !ok {
		r.res.Modes[SystemAppliance] = r.applianceModes(hc)
	}
	return s, nil
}

// applianceModes reads appliance_xdp_mode_info and the AF_XDP bind mode from /metrics.
func (r *runner) applianceModes(hc *http.Client) string {
	resp, err := hc.Get("http://" + adminAt + "/metrics")
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer resp.Body.Close()
	var modes []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "appliance_xdp_mode_info") || strings.HasPrefix(line, "appliance_afxdp_mode_info") ||
			strings.HasPrefix(line, "appliance_xsk_mode_info") {
			modes = append(modes, line)
		}
	}
	if len(modes) == 0 {
		return "not reported"
	}
	return strings.Join(modes, "; ")
}

// waitServing waits (bounded) until a TCP round trip through the VIP to a backend's echo works.
func (r *runner) waitServing(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := r.client.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, echoPort).String())
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("ping"))
			if err == nil {
				buf := make([]byte, 4)
				_, err = io.ReadFull(c, buf)
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no TCP round trip through %s:%d within %v: %v", vip, echoPort, r.cfg.StartTimeout, last)
}

func (r *runner) startNFTables(ctx context.Context) (*system, error) {
	var oldForward []byte
	err := r.node.Do(func() error {
		var err error
		oldForward, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	})
	if err != nil {
		return nil, fmt.Errorf("ip_forward: %w", err)
	}
	stop := func() error {
		var errs []error
		// The table may be half-loaded or absent: delete what exists.
		if out, err := r.node.Run(context.Background(), "nft", "list", "tables"); err == nil && strings.Contains(string(out), "ip "+NFTTable) {
			if _, err := r.node.Run(context.Background(), "nft", "delete", "table", "ip", NFTTable); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, r.node.Do(func() error {
			_ = netlink.ConntrackTableFlush(netlink.ConntrackTable)
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", bytes.TrimSpace(oldForward), 0)
		}))
		return errors.Join(errs...)
	}
	if _, err := r.node.Run(ctx, "nft", "-f", filepath.Join(r.dir, "nft.conf")); err != nil {
		_ = stop()
		return nil, fmt.Errorf("load nftables ruleset: %w", err)
	}
	if err := r.waitServing(ctx); err != nil {
		_ = stop()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, ok := r.res.Modes[SystemNFTables]; !ok {
		r.res.Modes[SystemNFTables] = "kernel forwarding (no XDP); nft " + nftVersion(ctx, r.node)
	}
	return &system{stop: stop}, nil
}

func niceNote(n, napi int) string {
	return fmt.Sprintf("; appliance and ceiling processes at nice %d, the NAPI threads at nice %d while they run (0 for nftables and xdp-redirect)", n, napi)
}

// pinned is the command prefix of a user-space system under test: pinned to its core and, with
// Config.Nice, reniced.
func (r *runner) pinned() []string {
	argv := []string{"taskset", "-c", strconv.Itoa(r.cfg.ApplianceCPU)}
	if r.cfg.Nice != 0 {
		argv = append(argv, "nice", "-n", strconv.Itoa(r.cfg.Nice))
	}
	return argv
}

func nftVersion(ctx context.Context, n *lab.NS) string {
	out, err := n.Run(ctx, "nft", "--version")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func (r *runner) startCeiling(ctx context.Context) (*system, error) {
	p, err := r.startForwarder(ctx, "ceiling forwarder")
	if err != nil {
		return nil, err
	}
	if _, ok := r.res.Modes[SystemCeiling]; !ok {
		r.res.Modes[SystemCeiling] = "asavie/xdp redirect-all program, native (driver) XDP on ext0 via bpf_link; AF_XDP copy mode, two UMEMs (ext0 q0 → int0 q0)"
	}
	stop := func() error {
		p.Stop()
		// The bpf_link goes with the process; remove any XDP program left on ext0 anyway.
		_, _ = r.node.Run(context.Background(), "ip", "link", "set", "dev", lab.NodeExternalIface, "xdp", "off")
		if out := p.Output(); !strings.Contains(out, "Forwarded") {
			return fmt.Errorf("forwarder ended without stats: %s", out)
		}
		return nil
	}
	return &system{pid: p.PID, stop: stop}, nil
}

// startXDPRedirect attaches the in-kernel XDP redirect program (the forwarder helper in --mode xdp,
// in the node namespace) on ext0 toward int0. Frames XDP-redirected into a veth are dropped unless
// the peer has XDP or GRO on (PLATFORM.md): GRO goes on for int0's peer in the switch namespace
// while this system runs, and back off after.
func (r *runner) startXDPRedirect(ctx context.Context) (*system, error) {
	peer := r.node.Cluster().SwitchPort
	if _, err := r.lab.Switch.Run(ctx, "ethtool", "-K", peer, "gro", "on"); err != nil {
		return nil, fmt.Errorf("GRO on %s (int0's peer): %w", peer, err)
	}
	groOff := func() { _, _ = r.lab.Switch.Run(context.Background(), "ethtool", "-K", peer, "gro", "off") }
	p, err := r.startForwarder(ctx, "xdp redirect program", "--mode", "xdp")
	if err != nil {
		groOff()
		return nil, err
	}
	if _, ok := r.res.Modes[SystemXDPRedirect]; !ok {
		r.res.Modes[SystemXDPRedirect] = "cilium/ebpf XDP program, native (driver) mode on ext0 via bpf_link: MAC rewrite + bpf_redirect to int0 (GRO on int0's peer)"
	}
	stop := func() error {
		p.Stop()
		_, _ = r.node.Run(context.Background(), "ip", "link", "set", "dev", lab.NodeExternalIface, "xdp", "off")
		groOff()
		if out := p.Output(); !strings.Contains(out, "Forwarded") {
			return fmt.Errorf("xdp redirect program ended without its final line: %s", out)
		}
		return nil
	}
	return &system{pid: p.PID, stop: stop}, nil
}

// startForwarder starts the forwarder helper (the ceiling, or with --mode xdp the XDP redirect) in
// the node namespace, pinned, from ext0 to int0, and waits until it says "ready". Its frames go to
// every backend of the Service, so that they fan out over the same backend links and sinks as the
// appliance's and the kernel's (1 flow: one backend; many: all).
func (r *runner) startForwarder(ctx context.Context, what string, args ...string) (*lab.Process, error) {
	var macs []string
	for _, b := range r.lab.Backends {
		macs = append(macs, b.Ifaces[0].MAC.String())
	}
	argv := append(r.pinned(), r.cfg.ForwarderArgv...)
	argv = append(argv, args...)
	argv = append(argv, "--in", lab.NodeExternalIface, "--out", lab.NodeClusterIface, "--dst-mac", strings.Join(macs, ","))
	p, err := r.node.Start(argv...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(r.cfg.StartTimeout)
	for !strings.Contains(p.Output(), "ready") {
		select {
		case <-p.Done():
			// The kernel releases the previous forwarder's queue binding shortly after it exits: retry.
			if strings.Contains(p.Output(), "busy") && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				if p, err = r.node.Start(argv...); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("%s exited: %v\n%s", what, p.Err(), p.Output())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s not ready after %v:\n%s", what, r.cfg.StartTimeout, p.Output())
		}
	}
	return p, nil
}

// warmUp sends short UDP bursts (not recorded) until the backends' sinks count some, bounded by
// StartTimeout: the first frames after an XDP attach or a ruleset load can be lost while the path settles.
func (r *runner) warmUp(ctx context.Context, s *system) error {
	deadline := time.Now().Add(r.cfg.StartTimeout)
	sc := Scenario{Name: "warm-up", Kind: KindUDP, Flows: 1, FrameSize: 64}
	for {
		var run Run
		r.packets(ctx, s, sc, &run, 2000, 200*time.Millisecond)
		if run.Error == "" && run.Received > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: no UDP frame reached the backends within %v (%s)", r.cfg.StartTimeout, run.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// packets runs one generator measurement with sinks on every backend.
func (r *runner) packets(ctx context.Context, s *system, sc Scenario, run *Run, maxPackets uint64, d time.Duration) {
	proto, port := pktgen.ProtoUDP, uint16(udpPort)
	switch sc.Kind {
	case KindSYN:
		proto, port = pktgen.ProtoTCPSYN, tcpPort
	case KindACK:
		proto, port = pktgen.ProtoTCPACK, tcpPort
	}
	var sinks []*sink.Sink
	defer func() {
		for _, sk := range sinks {
			_ = sk.Close()
		}
	}()
	for _, b := range r.lab.Backends {
		err := b.Do(func() error {
			l, err := netlink.LinkByName(lab.HostIface)
			if err != nil {
				return err
			}
			sk, err := sink.Attach(l.Attrs().Index, sink.Filter{Proto: proto.IPProto(), DstPort: port})
			if err != nil {
				return err
			}
			sinks = append(sinks, sk)
			return nil
		})
		if err != nil {
			run.Error = fmt.Sprintf("sink in %s: %v", b.Name, err)
			return
		}
	}
	// Start each measurement with an empty kernel conntrack table on the node (nftables' state).
	_ = r.node.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })

	cfg := pktgen.DefaultConfig()
	cfg.Iface = lab.HostIface
	cfg.DstMAC = r.node.External().MAC
	cfg.DstPrefix = netip.PrefixFrom(vip, 32)
	cfg.DstPorts = pktgen.PortRange{First: port}
	cfg.Proto = proto
	cfg.Flows = sc.Flows
	cfg.FrameSize = sc.FrameSize
	cfg.MaxPackets = maxPackets
	cfg.MaxDuration = d
	cfg.TxRingSize = 4096
	cfg.TxSkbBudget = 256
	if sc.Flows > 60_000 {
		// More flows than one source address has ports: spread them over 198.18.0.128/25.
		cfg.SrcPrefix = netip.MustParsePrefix("198.18.0.128/25")
	}
	if sc.Kind == KindSYN {
		// Every SYN from its own 5-tuple: a conntrack insert per packet, for every system.
		cfg.MaxPackets = min(cfg.MaxPackets, uint64(sc.Flows))
	}

	var prof chan string
	if r.cfg.Profile && run.Round == 1 && (sc.Kind == KindUDP || sc.Kind == KindSYN) {
		prof = make(chan string, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			d := r.cfg.Duration * 7 / 10
			if sc.Kind == KindSYN {
				// A flood lasts as long as its SYNs: 0.4 s and more for 100k at the generator's rate.
				d = min(d, 200*time.Millisecond)
			}
			out, err := Profile(ctx, r.cfg.ApplianceCPU, d, r.dir)
			if err != nil {
				out = err.Error()
			}
			prof <- out
		}()
	}
	var before, after cpuSample
	before = r.sample(s)
	var res pktgen.Result
	err := r.client.Do(func() error {
		if err := pinTask(0, r.cfg.GeneratorCPU); err != nil {
			return err
		}
		var err error
		res, err = pktgen.Run(ctx, cfg)
		return err
	})
	after = r.sample(s)
	if prof != nil {
		out := <-prof
		name := "perf-" + string(run.System) + "-" + sc.Name + ".txt"
		_ = os.WriteFile(filepath.Join(r.cfg.OutDir, name), []byte(out), 0o644)
		r.res.Notes = append(r.res.Notes, "perf record -e cpu-clock -g -C "+strconv.Itoa(r.cfg.ApplianceCPU)+" during round 1 "+string(run.System)+" "+sc.Name+": "+name)
	}
	if err != nil {
		run.Error = err.Error()
		return
	}
	var pkts, byts uint64
	for _, sk := range sinks {
		p, b := settled(sk)
		pkts += p
		byts += b
	}
	el := res.Elapsed.Seconds()
	run.Offered = res.Sent - res.Failed
	run.OfferedPPS = res.OfferedPPS
	run.Received = pkts
	run.ElapsedSeconds = el
	run.StoppedBy = res.StoppedBy
	if el > 0 {
		run.ReceivedPPS = float64(pkts) / el
		run.ReceivedBitsPerSecond = float64(byts) * 8 / el
	}
	run.CoreBusySeconds = float64(after.core-before.core) / clockTicks
	run.ProcessCPUSeconds = float64(after.proc-before.proc) / clockTicks
	run.NAPICPUSeconds = float64(after.napi-before.napi) / clockTicks
	if after.counters != nil {
		run.ApplianceCounters = map[string]float64{}
		for k, v := range after.counters {
			if d := v - before.counters[k]; d != 0 {
				run.ApplianceCounters[k] = d
			}
		}
	}
	if pkts > 0 {
		run.NsPerPacket = run.CoreBusySeconds * 1e9 / float64(pkts)
	}
}

type cpuSample struct {
	core, proc, napi uint64
	counters         map[string]float64
}

// applianceCounters reads the appliance's packet counters from /metrics (nil for other systems).
func (r *runner) applianceCounters() map[string]float64 {
	hc := lab.HTTPClient(r.node)
	hc.Timeout = 2 * time.Second
	resp, err := hc.Get("http://" + adminAt + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "appliance_received_packets_total") && !strings.HasPrefix(line, "appliance_transmitted_packets_total") &&
			!strings.HasPrefix(line, "appliance_dropped_packets_total") && !strings.HasPrefix(line, "appliance_xsk_ring_events_total") &&
			!strings.HasPrefix(line, "appliance_steering_frames_total") && !strings.HasPrefix(line, "appliance_conntrack_events_total") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] += v
	}
	return out
}

func (r *runner) sample(s *system) cpuSample {
	var c cpuSample
	c.core, _ = cpuBusyTicks(r.cfg.ApplianceCPU)
	if s.pid > 0 {
		c.proc, _ = taskTicks(s.pid)
	}
	for _, t := range r.napi {
		n, _ := taskTicks(t)
		c.napi += n
	}
	if s.appliance {
		c.counters = r.applianceCounters()
	}
	return c
}

// settled waits (bounded) until a sink's count stops changing.
func settled(s *sink.Sink) (pkts, byts uint64) {
	deadline := time.Now().Add(2 * time.Second)
	prev := ^uint64(0)
	for {
		st, err := s.Stats()
		if err != nil {
			return 0, 0
		}
		if st.Packets == prev || time.Now().After(deadline) {
			return st.Packets, st.Bytes
		}
		prev = st.Packets
		time.Sleep(50 * time.Millisecond)
	}
}

// latency sends LatencySamples requests of 64 bytes at LatencyRatePPS over one TCP connection through the VIP
// to a backend's echo port and records each round trip.
func (r *runner) latency(ctx context.Context, run *Run) {
	bound := time.Duration(float64(r.cfg.LatencySamples)/float64(r.cfg.LatencyRatePPS)*float64(time.Second)) + 5*time.Second
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	c, err := r.client.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, echoPort).String())
	if err != nil {
		run.Error = err.Error()
		return
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	msg := bytes.Repeat([]byte{'x'}, 64)
	buf := make([]byte, 64)
	interval := time.Second / time.Duration(r.cfg.LatencyRatePPS)
	next := time.Now()
	for i := 0; i < r.cfg.LatencySamples && ctx.Err() == nil; i++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			run.LatencyErrors++
			break
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			run.LatencyErrors++
			break
		}
		run.LatencyMicros = append(run.LatencyMicros, math.Round(float64(time.Since(t0).Nanoseconds())/100)/10) // 0.1 µs
	}
	if len(run.LatencyMicros) == 0 {
		run.Error = fmt.Sprintf("no round trip completed (%d errors)", run.LatencyErrors)
		return
	}
	run.P50Micros = percentile(run.LatencyMicros, 50)
	run.P99Micros = percentile(run.LatencyMicros, 99)
}

// percentile is the nearest-rank percentile of xs (not modified).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Profile records `perf record -e cpu-clock -g` of everything on one core (the appliance process, its NAPI
// threads and the softirqs there) for d and returns perf report's top symbols: by program, by symbol (self
// time) and by symbol with callees included.
func Profile(ctx context.Context, cpu int, d time.Duration, dir string) (string, error) {
	data := filepath.Join(dir, "perf.data")
	rec := exec.CommandContext(ctx, "perf", "record", "-e", "cpu-clock", "-g", "-C", strconv.Itoa(cpu), "-o", data, "--", "sleep", fmt.Sprint(d.Seconds()))
	if out, err := rec.CombinedOutput(); err != nil {
		return "", fmt.Errorf("perf record: %w: %s", err, out)
	}
	rep := exec.CommandContext(ctx, "perf", "report", "-i", data, "--no-children", "--sort", "comm,dso", "--stdio", "-g", "none", "--percent-limit", "1")
	byDSO, err := rep.Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	rep = exec.CommandContext(ctx, "perf", "report", "-i", data, "--no-children", "--sort", "comm,symbol", "--stdio", "-g", "none", "--percent-limit", "0.7")
	bySym, err := rep.Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	// Inclusive time (callees counted in their callers): which syscalls and kernel paths the
	// process's time goes to.
	rep = exec.CommandContext(ctx, "perf", "report", "-i", data, "--children", "--sort", "comm,symbol", "--stdio", "-g", "none", "--percent-limit", "2")
	inclusive, err := rep.Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	var b strings.Builder
	for _, part := range [][]byte{byDSO, bySym, inclusive} {
		for _, line := range strings.Split(string(part), "\n") {
			if line = strings.TrimRight(line, " -"); line != "" && !strings.HasPrefix(line, "# (Tip") {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String(), nil
}
