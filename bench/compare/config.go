package compare

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// System is one of the packet paths compared.
type System string

// The systems, in the order they run within a round.
const (
	// SystemAppliance is the appliance program (LoadBalancer VIP, full NAT to the backends).
	SystemAppliance System = "appliance"
	// SystemNFTables is the kernel path of kube-proxy's nftables mode: DNAT + masquerade in table ip kube-proxy.
	SystemNFTables System = "nftables"
	// SystemCeiling is a minimal AF_XDP forwarder that only rewrites MACs (ext0 → int0, copy between UMEMs).
	SystemCeiling System = "ceiling"
	// SystemXDPRedirect is an in-kernel XDP program that rewrites the MACs and bpf_redirects
	// ext0 → int0: the rate of the kernel's own fast path on this link (no AF_XDP, no NAT).
	SystemXDPRedirect System = "xdp-redirect"
)

// AllSystems lists every system in run order.
var AllSystems = []System{SystemAppliance, SystemNFTables, SystemCeiling, SystemXDPRedirect}

// Kind is what a scenario sends and measures.
type Kind string

// The scenario kinds.
const (
	// KindUDP is 64-byte UDP frames flat out; measures forwarded packets per second.
	KindUDP Kind = "udp"
	// KindSYN is a flood of TCP SYNs, each from its own 5-tuple; measures new connections per second.
	KindSYN Kind = "syn"
	// KindACK is large TCP ACK frames of one established-looking flow; measures throughput.
	KindACK Kind = "ack"
	// KindLatency is TCP request/response over real sockets at a fixed rate; measures round-trip times.
	KindLatency Kind = "latency"
)

// Scenario is one traffic pattern.
type Scenario struct {
	// Name identifies it on the command line and in the outputs.
	Name string `json:"name"`
	// Kind is what is sent and measured.
	Kind Kind `json:"kind"`
	// Flows is the number of distinct 5-tuples the generator cycles through (packet kinds only).
	Flows int `json:"flows,omitempty"`
	// FrameSize is the Ethernet frame size in bytes including FCS (packet kinds only).
	FrameSize int `json:"frameSize,omitempty"`
}

// Unit is the unit of the scenario's headline figure.
func (s Scenario) Unit() string {
	switch s.Kind {
	case KindSYN:
		return "conn/s"
	case KindLatency:
		return "µs p50"
	}
	return "pps"
}

// AllScenarios are the scenarios of issue 6.
var AllScenarios = []Scenario{
	{Name: "udp64-1flow", Kind: KindUDP, Flows: 1, FrameSize: 64},
	{Name: "udp64-1kflows", Kind: KindUDP, Flows: 1000, FrameSize: 64},
	{Name: "udp64-100kflows", Kind: KindUDP, Flows: 100_000, FrameSize: 64},
	{Name: "tcp-syn-newconn", Kind: KindSYN, Flows: 100_000, FrameSize: 64},
	// 250k SYNs last about a second at these rates (36k, as before, lasted 0.1 s: too short to
	// measure), and fit nf_conntrack_max (262,144) and the appliance's SNAT port space.
	{Name: "tcp-syn-250kconn", Kind: KindSYN, Flows: 250_000, FrameSize: 64},
	{Name: "tcp-ack-1500", Kind: KindACK, Flows: 1, FrameSize: 1518},
	{Name: "tcp-rr-latency", Kind: KindLatency},
}

// Config says what to compare and for how long.
type Config struct {
	// ApplianceBin is the path of the appliance program (make build writes bin/appliance).
	ApplianceBin string
	// ForwarderArgv is the command that runs the ceiling forwarder: ForwarderMain behind a (hidden)
	// subcommand, e.g. [/path/to/bench compare-forwarder]; the flags are appended.
	ForwarderArgv []string
	// Rounds is how many times every system runs every scenario (per scenario: A B C D A B C D ...).
	Rounds int
	// Duration bounds each packet measurement in time.
	Duration time.Duration
	// MaxPackets bounds each packet measurement in packets.
	MaxPackets uint64
	// Scenarios are the scenarios to run (names of AllScenarios; empty means all).
	Scenarios []string
	// Systems are the systems to compare (empty means all); the appliance is always included, ratios need it.
	Systems []System
	// FlowsScale divides every scenario's flow count (1 = as listed; the smoke test uses a large value).
	FlowsScale int
	// LatencyRatePPS is the request rate of the latency scenario (requests per second).
	LatencyRatePPS int
	// LatencySamples is how many requests the latency scenario sends per measurement.
	LatencySamples int
	// GeneratorCPU is the core the generator runs on; ApplianceCPU the core of the system under test (its
	// process and the NAPI threads of the node's interfaces).
	GeneratorCPU, ApplianceCPU int
	// Nice is the niceness the user-space systems (the appliance and the ceiling forwarder) run
	// at; 0 leaves them at the default. Their core also runs the ingress NAPI thread, which at
	// saturation keeps feeding frames the process has no time to take (see NAPINice): a
	// negative value gives the process the larger share. The same value applies to both, so
	// their ratio stays a like-for-like comparison.
	Nice int
	// NAPINice is the niceness of the node's NAPI threads while a user-space system runs (the
	// kernel systems keep them at 0: all their work is done there). A NAPI thread that gets the
	// core while the process is busy copies frames into an AF_XDP ring the process has not
	// emptied yet, and the kernel drops them there after paying for their receive: at 19 it runs
	// when the process waits for frames, and the surplus is dropped at the veth's ring instead,
	// on the sender's core. The same value applies to the appliance and the ceiling.
	NAPINice int
	// OutDir receives results.json, results.md and the PNG plots.
	OutDir string
	// Progress receives one line per phase with the time left (nil: none).
	Progress io.Writer
	// StartTimeout bounds the wait for the appliance's /healthz and the forwarder's readiness.
	StartTimeout time.Duration
	// Command is the command line recorded in the results (informational).
	Command string
	// Profile, when set, records `perf record -e cpu-clock -g` of the system-under-test core during the first round of each
	// UDP and SYN scenario of every system and writes the top symbols to OutDir/perf-<system>-<scenario>.txt.
	Profile bool
}

// DefaultConfig is 3 rounds of every scenario and system, 5 s or 5e6 packets per measurement.
func DefaultConfig() Config {
	return Config{
		ApplianceBin:   "bin/appliance",
		Rounds:         3,
		Duration:       5 * time.Second,
		MaxPackets:     5_000_000,
		FlowsScale:     1,
		LatencyRatePPS: 1000,
		LatencySamples: 2000,
		GeneratorCPU:   0,
		ApplianceCPU:   1,
		Nice:           -10,
		NAPINice:       19,
		OutDir:         "bench/results",
		StartTimeout:   20 * time.Second,
	}
}

// QuickConfig is the smoke-test size: one round, tiny counts, every scenario and system.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Rounds = 1
	c.Duration = 300 * time.Millisecond
	c.MaxPackets = 20_000
	c.FlowsScale = 100
	c.LatencySamples = 50
	return c
}

// scenarios resolves the configured names.
func (c Config) scenarios() ([]Scenario, error) {
	if len(c.Scenarios) == 0 {
		return slices.Clone(AllScenarios), nil
	}
	var out []Scenario
	for _, name := range c.Scenarios {
		i := slices.IndexFunc(AllScenarios, func(s Scenario) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range AllScenarios {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("scenario %q: want one of %s", name, strings.Join(names, ", "))
		}
		out = append(out, AllScenarios[i])
	}
	return out, nil
}

// systems resolves the configured systems, appliance first.
func (c Config) systems() ([]System, error) {
	out := []System{SystemAppliance}
	for _, s := range c.Systems {
		if !slices.Contains(AllSystems, s) {
			return nil, fmt.Errorf("system %q: want appliance, nftables or ceiling", s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(c.Systems) == 0 {
		out = slices.Clone(AllSystems)
	}
	return out, nil
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []string
	if c.ApplianceBin == "" {
		errs = append(errs, "appliance program: required")
	}
	if len(c.ForwarderArgv) == 0 {
		errs = append(errs, "forwarder command: required")
	}
	if c.Rounds < 1 || c.Rounds > 20 {
		errs = append(errs, fmt.Sprintf("rounds: %d is outside 1..20", c.Rounds))
	}
	if c.Duration <= 0 || c.Duration > time.Minute {
		errs = append(errs, fmt.Sprintf("duration: %v is outside (0, 1m]", c.Duration))
	}
	if c.MaxPackets == 0 {
		errs = append(errs, "max packets: required")
	}
	if c.FlowsScale < 1 {
		errs = append(errs, "flows scale: must be at least 1")
	}
	if c.LatencyRatePPS < 1 || c.LatencySamples < 1 {
		errs = append(errs, "latency rate and samples: must be positive")
	}
	if c.GeneratorCPU == c.ApplianceCPU || c.GeneratorCPU < 0 || c.ApplianceCPU < 0 {
		errs = append(errs, fmt.Sprintf("cpus: generator %d and appliance %d must be distinct cores", c.GeneratorCPU, c.ApplianceCPU))
	}
	if c.Nice < -20 || c.Nice > 19 || c.NAPINice < -20 || c.NAPINice > 19 {
		errs = append(errs, fmt.Sprintf("niceness %d / NAPI %d: must be in -20..19", c.Nice, c.NAPINice))
	}
	if c.OutDir == "" {
		errs = append(errs, "output folder: required")
	}
	if _, err := c.scenarios(); err != nil {
		errs = append(errs, err.Error())
	}
	if _, err := c.systems(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("compare config: %s", strings.Join(errs, "; "))
	}
	return nil
}
