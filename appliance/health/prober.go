package health

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is the probe state of one endpoint.
type target struct {
	down      bool // current verdict of this node's probes
	fails     int  // consecutive failures while up
	successes int  // consecutive successes while down
}

// Stats are a Prober's counters since creation.
type Stats struct {
	OK      uint64 // probes that connected
	Failed  uint64 // probes that did not connect within the timeout
	Skipped uint64 // probes the Dial function declined (ErrSkip)
	Rounds  uint64 // completed probe rounds
	Targets int    // endpoints probed now
	Down    int    // of which this node's probes say down
}

// Prober probes TCP endpoints by connecting to them, every interval, and keeps a verdict per
// endpoint with Kubernetes/Envoy-style thresholds. New endpoints start up (presumed healthy).
// Create it with NewProber, give it endpoints with SetTargets and run it with Run.
type Prober struct {
	cfg  Config
	log  *slog.Logger
	dial func(ctx context.Context, ep netip.AddrPort) error

	mu      sync.Mutex
	targets map[netip.AddrPort]*target

	ok, failed, skipped, rounds atomic.Uint64
}

// NewProber validates cfg and returns a Prober with no targets.
func NewProber(cfg Config) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Prober{cfg: cfg, log: cfg.Logger, dial: cfg.Dial, targets: map[netip.AddrPort]*target{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.dial == nil {
		d := &net.Dialer{Timeout: cfg.Timeout}
		p.dial = func(ctx context.Context, ep netip.AddrPort) error {
			c, err := d.DialContext(ctx, "tcp", ep.String())
			if err != nil {
				return err
			}
			return c.Close()
		}
	}
	return p, nil
}

// SetTargets replaces the set of endpoints to probe. Endpoints already probed keep their state;
// new ones start up with no history; endpoints not in eps are forgotten (no longer probed, no
// longer reported). Invalid or zero-port entries are ignored. It reports whether the down set
// changed (a down endpoint was removed).
func (p *Prober) SetTargets(eps []netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[netip.AddrPort]*target, len(eps))
	for _, ep := range eps {
		ep = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		if !ep.Addr().IsValid() || ep.Port() == 0 {
			continue
		}
		if t, ok := p.targets[ep]; ok {
			next[ep] = t
		} else if next[ep] == nil {
			next[ep] = &target{}
		}
	}
	changed := false
	for ep, t := range p.targets {
		if _, ok := next[ep]; !ok && t.down {
			changed = true
		}
	}
	p.targets = next
	return changed
}

// Down returns the endpoints this node's probes consider down, sorted.
func (p *Prober) Down() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.AddrPort
	for ep, t := range p.targets {
		if t.down {
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Stats returns the counters.
func (p *Prober) Stats() Stats {
	s := Stats{OK: p.ok.Load(), Failed: p.failed.Load(), Skipped: p.skipped.Load(), Rounds: p.rounds.Load()}
	p.mu.Lock()
	s.Targets = len(p.targets)
	for _, t := range p.targets {
		if t.down {
			s.Down++
		}
	}
	p.mu.Unlock()
	return s
}

// Run probes every target once per jittered interval until ctx ends. A round runs at most
// MaxInFlight probes at once on short-lived goroutines that end with the round; the next round
// starts one period after the previous one started, or when it ends if it took longer. Run
// returns when ctx ends and every probe goroutine has returned.
func (p *Prober) Run(ctx context.Context) {
	timer := time.NewTimer(p.jitter(p.cfg.Interval) / 4) // first round soon, still spread
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		if p.Round(ctx) && p.cfg.OnChange != nil && ctx.Err() == nil {
			p.cfg.OnChange()
		}
		timer.Reset(max(0, p.jitter(p.cfg.Interval)-time.Since(start)))
	}
}

func (p *Prober) jitter(d time.Duration) time.Duration {
	if p.cfg.JitterFraction == 0 {
		return d
	}
	f := 1 + p.cfg.JitterFraction*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Round probes every current target once (at most MaxInFlight at a time) and applies the
// results; it reports whether any endpoint turned up or down. Run calls it every interval;
// tests may call it directly instead of Run (not both at once).
func (p *Prober) Round(ctx context.Context) bool {
	p.mu.Lock()
	eps := make([]netip.AddrPort, 0, len(p.targets))
	for ep := range p.targets {
		eps = append(eps, ep)
	}
	p.mu.Unlock()
	// Random order: with many targets the probes of one endpoint do not always come last.
	rand.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })

	var changed atomic.Bool
	work := make(chan netip.AddrPort)
	var wg sync.WaitGroup
	for range min(p.cfg.MaxInFlight, len(eps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ep := range work {
				if p.probe(ctx, ep) {
					changed.Store(true)
				}
			}
		}()
	}
feed:
	for _, ep := range eps {
		select {
		case work <- ep:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	p.rounds.Add(1)
	return changed.Load()
}

// probe probes ep once and applies the result; it reports whether ep's verdict changed.
func (p *Prober) probe(ctx context.Context, ep netip.AddrPort) bool {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	err := p.dial(pctx, ep)
	cancel()
	if ctx.Err() != nil {
		return false // shutting down: the result says nothing about the endpoint
	}
	if errors.Is(err, ErrSkip) {
		p.skipped.Add(1)
		return false
	}
	if err == nil {
		p.ok.Add(1)
	} else {
		p.failed.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.targets[ep]
	if t == nil {
		return false // left the target set while being probed
	}
	switch {
	case err == nil && !t.down:
		t.fails = 0
	case err == nil:
		t.successes++
		if t.successes >= p.cfg.HealthyThreshold {
			t.down, t.successes = false, 0
			p.log.Info("endpoint healthy", "backend", ep.String())
			return true
		}
	case !t.down:
		t.fails++
		if t.fails >= p.cfg.UnhealthyThreshold {
			t.down, t.fails = true, 0
			p.log.Warn("endpoint unhealthy", "backend", ep.String(), "err", err)
			return true
		}
	default:
		t.successes = 0
	}
	return false
}
