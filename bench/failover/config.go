package failover

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Config says how many kills to measure and how.
type Config struct {
	// ApplianceBin is the path of the appliance program (make build writes bin/appliance).
	ApplianceBin string
	// Kills is how many times the current VIP owner is killed (SIGKILL).
	Kills int
	// Conns is the number of long-lived TCP connections through the VIP held across each kill.
	Conns int
	// OutDir receives results.json, results.md and the PNG plots.
	OutDir string
	// AttemptInterval is the time between the starts of two new-connection attempts (open loop: attempts
	// overlap while the VIP does not answer).
	AttemptInterval time.Duration
	// AttemptTimeout bounds one new-connection attempt (connect, HTTP GET, response).
	AttemptTimeout time.Duration
	// Lead is how long the attempt loop runs before the kill (the baseline of the timeline).
	Lead time.Duration
	// EchoInterval is the time between two exchanges on a long-lived connection.
	EchoInterval time.Duration
	// EchoDeadline bounds one exchange on a long-lived connection; longer counts as broken.
	EchoDeadline time.Duration
	// Warmup is how long the long-lived connections exchange data before the kill (the flow table is synced
	// to the other nodes every 250 ms).
	Warmup time.Duration
	// ServeTimeout is how long after the kill the VIP must serve new connections again; past it the run
	// fails.
	ServeTimeout time.Duration
	// Observe is how long new connections keep being attempted after the VIP served again (flaps show up).
	Observe time.Duration
	// StartTimeout bounds the wait for one appliance's /healthz after (re)start.
	StartTimeout time.Duration
	// SteadyTimeout bounds the wait for three alive members and one agreed VIP owner that serves.
	SteadyTimeout time.Duration
	// Progress receives one line per phase and per kill (nil: none).
	Progress io.Writer
	// Command is the command line recorded in the results (informational).
	Command string
}

// DefaultConfig is 10 kills with 5 long-lived connections each, attempts every 20 ms bounded by 200 ms.
func DefaultConfig() Config {
	return Config{
		ApplianceBin:    "bin/appliance",
		Kills:           10,
		Conns:           5,
		OutDir:          "bench/results/failover",
		AttemptInterval: 20 * time.Millisecond,
		AttemptTimeout:  200 * time.Millisecond,
		Lead:            500 * time.Millisecond,
		EchoInterval:    50 * time.Millisecond,
		EchoDeadline:    3 * time.Second,
		Warmup:          time.Second,
		ServeTimeout:    20 * time.Second,
		Observe:         time.Second,
		StartTimeout:    20 * time.Second,
		SteadyTimeout:   30 * time.Second,
	}
}

// QuickConfig is a smoke run: one kill, two long-lived connections, shorter warm-up and observation.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Kills, c.Conns = 1, 2
	c.Lead, c.Warmup, c.Observe = 200*time.Millisecond, 500*time.Millisecond, 300*time.Millisecond
	return c
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.ApplianceBin != "", "appliance program: empty path")
	check(c.Kills >= 1 && c.Kills <= 1000, "kills: %d is outside 1..1000", c.Kills)
	check(c.Conns >= 0 && c.Conns <= 100, "conns: %d is outside 0..100", c.Conns)
	check(c.OutDir != "", "output folder: empty path")
	check(c.AttemptInterval >= time.Millisecond, "attempt interval: %v is below 1ms", c.AttemptInterval)
	check(c.AttemptTimeout > 0 && c.AttemptTimeout <= 10*time.Second, "attempt timeout: %v is outside (0, 10s]", c.AttemptTimeout)
	check(c.Lead >= 0, "lead: %v is negative", c.Lead)
	check(c.EchoInterval >= time.Millisecond, "echo interval: %v is below 1ms", c.EchoInterval)
	check(c.EchoDeadline > c.EchoInterval, "echo deadline: %v is not above the echo interval", c.EchoDeadline)
	check(c.Warmup >= 0, "warm-up: %v is negative", c.Warmup)
	check(c.ServeTimeout > 0 && c.ServeTimeout <= 5*time.Minute, "serve timeout: %v is outside (0, 5m]", c.ServeTimeout)
	check(c.Observe >= 0, "observe: %v is negative", c.Observe)
	check(c.StartTimeout > 0, "start timeout: %v is not positive", c.StartTimeout)
	check(c.SteadyTimeout > 0, "steady timeout: %v is not positive", c.SteadyTimeout)
	if len(errs) > 0 {
		return fmt.Errorf("failover config: %w", errors.Join(errs...))
	}
	return nil
}
