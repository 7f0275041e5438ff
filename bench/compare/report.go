package compare

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/xdpsvc/lb/bench/outputs"
)

// Output file names inside the output folder.
const (
	JSONFile       = "results.json"
	MarkdownFile   = "results.md"
	ThroughputPlot = "throughput.png"
	LatencyPlot    = "latency.png"
)

// Cell is the summary of one system in one scenario over all rounds.
type Cell struct {
	// Median is the median headline figure (pps, conn/s, or p50 µs); P99 the median p99 (latency only).
	Median, P99 float64
	// NsPerPacket is the median CPU time per received packet on the system-under-test core.
	NsPerPacket float64
	// Ratio is the median over rounds of (this system / the appliance in the same round); NaN if unknown.
	Ratio float64
	// N is the number of rounds with a figure; Skipped why there is none.
	N       int
	Skipped string
}

// Summarize computes every cell: medians per system and scenario, and ratios to the appliance pair by pair
// within each round, so that machine noise common to a round cancels.
func Summarize(res *Result) map[string]map[System]Cell {
	out := map[string]map[System]Cell{}
	type key struct {
		scen  string
		sys   System
		round int
	}
	byKey := map[key]Run{}
	for _, r := range res.Runs {
		byKey[key{r.Scenario, r.System, r.Round}] = r
	}
	for _, sc := range res.Scenarios {
		out[sc.Name] = map[System]Cell{}
		for _, sys := range res.Systems {
			var heads, p99s, nss, ratios []float64
			var skipped string
			for _, r := range res.Runs {
				if r.Scenario != sc.Name || r.System != sys {
					continue
				}
				if r.Skipped != "" {
					skipped = r.Skipped
					continue
				}
				if r.Error != "" || r.Headline() == 0 {
					continue
				}
				heads = append(heads, r.Headline())
				if r.Kind == KindLatency {
					p99s = append(p99s, r.P99Micros)
				}
				if r.NsPerPacket > 0 {
					nss = append(nss, r.NsPerPacket)
				}
				if a, ok := byKey[key{sc.Name, SystemAppliance, r.Round}]; ok && a.Error == "" && a.Headline() > 0 {
					ratios = append(ratios, r.Headline()/a.Headline())
				}
			}
			out[sc.Name][sys] = Cell{Median: median(heads), P99: median(p99s), NsPerPacket: median(nss), Ratio: median(ratios), N: len(heads), Skipped: skipped}
		}
	}
	return out
}

// median of xs, NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Target is one of issue 6's targets and whether this run met it.
type Target struct {
	// Name says what is compared; Want the threshold; Got the median pairwise ratio; Met whether Got ≥ Want.
	Name string  `json:"name"`
	Want float64 `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

// Targets evaluates issue 6's targets: appliance ≥ 1.5× nftables pps for every UDP scenario, ≥ 1.5× its new
// connections per second, and ≥ 0.9× the MAC-swap ceiling for every UDP scenario. Ratios are medians of the
// pairwise ratios within rounds. Targets whose systems or scenarios did not run are left out.
func Targets(res *Result, cells map[string]map[System]Cell) []Target {
	var ts []Target
	add := func(name string, want, got float64) {
		if math.IsNaN(got) || math.IsInf(got, 0) {
			return
		}
		ts = append(ts, Target{Name: name, Want: want, Got: got, Met: got >= want})
	}
	for _, sc := range res.Scenarios {
		c := cells[sc.Name]
		switch sc.Kind {
		case KindUDP:
			if n, ok := c[SystemNFTables]; ok {
				add(fmt.Sprintf("%s: appliance / nftables pps", sc.Name), 1.5, 1/n.Ratio)
			}
			if k, ok := c[SystemCeiling]; ok {
				add(fmt.Sprintf("%s: appliance / MAC-swap ceiling pps", sc.Name), 0.9, 1/k.Ratio)
			}
		case KindSYN:
			if n, ok := c[SystemNFTables]; ok {
				add(fmt.Sprintf("%s: appliance / nftables new connections/s", sc.Name), 1.5, 1/n.Ratio)
			}
		}
	}
	return ts
}

// ReadResult reads a results.json that Compare wrote.
func ReadResult(path string) (*Result, error) { return outputs.ReadJSON[Result](path) }

// WriteOutputs writes results.json, results.md, throughput.png and latency.png into dir.
func WriteOutputs(res *Result, dir string) error {
	return outputs.Write(dir, res, JSONFile, MarkdownFile, func(w io.Writer) error { return WriteMarkdown(w, res) },
		outputs.Plot{File: ThroughputPlot, What: "throughput plot", Draw: func(path string) error { return throughputPlot(res, path) }},
		outputs.Plot{File: LatencyPlot, What: "latency plot", Draw: func(path string) error { return latencyPlot(res, path) }})
}

func fmtRate(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case unit == "µs p50":
		return fmt.Sprintf("%.0f µs", v)
	case v >= 1e6:
		return fmt.Sprintf("%.3f M%s", v/1e6, unit)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k%s", v/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// WriteMarkdown writes the summary table (medians, ratio to the appliance, CPU per packet) and the targets.
func WriteMarkdown(w io.Writer, res *Result) error {
	cells := Summarize(res)
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d round(s); ratio = system ÷ appliance, paired within each round, median over rounds; "+
		"ns/pkt = busy time of the system-under-test core per packet received at the backends.\n\n", res.Rounds)
	b.WriteString("| scenario |")
	for _, sys := range res.Systems {
		fmt.Fprintf(&b, " %s | %s ratio | %s ns/pkt |", sys, sys, sys)
	}
	b.WriteString("\n|---|")
	for range res.Systems {
		b.WriteString("---:|---:|---:|")
	}
	b.WriteString("\n")
	for _, sc := range res.Scenarios {
		fmt.Fprintf(&b, "| %s |", sc.Name)
		for _, sys := range res.Systems {
			c := cells[sc.Name][sys]
			if c.Skipped != "" || c.N == 0 {
				b.WriteString(" n/a | | |")
				continue
			}
			v := fmtRate(c.Median, sc.Unit())
			if sc.Kind == KindLatency {
				v = fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", c.Median, c.P99)
			}
			ratio := "–"
			if !math.IsNaN(c.Ratio) {
				ratio = fmt.Sprintf("%.2f×", c.Ratio)
			}
			ns := "–"
			if !math.IsNaN(c.NsPerPacket) {
				ns = fmt.Sprintf("%.0f", c.NsPerPacket)
			}
			fmt.Fprintf(&b, " %s | %s | %s |", v, ratio, ns)
		}
		b.WriteString("\n")
	}
	if ts := Targets(res, cells); len(ts) > 0 {
		b.WriteString("\n| target | want | got | met |\n|---|---:|---:|---|\n")
		for _, t := range ts {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(&b, "| %s | ≥ %.2f× | %.2f× | %s |\n", t.Name, t.Want, t.Got, met)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var systemColors = map[System]color.Color{
	SystemAppliance:   color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	SystemNFTables:    color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	SystemCeiling:     color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	SystemXDPRedirect: color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// throughputPlot draws grouped bars: one group per packet scenario, one bar per system, in Mpps (median).
func throughputPlot(res *Result, path string) error {
	cells := Summarize(res)
	p := plot.New()
	p.Title.Text = "Received at the backends (median of rounds)"
	p.Y.Label.Text = "Mpps (SYN: M new conn/s)"
	var names []string
	for _, sc := range res.Scenarios {
		if sc.Kind != KindLatency {
			names = append(names, sc.Name)
		}
	}
	w := vg.Points(14)
	top := 0.0
	for i, sys := range res.Systems {
		vals := make(plotter.Values, len(names))
		for j, n := range names {
			if v := cells[n][sys].Median; !math.IsNaN(v) {
				vals[j] = v / 1e6
				top = math.Max(top, vals[j])
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.Color = systemColors[sys]
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(res.Systems)-1)/2)
		p.Add(bars)
		p.Legend.Add(string(sys), bars)
	}
	p.Legend.Top = true
	if len(names) > 0 {
		p.NominalX(names...)
	}
	p.Y.Min = 0
	p.Y.Max = math.Max(top*1.3, 1e-3) // room for the legend above the bars
	return p.Save(vg.Length(max(6, 1.6*float64(len(names))))*vg.Inch, 4*vg.Inch, path)
}

// latencyPlot draws one box per system from all rounds' round-trip samples.
func latencyPlot(res *Result, path string) error {
	p := plot.New()
	p.Title.Text = "TCP request/response round trip through the VIP"
	p.Y.Label.Text = "µs (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var names []string
	for _, sys := range res.Systems {
		var vals plotter.Values
		for _, r := range res.Runs {
			if r.System == sys && r.Kind == KindLatency {
				for _, v := range r.LatencyMicros {
					vals = append(vals, math.Max(v, 1)) // log scale: no zeros
				}
			}
		}
		if len(vals) == 0 {
			continue
		}
		box, err := plotter.NewBoxPlot(vg.Points(30), float64(len(names)), vals)
		if err != nil {
			return err
		}
		box.FillColor = systemColors[sys]
		p.Add(box)
		names = append(names, string(sys))
	}
	if len(names) == 0 {
		// No latency scenario in this run: a linear, empty axis (a log scale with no data panics).
		p.Title.Text += " (not measured in this run)"
		p.Y.Scale = plot.LinearScale{}
		p.Y.Tick.Marker = plot.DefaultTicks{}
		p.Y.Label.Text = "µs"
		p.Y.Min, p.Y.Max = 0, 1
		names = []string{"none"}
	}
	p.NominalX(names...)
	return p.Save(5*vg.Inch, 4*vg.Inch, path)
}
