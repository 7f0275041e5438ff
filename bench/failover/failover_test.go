package failover

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/outputs"
)

func ok(start, dur float64) Attempt {
	return Attempt{StartMillis: start, DurationMillis: dur, OK: true}
}
func fail(start float64) Attempt {
	return Attempt{StartMillis: start, DurationMillis: 200, Err: "timeout"}
}

func TestAnalyze(t *testing.T) {
	tests := []struct {
		name     string
		attempts []Attempt
		want     Outcome
	}{
		{
			name:     "no attempt",
			attempts: nil,
			want:     Outcome{NoOutage: true},
		},
		{
			name:     "only failures: never served",
			attempts: []Attempt{fail(0), fail(20), fail(40)},
			want:     Outcome{Attempts: 3, FailedAttempts: 3},
		},
		{
			name:     "outage then served",
			attempts: []Attempt{ok(-40, 1), ok(-20, 1), fail(0), fail(20), fail(40), ok(60, 2), ok(80, 1)},
			want:     Outcome{Served: true, ServedAgainMillis: 62, SteadyMillis: 62, Attempts: 5, FailedAttempts: 3},
		},
		{
			name:     "success just after the kill before the outage does not count",
			attempts: []Attempt{ok(0.5, 1), fail(20), fail(40), ok(900, 3)},
			want:     Outcome{Served: true, ServedAgainMillis: 903, SteadyMillis: 903, Attempts: 4, FailedAttempts: 2},
		},
		{
			name:     "flap after serving again: steady later",
			attempts: []Attempt{fail(0), ok(500, 5), fail(520), ok(540, 2), ok(560, 1)},
			want:     Outcome{Served: true, ServedAgainMillis: 505, SteadyMillis: 542, Attempts: 5, FailedAttempts: 2, FlapAttempts: 1},
		},
		{
			name:     "no outage at all",
			attempts: []Attempt{ok(-20, 1), ok(0, 3), ok(20, 1)},
			want:     Outcome{Served: true, ServedAgainMillis: 3, SteadyMillis: 3, NoOutage: true, Attempts: 2},
		},
		{
			name:     "failing at the end: not steady",
			attempts: []Attempt{fail(0), ok(300, 1), fail(320)},
			want:     Outcome{Served: true, ServedAgainMillis: 301, SteadyMillis: math.NaN(), Attempts: 3, FailedAttempts: 2, FlapAttempts: 1},
		},
		{
			name:     "any order",
			attempts: []Attempt{ok(80, 1), fail(40), ok(60, 2), fail(0)},
			want:     Outcome{Served: true, ServedAgainMillis: 62, SteadyMillis: 62, Attempts: 4, FailedAttempts: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Analyze(tc.attempts)
			same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
			if got.Served != tc.want.Served || !same(got.ServedAgainMillis, tc.want.ServedAgainMillis) ||
				!same(got.SteadyMillis, tc.want.SteadyMillis) || got.NoOutage != tc.want.NoOutage ||
				got.Attempts != tc.want.Attempts || got.FailedAttempts != tc.want.FailedAttempts || got.FlapAttempts != tc.want.FlapAttempts {
				t.Errorf("Analyze = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, math.NaN()},
		{"one", []float64{7}, 90, 7},
		{"min", []float64{3, 1, 2}, 0, 1},
		{"median of odd", []float64{3, 1, 2}, 50, 2},
		{"median of even: lower", []float64{4, 1, 3, 2}, 50, 2},
		{"p90 of ten", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 90, 9},
		{"max", []float64{10, 9, 8}, 100, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Percentile(tc.xs, tc.p)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }

// fakeResult has n kills with served-again figures of served[i] ms and broken long-lived connections.
func fakeResult(served []float64, broken int) *Result {
	res := &Result{Nodes: 3, Backends: 2, Conns: 2, AttemptIntervalMillis: 20, AttemptTimeoutMillis: 200, EchoIntervalMillis: 50}
	for i, s := range served {
		k := Kill{Index: i + 1, Owner: "lb-1", NewOwner: "lb-2", ServedAgainMillis: s, SteadyMillis: ptr(s + 5),
			ApplianceFailoverMillis: ptr(0.02), KilledAt: time.Unix(1700000000, 0).UTC(), RestartMillis: 900}
		for j := range 2 {
			k.LongLived = append(k.LongLived, LongLived{Echoes: 30, MaxStallMillis: s + float64(j)})
		}
		if i == 0 && broken > 0 {
			k.Broken = broken
			for j := range broken {
				k.LongLived[j].Broken, k.LongLived[j].Err = true, "reset"
			}
		}
		for ms := -100.0; ms < s+200; ms += 20 {
			a := Attempt{StartMillis: ms, DurationMillis: 1, OK: ms < 0 || ms+200 > s}
			if !a.OK {
				a.DurationMillis, a.Err = 200, "timeout"
			}
			k.Timeline = append(k.Timeline, a)
		}
		res.Kills = append(res.Kills, k)
	}
	return res
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name   string
		served []float64
		broken int
		want   [3]bool
	}{
		{"all met", []float64{600, 700, 800, 900, 1500}, 0, [3]bool{true, true, true}},
		{"median missed", []float64{1100, 1200, 900}, 0, [3]bool{false, true, true}},
		{"worst missed", []float64{500, 600, 2500}, 0, [3]bool{true, false, true}},
		{"broken connection", []float64{500}, 1, [3]bool{true, true, false}},
		{"no kills: nothing met", nil, 0, [3]bool{false, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := Targets(Summarize(fakeResult(tc.served, tc.broken)))
			for i, want := range tc.want {
				if ts[i].Met != want {
					t.Errorf("%s: met %v, want %v (got %s)", ts[i].Name, ts[i].Met, want, ts[i].Got)
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize(fakeResult([]float64{900, 600, 1200}, 1))
	if s.Kills != 3 || s.Min != 600 || s.Median != 900 || s.Max != 1200 || s.Broken != 1 || s.Conns != 6 {
		t.Errorf("summary %+v", s)
	}
	if s.SteadyMedian != 905 || s.ApplianceMedian != 0.02 || s.StallMax != 1201 {
		t.Errorf("summary %+v", s)
	}
}

func TestWriteOutputs(t *testing.T) {
	tests := []struct {
		name   string
		res    *Result
		wantMD []string
	}{
		{"ten kills", fakeResult([]float64{600, 700, 800, 900, 950, 980, 1000, 1100, 1500, 2100}, 0),
			[]string{"| 10 | 600 ms | 950 ms | 1500 ms | 2100 ms |", "| VIP serving again after owner death, worst | < 2 s | 2.100 s | no |", "| established TCP connections broken | 0 | 0 of 20 | yes |", "0.020 ms"}},
		{"one kill with a broken connection", fakeResult([]float64{812}, 1),
			[]string{"| 1 | 812 ms |", "| established TCP connections broken | 0 | 1 of 2 | no |"}},
		{"no kills", &Result{Nodes: 3}, []string{"| 0 | – |"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteOutputs(tc.res, dir); err != nil {
				t.Fatal(err)
			}
			CheckOutputs(t, dir, len(tc.res.Kills))
			md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.wantMD {
				if !strings.Contains(string(md), want) {
					t.Errorf("results.md lacks %q:\n%s", want, md)
				}
			}
			back, err := ReadResult(filepath.Join(dir, JSONFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Kills) != len(tc.res.Kills) {
				t.Fatalf("read back %d kills, wrote %d", len(back.Kills), len(tc.res.Kills))
			}
			for i := range back.Kills {
				if a, b := back.Kills[i], tc.res.Kills[i]; a.ServedAgainMillis != b.ServedAgainMillis || len(a.Timeline) != len(b.Timeline) {
					t.Errorf("kill %d read back differently", i+1)
				}
			}
		})
	}
}

// CheckOutputs checks that dir holds a results.json with kills kills, each with a finite served-again
// figure, a results.md with the targets, and both plots as decodable PNGs.
func CheckOutputs(t *testing.T, dir string, kills int) {
	t.Helper()
	res, err := ReadResult(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kills) != kills {
		t.Fatalf("results.json has %d kills, want %d", len(res.Kills), kills)
	}
	for _, k := range res.Kills {
		if math.IsNaN(k.ServedAgainMillis) || math.IsInf(k.ServedAgainMillis, 0) || k.ServedAgainMillis < 0 {
			t.Errorf("kill %d: served again %v", k.Index, k.ServedAgainMillis)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("| target (issue 5) |")) {
		t.Errorf("results.md has no targets table:\n%s", md)
	}
	for _, name := range []string{TimelinePlot, DistributionPlot} {
		if err := outputs.CheckPlot(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
}

func TestParseMetric(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    Histogram
		wantErr string
	}{
		{"histogram", "# HELP appliance_failover_duration_seconds x\n# TYPE appliance_failover_duration_seconds histogram\n" +
			"appliance_failover_duration_seconds_bucket{le=\"0.001\"} 1\nappliance_failover_duration_seconds_sum 0.25\n" +
			"appliance_failover_duration_seconds_count 2\nother_sum 9\n", Histogram{Sum: 0.25, Count: 2}, ""},
		{"with timestamp and no final newline", "appliance_failover_duration_seconds_count 3 1700000000\nappliance_failover_duration_seconds_sum 1e-3", Histogram{Sum: 0.001, Count: 3}, ""},
		{"missing count", "appliance_failover_duration_seconds_sum 1\n", Histogram{}, "missing"},
		{"empty", "", Histogram{}, "missing"},
		{"bad number", "appliance_failover_duration_seconds_sum x\nappliance_failover_duration_seconds_count 1\n", Histogram{}, "bad value"},
		{"negative", "appliance_failover_duration_seconds_sum -1\nappliance_failover_duration_seconds_count 1\n", Histogram{}, "bad value"},
		{"NaN", "appliance_failover_duration_seconds_sum NaN\nappliance_failover_duration_seconds_count 1\n", Histogram{}, "bad value"},
		{"labelled series skipped", "appliance_failover_duration_seconds_sum{a=\"b\"} 5\nappliance_failover_duration_seconds_count 1\n", Histogram{}, "missing"},
		{"prefix of another name", "appliance_failover_duration_seconds_sum_x 5\nappliance_failover_duration_seconds_sum 2\nappliance_failover_duration_seconds_count 1\n", Histogram{Sum: 2, Count: 1}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetric([]byte(tc.text), failoverMetric)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMetric = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseMetric(f *testing.F) {
	f.Add([]byte("appliance_failover_duration_seconds_sum 0.25\nappliance_failover_duration_seconds_count 2\n"))
	f.Add([]byte("# TYPE x histogram\nappliance_failover_duration_seconds_count 3 1700000000\nappliance_failover_duration_seconds_sum 1e-3"))
	f.Add([]byte("appliance_failover_duration_seconds_sum NaN\nappliance_failover_duration_seconds_count +Inf\n"))
	f.Add([]byte("appliance_failover_duration_seconds_sum{a=\"b\"} 5\n\r\n\t"))
	f.Fuzz(func(t *testing.T, text []byte) {
		h, err := ParseMetric(text, failoverMetric)
		if err != nil {
			if h != (Histogram{}) {
				t.Fatalf("error %v with a non-zero histogram %+v", err, h)
			}
			return
		}
		for _, v := range []float64{h.Sum, h.Count} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted %+v", h)
			}
		}
		if !bytes.Contains(text, []byte(failoverMetric+"_sum")) || !bytes.Contains(text, []byte(failoverMetric+"_count")) {
			t.Fatalf("accepted %q without both series", text)
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	// A small seed: the minimizer works on whole inputs, and a full results.json takes it minutes.
	small := fakeResult([]float64{812}, 1)
	small.Kills[0].Timeline = small.Kills[0].Timeline[:3]
	seed, err := json.Marshal(small)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"kills":[{"index":1,"servedAgainMs":1e308,"steadyMs":null,"longLived":[{"maxStallMs":-1}],"timeline":[{"startMs":-5}]}]}`))
	f.Add([]byte(`{"kills":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeResult(b)
		if err != nil {
			return
		}
		// Whatever decoded must summarize and render as markdown without panicking (plots are slow: the
		// markdown covers every field the plots read).
		_ = Targets(Summarize(res))
		var md bytes.Buffer
		if err := WriteMarkdown(&md, res); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"default", func(*Config) {}, ""},
		{"quick", func(c *Config) { *c = QuickConfig() }, ""},
		{"zero kills", func(c *Config) { c.Kills = 0 }, "kills: 0"},
		{"negative conns", func(c *Config) { c.Conns = -1 }, "conns: -1"},
		{"no output", func(c *Config) { c.OutDir = "" }, "output folder"},
		{"attempt timeout", func(c *Config) { c.AttemptTimeout = 0 }, "attempt timeout"},
		{"echo deadline below interval", func(c *Config) { c.EchoDeadline = c.EchoInterval }, "echo deadline"},
		{"serve timeout", func(c *Config) { c.ServeTimeout = time.Hour }, "serve timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
