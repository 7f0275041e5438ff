package conntrack

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/packet"
)

func newLimiter(t *testing.T, perSecond, burst uint32) *SourceLimiter {
	t.Helper()
	c := DefaultSourceLimitConfig()
	c.NewFlowsPerSecond, c.Burst, c.HashSeed = perSecond, burst, 7
	l, err := NewSourceLimiter(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSourceLimiterRate: a source gets its burst at once, then one flow per interval; another
// source is not affected; the refusals are counted.
func TestSourceLimiterRate(t *testing.T) {
	l := newLimiter(t, 100, 5) // one flow per 10 ms, bursts of 5
	a, b := addr("198.18.0.66"), addr("198.18.0.100")
	if l.bucket(packet.FamilyIPv4, &a) == l.bucket(packet.FamilyIPv4, &b) {
		t.Fatal("test sources share a bucket; pick others")
	}
	now := 1000 * sec
	for i := range 5 {
		if !l.Allow(packet.FamilyIPv4, &a, now) {
			t.Fatalf("flow %d of the burst refused", i)
		}
	}
	if l.Allow(packet.FamilyIPv4, &a, now) {
		t.Fatal("flow beyond the burst allowed")
	}
	if !l.Allow(packet.FamilyIPv4, &b, now) {
		t.Fatal("another source refused")
	}
	if l.Allow(packet.FamilyIPv4, &a, now+int64(5*time.Millisecond)) {
		t.Fatal("allowed before one interval passed")
	}
	if !l.Allow(packet.FamilyIPv4, &a, now+int64(10*time.Millisecond)) {
		t.Fatal("refused after one interval")
	}
	if !l.Allow(packet.FamilyIPv4, &a, now+int64(time.Second)) {
		t.Fatal("refused after a quiet second")
	}
	if got := l.Refused(); got != 2 {
		t.Fatalf("Refused = %d, want 2", got)
	}
}

func TestSourceLimiterIPv6AndOff(t *testing.T) {
	l := newLimiter(t, 1, 1)
	src := addr("2001:2::66")
	if !l.Allow(packet.FamilyIPv6, &src, sec) || l.Allow(packet.FamilyIPv6, &src, sec) {
		t.Fatal("IPv6 source: want one flow, then a refusal")
	}
	off, err := NewSourceLimiter(SourceLimitConfig{})
	if err != nil || off != nil {
		t.Fatalf("rate 0: limiter %v, err %v; want nil, nil", off, err)
	}
	for range 100 {
		if !off.Allow(packet.FamilyIPv6, &src, sec) {
			t.Fatal("nil limiter refused")
		}
	}
	for _, c := range []SourceLimitConfig{
		{NewFlowsPerSecond: 1, Burst: 0, Buckets: 16},
		{NewFlowsPerSecond: 1, Burst: 1, Buckets: 0},
		{NewFlowsPerSecond: 1, Burst: 1, Buckets: maxSourceLimitBuckets + 1},
	} {
		if _, err := NewSourceLimiter(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestSourceLimiterConcurrent: workers racing on one source never get more than the burst.
func TestSourceLimiterConcurrent(t *testing.T) {
	l := newLimiter(t, 1, 1000)
	src := addr("198.18.0.66")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if l.Allow(packet.FamilyIPv4, &src, sec) {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 1000 {
		t.Fatalf("allowed %d, want exactly the burst (1000)", got)
	}
}

func TestSourceLimiterZeroAllocs(t *testing.T) {
	l := newLimiter(t, 1000, 10)
	src := addr("198.18.0.66")
	now := sec
	if n := testing.AllocsPerRun(1000, func() {
		now += int64(time.Millisecond)
		l.Allow(packet.FamilyIPv4, &src, now)
	}); n != 0 {
		t.Fatalf("Allow allocates %v per call", n)
	}
}

func BenchmarkSourceLimiterAllow(b *testing.B) {
	c := DefaultSourceLimitConfig()
	c.HashSeed = 7
	l, err := NewSourceLimiter(c)
	if err != nil {
		b.Fatal(err)
	}
	src := addr("198.18.0.66")
	now := sec
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		src[3]++
		l.Allow(packet.FamilyIPv4, &src, now)
	}
}
