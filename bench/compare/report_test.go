package compare

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/bench/outputs"
)

// fakeResult is two rounds in which the appliance forwards 1.0 then 2.0 Mpps and nftables half of that.
func fakeResult() *Result {
	res := &Result{Provenance: outputs.Provenance{Machine: outputs.DescribeMachine()}, Rounds: 2, Systems: AllSystems, Scenarios: []Scenario{AllScenarios[0], AllScenarios[3], AllScenarios[6]}}
	for round, a := range []float64{1e6, 2e6} {
		rd := round + 1
		res.Runs = append(res.Runs,
			Run{Round: rd, System: SystemAppliance, Scenario: "udp64-1flow", Kind: KindUDP, ReceivedPPS: a, NsPerPacket: 500},
			Run{Round: rd, System: SystemNFTables, Scenario: "udp64-1flow", Kind: KindUDP, ReceivedPPS: a / 2, NsPerPacket: 1500},
			Run{Round: rd, System: SystemCeiling, Scenario: "udp64-1flow", Kind: KindUDP, ReceivedPPS: a * 1.25},
			Run{Round: rd, System: SystemAppliance, Scenario: "tcp-syn-newconn", Kind: KindSYN, ReceivedPPS: 3e5},
			Run{Round: rd, System: SystemNFTables, Scenario: "tcp-syn-newconn", Kind: KindSYN, ReceivedPPS: 1e5},
			Run{Round: rd, System: SystemCeiling, Scenario: "tcp-syn-newconn", Kind: KindSYN, Error: "boom"},
			Run{Round: rd, System: SystemAppliance, Scenario: "tcp-rr-latency", Kind: KindLatency, P50Micros: 50, P99Micros: 90, LatencyMicros: []float64{40, 50, 90}},
			Run{Round: rd, System: SystemNFTables, Scenario: "tcp-rr-latency", Kind: KindLatency, P50Micros: 100, P99Micros: 300, LatencyMicros: []float64{100, 110, 300}},
			Run{Round: rd, System: SystemCeiling, Scenario: "tcp-rr-latency", Kind: KindLatency, Skipped: "no NAT"},
		)
	}
	return res
}

func TestSummarize(t *testing.T) {
	cells := Summarize(fakeResult())
	tests := []struct {
		name      string
		scen      string
		sys       System
		median    float64
		ratio     float64
		n         int
		nsPerPkt  float64
		skipped   bool
		wantEmpty bool
	}{
		{name: "appliance udp", scen: "udp64-1flow", sys: SystemAppliance, median: 1.5e6, ratio: 1, n: 2, nsPerPkt: 500},
		{name: "nftables udp pairs by round", scen: "udp64-1flow", sys: SystemNFTables, median: 0.75e6, ratio: 0.5, n: 2, nsPerPkt: 1500},
		{name: "ceiling udp", scen: "udp64-1flow", sys: SystemCeiling, median: 1.875e6, ratio: 1.25, n: 2, nsPerPkt: math.NaN()},
		{name: "nftables syn", scen: "tcp-syn-newconn", sys: SystemNFTables, median: 1e5, ratio: 1.0 / 3, n: 2, nsPerPkt: math.NaN()},
		{name: "failed runs are left out", scen: "tcp-syn-newconn", sys: SystemCeiling, wantEmpty: true},
		{name: "latency p50", scen: "tcp-rr-latency", sys: SystemNFTables, median: 100, ratio: 2, n: 2, nsPerPkt: math.NaN()},
		{name: "skipped", scen: "tcp-rr-latency", sys: SystemCeiling, wantEmpty: true, skipped: true},
	}
	same := func(a, b float64) bool {
		return math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cells[tc.scen][tc.sys]
			if tc.wantEmpty {
				if c.N != 0 || !math.IsNaN(c.Median) || (tc.skipped && c.Skipped == "") {
					t.Fatalf("cell %+v, want empty (skipped %v)", c, tc.skipped)
				}
				return
			}
			if c.N != tc.n || !same(c.Median, tc.median) || !same(c.Ratio, tc.ratio) || !same(c.NsPerPacket, tc.nsPerPkt) {
				t.Fatalf("cell %+v, want median %v ratio %v n %d ns/pkt %v", c, tc.median, tc.ratio, tc.n, tc.nsPerPkt)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	res := fakeResult()
	ts := Targets(res, Summarize(res))
	want := map[string]struct {
		got float64
		met bool
	}{
		"udp64-1flow: appliance / nftables pps":                   {2, true},
		"udp64-1flow: appliance / MAC-swap ceiling pps":           {0.8, false},
		"tcp-syn-newconn: appliance / nftables new connections/s": {3, true},
	}
	if len(ts) != len(want) {
		t.Fatalf("targets %+v, want %d", ts, len(want))
	}
	for _, tg := range ts {
		w, ok := want[tg.Name]
		if !ok || math.Abs(tg.Got-w.got) > 1e-9 || tg.Met != w.met {
			t.Errorf("target %+v, want %+v", tg, w)
		}
	}
}

func TestPercentileAndMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"p50 odd", []float64{3, 1, 2}, 50, 2},
		{"p99 of 100", seq(100), 99, 99},
		{"p50 of 100", seq(100), 50, 50},
		{"p100", []float64{5, 9}, 100, 9},
		{"p1 small", []float64{5, 9}, 1, 5},
		{"empty", nil, 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.xs, tc.p); got != tc.want {
				t.Fatalf("percentile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
			}
		})
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v, want 2.5", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing must be NaN")
	}
}

func seq(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(n - i)
	}
	return xs
}

// checkOutputs verifies the output folder is well-formed: JSON decodes with every run, the markdown table has
// a row per scenario and columns per system, and the PNGs decode.
func checkOutputs(t *testing.T, dir string, res *Result) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(back.Runs) != len(res.Runs) || len(back.Scenarios) != len(res.Scenarios) || back.Machine.GoVersion == "" {
		t.Errorf("results.json: %d runs, %d scenarios, go %q; want %d, %d, set", len(back.Runs), len(back.Scenarios), back.Machine.GoVersion, len(res.Runs), len(res.Scenarios))
	}
	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(md), "\n")
	header := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "| scenario |") {
			header = l
		}
	}
	for _, sys := range res.Systems {
		if !strings.Contains(header, " "+string(sys)+" |") {
			t.Errorf("markdown header %q lacks system %s", header, sys)
		}
	}
	for _, sc := range res.Scenarios {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+sc.Name+" |") && strings.Count(l, "|") == strings.Count(header, "|") {
				found = true
			}
		}
		if !found {
			t.Errorf("markdown lacks a full row for %s:\n%s", sc.Name, md)
		}
	}
	for _, p := range []string{ThroughputPlot, LatencyPlot} {
		if err := outputs.CheckPlot(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
}

func TestWriteOutputs(t *testing.T) {
	res := fakeResult()
	dir := t.TempDir()
	if err := WriteOutputs(res, dir); err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, dir, res)
	var b bytes.Buffer
	if err := WriteMarkdown(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.50×", "p50 100 µs, p99 300 µs", "| udp64-1flow: appliance / nftables pps | ≥ 1.50× | 2.00× | yes |", "n/a"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

func TestProcParsers(t *testing.T) {
	stat := []byte("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 10 0 5 100 7 1 2 3 0 0\ncpu1 20 1 10 200 9 4 5 6 0 0\nintr 1\n")
	tests := []struct {
		name string
		cpu  int
		want uint64
		err  bool
	}{
		{"cpu0 busy excludes idle and iowait", 0, 10 + 0 + 5 + 1 + 2 + 3, false},
		{"cpu1", 1, 20 + 1 + 10 + 4 + 5 + 6, false},
		{"missing cpu", 7, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUBusy(stat, tc.cpu)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseCPUBusy = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
	task := []byte("4242 (napi/ext0-8 (x)) S 2 0 0 0 -1 2129984 0 0 0 0 17 25 0 0 20 0 1 0 123 0 0")
	if got, err := parseTaskTicks(task); err != nil || got != 42 {
		t.Fatalf("parseTaskTicks = %d, %v; want 42", got, err)
	}
	if _, err := parseTaskTicks([]byte("garbage")); err == nil {
		t.Fatal("parseTaskTicks(garbage): want an error")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.ForwarderArgv = []string{"bench", "compare-forwarder"}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default is valid", func(*Config) {}, ""},
		{"quick is valid", func(c *Config) { q := QuickConfig(); q.ForwarderArgv = c.ForwarderArgv; *c = q }, ""},
		{"unknown scenario", func(c *Config) { c.Scenarios = []string{"nope"} }, `scenario "nope"`},
		{"unknown system", func(c *Config) { c.Systems = []System{"ipvs"} }, `system "ipvs"`},
		{"same cpus", func(c *Config) { c.ApplianceCPU = c.GeneratorCPU }, "distinct cores"},
		{"no forwarder", func(c *Config) { c.ForwarderArgv = nil }, "forwarder command"},
		{"unbounded", func(c *Config) { c.MaxPackets = 0 }, "max packets"},
		{"too many rounds", func(c *Config) { c.Rounds = 99 }, "rounds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	c := ok
	c.Systems = []System{SystemCeiling}
	if got, _ := c.systems(); len(got) != 2 || got[0] != SystemAppliance {
		t.Errorf("systems() = %v, want the appliance first", got)
	}
}
