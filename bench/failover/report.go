package failover

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/xdpsvc/lb/bench/outputs"
)

// Output file names inside the output folder.
const (
	JSONFile         = "results.json"
	MarkdownFile     = "results.md"
	TimelinePlot     = "timeline.png"
	DistributionPlot = "distribution.png"
)

// ReadResult reads a results.json written by WriteOutputs.
func ReadResult(path string) (*Result, error) { return outputs.ReadJSON[Result](path) }

// DecodeResult decodes a results.json.
func DecodeResult(b []byte) (*Result, error) {
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("decode results: %w", err)
	}
	return &res, nil
}

// WriteOutputs writes results.json, results.md, timeline.png and distribution.png into dir.
func WriteOutputs(res *Result, dir string) error {
	return outputs.Write(dir, res, JSONFile, MarkdownFile, func(w io.Writer) error { return WriteMarkdown(w, res) },
		outputs.Plot{File: TimelinePlot, What: "timeline plot", Draw: func(path string) error { return timelinePlot(res, path) }},
		outputs.Plot{File: DistributionPlot, What: "distribution plot", Draw: func(path string) error { return distributionPlot(res, path) }})
}

func fmtMillis(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 10:
		return fmt.Sprintf("%.3f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// WriteMarkdown writes the summary table, the targets of issue 5 and one row per kill.
func WriteMarkdown(w io.Writer, res *Result) error {
	s := Summarize(res)
	var b strings.Builder
	fmt.Fprintf(&b, "VIP failover: %d kill(s) of the current VIP owner (SIGKILL) in a %d-node appliance cluster, %d backends; "+
		"new connections every %.0f ms (timeout %.0f ms), %d long-lived TCP connections per kill exchanging data every %.0f ms.\n\n",
		s.Kills, res.Nodes, res.Backends, res.AttemptIntervalMillis, res.AttemptTimeoutMillis, res.Conns, res.EchoIntervalMillis)
	b.WriteString("| kills | served again: min | median | p90 | max | steady: median | max | appliance failover metric: median | max | long-lived broken | long-lived longest stall: median | max |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %s | %s |\n\n", s.Kills,
		fmtMillis(s.Min), fmtMillis(s.Median), fmtMillis(s.P90), fmtMillis(s.Max), fmtMillis(s.SteadyMedian), fmtMillis(s.SteadyMax),
		fmtMillis(s.ApplianceMedian), fmtMillis(s.ApplianceMax), s.Broken, s.Conns, fmtMillis(s.StallMedian), fmtMillis(s.StallMax))
	b.WriteString("| target (issue 5) | want | got | met |\n|---|---:|---:|---|\n")
	for _, t := range Targets(s) {
		met := "no"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, met)
	}
	b.WriteString("\n| kill | owner killed | new owner | served again | steady | failed attempts | flaps | appliance failover metric | long-lived broken | longest stall | restart until steady | load avg | client max gap |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range res.Kills {
		steady, app, restart := "never", "–", "–"
		if k.SteadyMillis != nil {
			steady = fmtMillis(*k.SteadyMillis)
		}
		if k.ApplianceFailoverMillis != nil {
			app = fmtMillis(*k.ApplianceFailoverMillis)
		}
		if k.RestartMillis > 0 {
			restart = fmt.Sprintf("%.1f s", k.RestartMillis/1000)
		}
		served := fmtMillis(k.ServedAgainMillis)
		if k.NoOutage {
			served += " (no outage)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %d of %d | %d | %s | %d of %d | %s | %s | %.1f | %s |\n", k.Index, k.Owner, k.NewOwner, served, steady,
			k.FailedAttempts, k.Attempts, k.FlapAttempts, app, k.Broken, len(k.LongLived), fmtMillis(KillStallMillis(k)), restart,
			k.LoadAvg1, fmtMillis(k.MaxAttemptGapMillis))
	}
	b.WriteString("\nServed again: completion of the first successful new connection that started at or after the first failed one, " +
		"after the SIGKILL. Steady: the first success after the last failure. Appliance failover metric: the new owner's " +
		"appliance_failover_duration_seconds (its loss detection → VIP announced; excludes the detection time itself). " +
		"Longest stall: the longest gap between two completed exchanges on any long-lived connection of the kill (TCP retransmission backoff included). " +
		"Load avg: the machine's one-minute load average at the kill; client max gap: the longest pause between two attempt starts " +
		"(nominally the attempt interval; far more means the client was starved of CPU, and so were the appliances).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

var (
	okColor     = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	failColor   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	markColor   = color.RGBA{A: 0xff}
	killColor   = color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
	metricColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	stallColor  = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	dashes      = []vg.Length{vg.Points(4), vg.Points(3)}
)

// timelinePlot draws, per kill, every new-connection attempt at its start time relative to the kill (ok
// green, failed red) and a black mark where the VIP served again.
func timelinePlot(res *Result, path string) error {
	p := plot.New()
	p.Title.Text = "New connections through the VIP around each kill of its owner"
	p.X.Label.Text = "attempt start, seconds after SIGKILL"
	var ok, failed plotter.XYs
	var ticks []plot.Tick
	maxX := 1.0
	for i, k := range res.Kills {
		y := float64(i + 1)
		ticks = append(ticks, plot.Tick{Value: y, Label: fmt.Sprintf("kill %d (%s)", k.Index, k.Owner)})
		for _, a := range k.Timeline {
			pt := plotter.XY{X: a.StartMillis / 1000, Y: y}
			maxX = math.Max(maxX, pt.X)
			if a.OK {
				ok = append(ok, pt)
			} else {
				failed = append(failed, pt)
			}
		}
	}
	for _, set := range []struct {
		xys   plotter.XYs
		name  string
		color color.Color
		shape draw.GlyphDrawer
	}{{ok, "ok", okColor, draw.CircleGlyph{}}, {failed, "failed", failColor, draw.CrossGlyph{}}} {
		if len(set.xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(set.xys)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = set.color, set.shape, vg.Points(2)
		p.Add(sc)
		p.Legend.Add(set.name, sc)
	}
	for i, k := range res.Kills {
		y := float64(i + 1)
		x := k.ServedAgainMillis / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: y - 0.35}, {X: x, Y: y + 0.35}})
		if err != nil {
			return err
		}
		l.LineStyle.Color, l.LineStyle.Width = markColor, vg.Points(2)
		p.Add(l)
		if i == 0 {
			p.Legend.Add("served again", l)
		}
	}
	n := float64(len(res.Kills))
	kl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0.5}, {X: 0, Y: n + 0.5}})
	if err != nil {
		return err
	}
	kl.LineStyle.Color, kl.LineStyle.Dashes = killColor, dashes
	p.Add(kl)
	p.Legend.Add("SIGKILL", kl)
	p.Legend.Top = true
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = 0.5, math.Max(n, 1)+1.5 // room for the legend
	p.X.Max = maxX + 0.05
	return p.Save(8*vg.Inch, vg.Length(2+0.35*math.Max(n, 1))*vg.Inch, path)
}

// ecdf returns the empirical distribution of xs as a step line.
func ecdf(xs []float64) plotter.XYs {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	var out plotter.XYs
	for i, x := range s {
		out = append(out, plotter.XY{X: x, Y: float64(i) / float64(len(s))}, plotter.XY{X: x, Y: float64(i+1) / float64(len(s))})
	}
	return out
}

// distributionPlot draws the distribution over kills of the time to serve again (and of the appliance's
// own failover metric), with the targets of issue 5.
func distributionPlot(res *Result, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("VIP failover over %d kill(s): fraction of kills within x", len(res.Kills))
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "fraction of kills"
	var served, metric, stall []float64
	for _, k := range res.Kills {
		served = append(served, k.ServedAgainMillis/1000)
		if k.ApplianceFailoverMillis != nil {
			metric = append(metric, *k.ApplianceFailoverMillis/1000)
		}
		if v := KillStallMillis(k); !math.IsNaN(v) {
			stall = append(stall, v/1000)
		}
	}
	top := 2.2
	for _, set := range []struct {
		xs    []float64
		name  string
		color color.Color
	}{
		{served, "new connections served again (SIGKILL → first success)", failColor},
		{stall, "long-lived connections: longest stall", stallColor},
		{metric, "appliance metric: loss detected → VIP announced", metricColor},
	} {
		if len(set.xs) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(ecdf(set.xs))
		if err != nil {
			return err
		}
		line.LineStyle.Color, line.LineStyle.Width = set.color, vg.Points(1.5)
		points.Color, points.Radius = set.color, vg.Points(2)
		p.Add(line, points)
		p.Legend.Add(set.name, line, points)
		for _, x := range set.xs {
			top = math.Max(top, x*1.1)
		}
	}
	for _, t := range []struct {
		x    float64
		name string
	}{{1, "target: median < 1 s"}, {2, "target: worst < 2 s"}} {
		l, err := plotter.NewLine(plotter.XYs{{X: t.x, Y: 0}, {X: t.x, Y: 1}})
		if err != nil {
			return err
		}
		l.LineStyle.Color, l.LineStyle.Dashes = killColor, dashes
		if t.x == 2 {
			l.LineStyle.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		}
		p.Add(l)
		p.Legend.Add(t.name, l)
	}
	p.Legend.Top, p.Legend.Left = true, false
	p.X.Min, p.X.Max = 0, top
	p.Y.Min, p.Y.Max = 0, 1.6 // room for the legend
	p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"}, {Value: 0.75, Label: "0.75"}, {Value: 1, Label: "1"}})
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
