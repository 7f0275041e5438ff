package health

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// listener is a real loopback TCP listener that accepts and closes connections; it can be
// closed and reopened on the same port.
type listener struct {
	t  *testing.T
	ep netip.AddrPort
	ln net.Listener
}

func newListener(t *testing.T) *listener {
	t.Helper()
	l := &listener{t: t}
	l.open("127.0.0.1:0")
	l.ep = l.ln.Addr().(*net.TCPAddr).AddrPort()
	t.Cleanup(l.close)
	return l
}

func (l *listener) open(addr string) {
	l.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		l.t.Fatalf("listen %s: %v", addr, err)
	}
	l.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (l *listener) close() {
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
}

func (l *listener) reopen() { l.open(l.ep.String()) }

func testConfig() Config {
	c := DefaultConfig()
	c.Interval = 200 * time.Millisecond
	c.Timeout = 200 * time.Millisecond
	return c
}

func newProber(t *testing.T, cfg Config) *Prober {
	t.Helper()
	p, err := NewProber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func isDown(p *Prober, ep netip.AddrPort) bool { return slices.Contains(p.Down(), ep) }

// TestThresholdsWithRealListener: a listener closed turns the endpoint down after exactly
// UnhealthyThreshold rounds; reopened, up after exactly HealthyThreshold rounds.
func TestThresholdsWithRealListener(t *testing.T) {
	cases := []struct {
		name                string
		healthy, unhealthy  int
		wantDownAfterRounds int
		wantUpAfterRounds   int
	}{
		{"defaults 2/3", 2, 3, 3, 2},
		{"one each", 1, 1, 1, 1},
		{"slow up 4/2", 4, 2, 2, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t)
			cfg := testConfig()
			cfg.HealthyThreshold, cfg.UnhealthyThreshold = tc.healthy, tc.unhealthy
			p := newProber(t, cfg)
			p.SetTargets([]netip.AddrPort{l.ep})
			ctx := t.Context()
			if isDown(p, l.ep) {
				t.Fatal("new endpoint must start up")
			}
			for i := 0; i < 3; i++ {
				if p.Round(ctx) || isDown(p, l.ep) {
					t.Fatalf("round %d with listener open: turned down", i)
				}
			}
			l.close()
			for i := 1; i <= tc.wantDownAfterRounds; i++ {
				changed := p.Round(ctx)
				if want := i == tc.wantDownAfterRounds; changed != want || isDown(p, l.ep) != want {
					t.Fatalf("closed, round %d: changed %v down %v, want %v", i, changed, isDown(p, l.ep), want)
				}
			}
			l.reopen()
			for i := 1; i <= tc.wantUpAfterRounds; i++ {
				changed := p.Round(ctx)
				if want := i == tc.wantUpAfterRounds; changed != want || isDown(p, l.ep) == want {
					t.Fatalf("reopened, round %d: changed %v down %v, want up=%v", i, changed, isDown(p, l.ep), want)
				}
			}
			st := p.Stats()
			if st.Failed != uint64(tc.wantDownAfterRounds) || st.OK != uint64(3+tc.wantUpAfterRounds) || st.Down != 0 || st.Targets != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestFlappingResetsCounters: failures must be consecutive to turn an endpoint down, and
// successes consecutive to bring it back.
func TestFlappingResetsCounters(t *testing.T) {
	var fail atomic.Bool
	cfg := testConfig()
	cfg.Dial = func(context.Context, netip.AddrPort) error {
		if fail.Load() {
			return errors.New("refused")
		}
		return nil
	}
	p := newProber(t, cfg)
	ep := netip.MustParseAddrPort("127.0.0.1:9")
	p.SetTargets([]netip.AddrPort{ep})
	ctx := t.Context()
	steps := []struct {
		fail     bool
		wantDown bool
	}{
		{true, false}, {true, false}, {false, false}, // two failures, then a success: reset
		{true, false}, {true, false}, {true, true}, // three in a row: down
		{false, true}, {true, true}, {false, true}, {false, false}, // success, failure (reset), two successes: up
	}
	for i, s := range steps {
		fail.Store(s.fail)
		p.Round(ctx)
		if isDown(p, ep) != s.wantDown {
			t.Fatalf("step %d (fail=%v): down %v, want %v", i, s.fail, isDown(p, ep), s.wantDown)
		}
	}
}

// TestRunClosedListenerTurnsDownAndBack runs the real loop: a closed listener is down within a
// few intervals, OnChange fires, and reopening brings it back.
func TestRunClosedListenerTurnsDownAndBack(t *testing.T) {
	l := newListener(t)
	cfg := testConfig()
	cfg.Interval, cfg.Timeout = 50*time.Millisecond, 50*time.Millisecond
	changes := make(chan struct{}, 16)
	cfg.OnChange = func() { changes <- struct{}{} }
	p := newProber(t, cfg)
	p.SetTargets([]netip.AddrPort{l.ep})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wait := func(wantDown bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for isDown(p, l.ep) != wantDown {
			select {
			case <-changes:
			case <-deadline:
				t.Fatalf("endpoint down=%v not reached; stats %+v", wantDown, p.Stats())
			}
		}
	}
	l.close()
	wait(true)
	l.reopen()
	wait(false)
	if p.Stats().Rounds < 5 {
		t.Fatalf("rounds %d: want at least 3 failures + 2 successes", p.Stats().Rounds)
	}
}

// TestBoundedConcurrency: with many slow targets no more than MaxInFlight probes run at once,
// and the round still probes every target once.
func TestBoundedConcurrency(t *testing.T) {
	cases := []struct {
		name        string
		maxInFlight int
		targets     int
	}{
		{"fewer targets than slots", 8, 5},
		{"many targets", 8, 100},
		{"one at a time", 1, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var inFlight, peak, calls atomic.Int64
			var mu sync.Mutex
			seen := map[netip.AddrPort]int{}
			cfg := testConfig()
			cfg.MaxInFlight = tc.maxInFlight
			cfg.Dial = func(ctx context.Context, ep netip.AddrPort) error {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				calls.Add(1)
				mu.Lock()
				seen[ep]++
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				return nil
			}
			p := newProber(t, cfg)
			var eps []netip.AddrPort
			for i := range tc.targets {
				eps = append(eps, netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), uint16(1000+i)))
			}
			p.SetTargets(eps)
			p.Round(t.Context())
			if got := peak.Load(); got > int64(tc.maxInFlight) {
				t.Fatalf("peak in flight %d > %d", got, tc.maxInFlight)
			}
			if calls.Load() != int64(tc.targets) || len(seen) != tc.targets {
				t.Fatalf("calls %d over %d targets, want each once", calls.Load(), len(seen))
			}
		})
	}
}

// TestSetTargets: kept endpoints keep their state, new ones start up, removed ones are
// forgotten (and no longer probed); UDP-free input and junk are handled.
func TestSetTargets(t *testing.T) {
	var probed sync.Map
	cfg := testConfig()
	cfg.UnhealthyThreshold = 1
	cfg.Dial = func(_ context.Context, ep netip.AddrPort) error {
		probed.Store(ep, true)
		return errors.New("refused")
	}
	p := newProber(t, cfg)
	a := netip.MustParseAddrPort("198.18.1.21:8080")
	b := netip.MustParseAddrPort("198.18.1.22:8080")
	c := netip.MustParseAddrPort("198.18.1.23:8080")
	p.SetTargets([]netip.AddrPort{a, b, b, {}, netip.MustParseAddrPort("198.18.1.24:0")})
	if st := p.Stats(); st.Targets != 2 {
		t.Fatalf("targets %d, want 2 (duplicates, invalid and port 0 dropped)", st.Targets)
	}
	p.Round(t.Context())
	if got := p.Down(); !slices.Equal(got, []netip.AddrPort{a, b}) {
		t.Fatalf("down %v", got)
	}
	if !p.SetTargets([]netip.AddrPort{b, c}) {
		t.Fatal("removing a down endpoint must report a change")
	}
	if got := p.Down(); !slices.Equal(got, []netip.AddrPort{b}) {
		t.Fatalf("down after SetTargets %v: want b kept down, c new and up, a forgotten", got)
	}
	probed.Delete(a)
	p.Round(t.Context())
	if _, ok := probed.Load(a); ok {
		t.Fatal("a removed endpoint was probed")
	}
	if p.SetTargets([]netip.AddrPort{b, c}) {
		t.Fatal("same set: no change")
	}
}

// TestSkipChangesNothing: ErrSkip neither counts as a failure nor as a success.
func TestSkipChangesNothing(t *testing.T) {
	cfg := testConfig()
	cfg.UnhealthyThreshold = 1
	cfg.Dial = func(context.Context, netip.AddrPort) error { return ErrSkip }
	p := newProber(t, cfg)
	p.SetTargets([]netip.AddrPort{netip.MustParseAddrPort("198.18.1.21:80")})
	for range 3 {
		p.Round(t.Context())
	}
	if st := p.Stats(); st.Skipped != 3 || st.OK+st.Failed != 0 || st.Down != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRunStopsOnCancel: Run returns promptly when its context ends, even mid-round.
func TestRunStopsOnCancel(t *testing.T) {
	cfg := testConfig()
	var dialing atomic.Bool
	cfg.Dial = func(ctx context.Context, _ netip.AddrPort) error {
		dialing.Store(true)
		<-ctx.Done()
		return ctx.Err()
	}
	p := newProber(t, cfg)
	p.SetTargets([]netip.AddrPort{netip.MustParseAddrPort("198.18.1.21:80")})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	tstest.EventuallyTrue(t, 5*time.Second, "a probe in flight", dialing.Load)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := p.Stats(); st.Down != 0 || st.Failed != 0 {
		t.Fatalf("a cancelled probe must not count: %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero interval", func(c *Config) { c.Interval = 0 }, false},
		{"timeout above interval", func(c *Config) { c.Timeout = 3 * time.Second }, false},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, false},
		{"healthy 0", func(c *Config) { c.HealthyThreshold = 0 }, false},
		{"unhealthy 0", func(c *Config) { c.UnhealthyThreshold = 0 }, false},
		{"in flight 0", func(c *Config) { c.MaxInFlight = 0 }, false},
		{"jitter 0.6", func(c *Config) { c.JitterFraction = 0.6 }, false},
		{"no jitter", func(c *Config) { c.JitterFraction = 0 }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
