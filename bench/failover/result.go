package failover

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsvc/lb/bench/outputs"
)

// Attempt is one new connection through the VIP (HTTP GET), timed relative to the kill.
type Attempt struct {
	// StartMillis is when it started, milliseconds after the kill (negative: before).
	StartMillis float64 `json:"startMs"`
	// DurationMillis is how long it took until success or failure.
	DurationMillis float64 `json:"durMs"`
	// OK is true when the response arrived with status 200 within Config.AttemptTimeout.
	OK bool `json:"ok"`
	// Err is the failure's class (timeout, refused, reset, unreachable, status, other); empty when OK.
	Err string `json:"err,omitempty"`
}

// EndMillis is when the attempt ended, milliseconds after the kill.
func (a Attempt) EndMillis() float64 { return a.StartMillis + a.DurationMillis }

// LongLived is one long-lived TCP connection held across a kill.
type LongLived struct {
	// Echoes is the number of exchanges that completed.
	Echoes int `json:"echoes"`
	// MaxStallMillis is the longest time between two completed exchanges (nominally Config.EchoInterval).
	MaxStallMillis float64 `json:"maxStallMs"`
	// Broken is true when a write or read failed or an exchange outlived Config.EchoDeadline.
	Broken bool `json:"broken"`
	// Err is why it broke.
	Err string `json:"err,omitempty"`
	// BrokeAtMillis is when it broke, milliseconds after the kill.
	BrokeAtMillis float64 `json:"brokeAtMs,omitempty"`
}

// Kill is everything measured around one SIGKILL of the VIP owner.
type Kill struct {
	// Index is 1-based.
	Index int `json:"index"`
	// Owner is the node that held the VIP and was killed; OwnerPID its process.
	Owner    string `json:"owner"`
	OwnerPID int    `json:"ownerPID"`
	// NewOwner is the node holding the VIP after the kill, as a survivor reports it.
	NewOwner string `json:"newOwner"`
	// KilledAt is the wall-clock time of the kill.
	KilledAt time.Time `json:"killedAt"`
	// ServedAgainMillis is the completion of the first successful attempt that started at or after the first
	// failed one (see Analyze), milliseconds after the kill.
	ServedAgainMillis float64 `json:"servedAgainMs"`
	// SteadyMillis is the completion of the first successful attempt that started after the last failed one
	// (nil when attempts were still failing at the end of the observation).
	SteadyMillis *float64 `json:"steadyMs,omitempty"`
	// NoOutage is true when no attempt after the kill failed.
	NoOutage bool `json:"noOutage,omitempty"`
	// Attempts and FailedAttempts count the attempts started at or after the kill.
	Attempts       int `json:"attempts"`
	FailedAttempts int `json:"failedAttempts"`
	// FlapAttempts counts failed attempts that started after the VIP had served again.
	FlapAttempts int `json:"flapAttempts"`
	// ApplianceFailoverMillis is the new owner's appliance_failover_duration_seconds observation for this
	// kill (its loss detection → VIP announced), when its /metrics showed exactly one new observation.
	ApplianceFailoverMillis *float64 `json:"applianceFailoverMs,omitempty"`
	// ApplianceFailoverNote says why ApplianceFailoverMillis is missing or averaged.
	ApplianceFailoverNote string `json:"applianceFailoverNote,omitempty"`
	// Broken counts the long-lived connections that broke.
	Broken int `json:"broken"`
	// LongLived are the long-lived connections.
	LongLived []LongLived `json:"longLived"`
	// RestartMillis is how long the killed node took to restart and the cluster to agree on one owner that
	// serves again (0 after the last kill: no restart).
	RestartMillis float64 `json:"restartMs,omitempty"`
	// LoadAvg1 is the machine's one-minute load average (/proc/loadavg) at the kill: a shared machine's
	// other work delays the client, the appliances and memberlist alike.
	LoadAvg1 float64 `json:"loadAvg1"`
	// MaxAttemptGapMillis is the longest time between two attempt starts after the kill (nominally the attempt
	// interval; far more means the client itself was starved of CPU).
	MaxAttemptGapMillis float64 `json:"maxAttemptGapMs"`
	// Timeline is every new-connection attempt, in start order, including those of Config.Lead before the
	// kill.
	Timeline []Attempt `json:"timeline"`
}

// Result is everything a failover run measured.
type Result struct {
	outputs.Provenance
	// Nodes, Backends are the lab's sizes; Conns the long-lived connections per kill.
	Nodes    int `json:"nodes"`
	Backends int `json:"backends"`
	Conns    int `json:"conns"`
	// AttemptIntervalMillis, AttemptTimeoutMillis, EchoIntervalMillis are the measurement's settings.
	AttemptIntervalMillis float64 `json:"attemptIntervalMs"`
	AttemptTimeoutMillis  float64 `json:"attemptTimeoutMs"`
	EchoIntervalMillis    float64 `json:"echoIntervalMs"`
	// Notes are facts a reader needs.
	Notes []string `json:"notes,omitempty"`
	// Kills are the raw figures of every kill, in order.
	Kills []Kill `json:"kills"`
}

// MaxStartGap is the longest time between two consecutive starts of attempts that started at or after the
// kill (attempts in start order).
func MaxStartGap(attempts []Attempt) float64 {
	gap, prev := 0.0, math.NaN()
	for _, a := range attempts {
		if a.StartMillis < 0 {
			continue
		}
		if !math.IsNaN(prev) {
			gap = math.Max(gap, a.StartMillis-prev)
		}
		prev = a.StartMillis
	}
	return gap
}

// Outcome is what Analyze derives from a kill's attempts.
type Outcome struct {
	// Served is true when some attempt after the kill succeeded.
	Served bool
	// ServedAgainMillis, SteadyMillis, NoOutage, Attempts, FailedAttempts, FlapAttempts: see Kill.
	ServedAgainMillis float64
	SteadyMillis      float64
	NoOutage          bool
	Attempts          int
	FailedAttempts    int
	FlapAttempts      int
}

// Analyze derives the serving-again figures from attempts timed relative to the kill (any order). Attempts
// that started before the kill are ignored.
func Analyze(attempts []Attempt) Outcome {
	var o Outcome
	firstFail, lastFail := math.Inf(1), math.Inf(-1)
	for _, a := range attempts {
		if a.StartMillis < 0 {
			continue
		}
		o.Attempts++
		if !a.OK {
			o.FailedAttempts++
			firstFail = math.Min(firstFail, a.StartMillis)
			lastFail = math.Max(lastFail, a.StartMillis)
		}
	}
	o.NoOutage = o.FailedAttempts == 0
	if o.NoOutage {
		firstFail, lastFail = 0, -1
	}
	served, steady := math.Inf(1), math.Inf(1)
	for _, a := range attempts {
		if a.StartMillis < 0 || !a.OK {
			continue
		}
		if a.StartMillis >= firstFail {
			served = math.Min(served, a.EndMillis())
		}
		if a.StartMillis > lastFail {
			steady = math.Min(steady, a.EndMillis())
		}
	}
	if math.IsInf(served, 1) {
		return o
	}
	o.Served = true
	o.ServedAgainMillis = served
	o.SteadyMillis = steady
	if math.IsInf(steady, 1) {
		o.SteadyMillis = math.NaN() // failures until the end: never steady within the observation
	}
	for _, a := range attempts {
		if !a.OK && a.StartMillis >= served {
			o.FlapAttempts++
		}
	}
	return o
}

// Percentile is the nearest-rank percentile p (0..100) of xs; NaN for none. xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Summary is the distribution over kills.
type Summary struct {
	// Kills is the number of kills with a served-again figure.
	Kills int
	// Min, Median, P90, Max are of ServedAgainMillis; SteadyMedian, SteadyMax of SteadyMillis.
	Min, Median, P90, Max   float64
	SteadyMedian, SteadyMax float64
	// ApplianceMedian, ApplianceMax are of ApplianceFailoverMillis (NaN when none was read).
	ApplianceMedian, ApplianceMax float64
	// Broken and Conns are the long-lived connections broken and held, over all kills.
	Broken, Conns int
	// StallMedian, StallMax are of each kill's longest long-lived stall (KillStallMillis).
	StallMedian, StallMax float64
}

// KillStallMillis is the longest time any long-lived connection of the kill went without a completed
// exchange (NaN without connections).
func KillStallMillis(k Kill) float64 {
	v := math.NaN()
	for _, l := range k.LongLived {
		if math.IsNaN(v) || l.MaxStallMillis > v {
			v = l.MaxStallMillis
		}
	}
	return v
}

// Summarize computes the distribution over the result's kills.
func Summarize(res *Result) Summary {
	var served, steady, app, stall []float64
	s := Summary{}
	for _, k := range res.Kills {
		served = append(served, k.ServedAgainMillis)
		if k.SteadyMillis != nil {
			steady = append(steady, *k.SteadyMillis)
		}
		if k.ApplianceFailoverMillis != nil {
			app = append(app, *k.ApplianceFailoverMillis)
		}
		if v := KillStallMillis(k); !math.IsNaN(v) {
			stall = append(stall, v)
		}
		s.Broken += k.Broken
		s.Conns += len(k.LongLived)
	}
	s.Kills = len(served)
	s.Min, s.Median, s.P90, s.Max = Percentile(served, 0), Percentile(served, 50), Percentile(served, 90), Percentile(served, 100)
	s.SteadyMedian, s.SteadyMax = Percentile(steady, 50), Percentile(steady, 100)
	s.ApplianceMedian, s.ApplianceMax = Percentile(app, 50), Percentile(app, 100)
	s.StallMedian, s.StallMax = Percentile(stall, 50), Percentile(stall, 100)
	return s
}

// Target is one of issue 5's targets with the measured figure.
type Target struct {
	Name, Want, Got string
	Met             bool
}

// Targets compares the summary with issue 5: median under 1 s, worst under 2 s, no long-lived connection
// broken.
func Targets(s Summary) []Target {
	sec := func(ms float64) string {
		if math.IsNaN(ms) {
			return "–"
		}
		return fmt.Sprintf("%.3f s", ms/1000)
	}
	return []Target{
		{Name: "VIP serving again after owner death, median", Want: "< 1 s", Got: sec(s.Median), Met: s.Kills > 0 && s.Median < 1000},
		{Name: "VIP serving again after owner death, worst", Want: "< 2 s", Got: sec(s.Max), Met: s.Kills > 0 && s.Max < 2000},
		{Name: "established TCP connections broken", Want: "0", Got: fmt.Sprintf("%d of %d", s.Broken, s.Conns), Met: s.Kills > 0 && s.Broken == 0},
	}
}

// Histogram is a Prometheus histogram's running sum and count.
type Histogram struct {
	Sum   float64
	Count float64
}

// ParseMetric reads the unlabelled histogram name's _sum and _count from Prometheus text exposition
// format. Lines with labels on these series, comments and malformed lines are skipped; it is an error
// when either series is missing or not a finite, non-negative number.
func ParseMetric(text []byte, name string) (Histogram, error) {
	var h Histogram
	var haveSum, haveCount bool
	for len(text) > 0 {
		var line []byte
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, nil
		}
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		fields := strings.Fields(s)
		if len(fields) < 2 || len(fields) > 3 { // name value [timestamp]
			continue
		}
		var dst *float64
		var have *bool
		switch fields[0] {
		case name + "_sum":
			dst, have = &h.Sum, &haveSum
		case name + "_count":
			dst, have = &h.Count, &haveCount
		default:
			continue
		}
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return Histogram{}, fmt.Errorf("metric %s: bad value %q", fields[0], fields[1])
		}
		*dst, *have = v, true
	}
	if !haveSum || !haveCount {
		return Histogram{}, errors.New("metric " + name + ": _sum or _count missing")
	}
	return h, nil
}
