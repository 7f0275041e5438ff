package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// ErrSkip, returned by a Config.Dial function, means "this endpoint was not probed" (for
// example: the node has no path to it that the data plane would use). A skipped probe changes
// no state and is counted apart from successes and failures.
var ErrSkip = errors.New("health probe skipped")

// Config configures a Prober.
type Config struct {
	// Interval is the time between two probe rounds (each round probes every target once);
	// the actual period is jittered by up to ±JitterFraction. Default 2s.
	Interval time.Duration
	// Timeout bounds one TCP connect; it must not exceed Interval. Default 1s.
	Timeout time.Duration
	// HealthyThreshold is how many consecutive successful probes turn a down endpoint up.
	// Default 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failed probes turn an up endpoint down.
	// Default 3.
	UnhealthyThreshold int
	// MaxInFlight bounds the probes running at the same time. Default 64.
	MaxInFlight int
	// JitterFraction spreads rounds: each period is Interval × (1 ± up to JitterFraction), so
	// appliances started together do not probe in lock step. 0..0.5; default 0.1.
	JitterFraction float64
	// Dial probes one endpoint: nil error = healthy, ErrSkip = not probed, any other error =
	// failed. nil: a TCP connect with net.Dialer from the node's own stack, closed at once.
	// Test hook and the daemon's path filter.
	Dial func(ctx context.Context, ep netip.AddrPort) error
	// OnChange, when set, is called from the prober's goroutine after a round in which some
	// endpoint turned up or down (not per probe). It must not block for long.
	OnChange func()
	// Logger receives transitions (one line per endpoint that turns up or down); nil: none.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: Kubernetes-like 2 s interval, 1 s timeout, up after 2
// successes, down after 3 failures, 64 probes in flight.
func DefaultConfig() Config {
	return Config{
		Interval:           2 * time.Second,
		Timeout:            time.Second,
		HealthyThreshold:   2,
		UnhealthyThreshold: 3,
		MaxInFlight:        64,
		JitterFraction:     0.1,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("health config: interval %s: must be positive", c.Interval)
	case c.Timeout <= 0 || c.Timeout > c.Interval:
		return fmt.Errorf("health config: timeout %s: must be positive and at most the interval %s", c.Timeout, c.Interval)
	case c.HealthyThreshold < 1:
		return fmt.Errorf("health config: healthy threshold %d: must be at least 1", c.HealthyThreshold)
	case c.UnhealthyThreshold < 1:
		return fmt.Errorf("health config: unhealthy threshold %d: must be at least 1", c.UnhealthyThreshold)
	case c.MaxInFlight < 1:
		return fmt.Errorf("health config: max in flight %d: must be at least 1", c.MaxInFlight)
	case c.JitterFraction < 0 || c.JitterFraction > 0.5:
		return fmt.Errorf("health config: jitter fraction %g: must be between 0 and 0.5", c.JitterFraction)
	}
	return nil
}
