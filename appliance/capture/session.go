package capture

import (
	"errors"
	"fmt"
)

// Config configures a capture Session.
type Config struct {
	// Filter selects the frames; the zero Filter keeps all.
	Filter Filter
	// SnapLenBytes is how many bytes of each frame are kept (longer frames are truncated, their
	// wire length recorded).
	SnapLenBytes int
	// RingSlots is each worker's ring capacity in frames; rounded up to a power of two.
	RingSlots int
}

// DefaultConfig keeps every frame whole (2048 bytes, an AF_XDP frame) in 4096-slot rings
// (8 MiB per worker while armed).
func DefaultConfig() Config { return Config{SnapLenBytes: 2048, RingSlots: 4096} }

// MaxRingSlots bounds Config.RingSlots.
const MaxRingSlots = 1 << 20

// Session is one armed capture: a filter and one Ring per data-plane worker.
type Session struct {
	cfg   Config
	ports []string
	rings []*Ring
}

// NewSession preallocates a session for workers rings; ports are the data-plane port names in
// index order (they name the pcapng interfaces).
func NewSession(cfg Config, ports []string, workers int) (*Session, error) {
	def := DefaultConfig()
	if cfg.SnapLenBytes <= 0 {
		cfg.SnapLenBytes = def.SnapLenBytes
	}
	if cfg.RingSlots <= 0 {
		cfg.RingSlots = def.RingSlots
	}
	if cfg.RingSlots > MaxRingSlots {
		return nil, fmt.Errorf("capture: %d ring slots, at most %d", cfg.RingSlots, MaxRingSlots)
	}
	if cfg.SnapLenBytes > 65535 {
		return nil, fmt.Errorf("capture: snap length %d, at most 65535", cfg.SnapLenBytes)
	}
	if len(ports) == 0 {
		return nil, errors.New("capture: no ports")
	}
	slots := 1
	for slots < cfg.RingSlots {
		slots <<= 1
	}
	cfg.RingSlots = slots
	s := &Session{cfg: cfg, ports: append([]string(nil), ports...)}
	for range workers {
		s.rings = append(s.rings, newRing(&s.cfg.Filter, slots, cfg.SnapLenBytes))
	}
	return s, nil
}

// Ring returns worker i's ring, nil if the worker started after the session was armed.
func (s *Session) Ring(i int) *Ring {
	if s == nil || i < 0 || i >= len(s.rings) {
		return nil
	}
	return s.rings[i]
}

// Config returns the session's effective configuration.
func (s *Session) Config() Config { return s.cfg }

// Stats sums the rings' counters.
type Stats struct {
	// Matched is how many received frames matched the filter before or after translation.
	Matched uint64
	// Dropped is how many records (before or after versions) were lost because a ring was full.
	Dropped uint64
	// Written is how many records Stream wrote.
	Written uint64
}

func (s *Session) counters() Stats {
	var st Stats
	for _, r := range s.rings {
		st.Matched += r.Matched()
		st.Dropped += r.Dropped()
	}
	return st
}
