package compare

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type cpuSample struct {
	core, proc, napi uint64
	counters         map[string]float64
}

// applianceCounters reads the appliance's packet counters from /metrics (nil when unreadable).
func (r *runner) applianceCounters() map[string]float64 {
	text, err := r.appliance.Metrics()
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
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
