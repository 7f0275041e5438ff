package capture

import (
	"errors"
	"fmt"

	"github.com/xdpsvc/lb/packet"
)

// Config configures a capture Session.
type Config struct {
	// Filter selects the frames; the zero Filter keeps all.
	Filter Filter
	// SnapLenBytes is how many bytes of each frame are kept (longer frames are truncated, their
	// wire length recorded); capped at MaxSnapLenBytes.
	SnapLenBytes int
	// RingSlots is each worker's ring capacity in frames; rounded up to a power of two, then
	// halved until the ring's bytes (RingSlots * SnapLenBytes) fit in MaxRingBytes.
	RingSlots int
}

// DefaultConfig keeps frames whole up to the default AF_XDP frame (xsk.DefaultConfig's
// FrameSizeBytes), each worker's ring preallocating RingSlots*SnapLenBytes bytes while armed.
func DefaultConfig() Config { return Config{SnapLenBytes: 2048, RingSlots: 4096} }

// Bounds of a session's buffers.
const (
	// MaxRingSlots bounds Config.RingSlots.
	MaxRingSlots = 1 << 20
	// MaxSnapLenBytes caps Config.SnapLenBytes: the longest frame the data plane handles
	// (packet.MaxFrameLen; longer ones are dropped as Oversized before any translation), so a
	// larger snap length would only reserve ring bytes no frame can fill.
	MaxSnapLenBytes = packet.MaxFrameLen
	// MaxRingBytes bounds the frame bytes one worker's ring preallocates while a capture is
	// armed; a larger snap length gets fewer slots.
	MaxRingBytes = 16 << 20
)

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
	cfg.SnapLenBytes = min(cfg.SnapLenBytes, MaxSnapLenBytes)
	if len(ports) == 0 {
		return nil, errors.New("capture: no ports")
	}
	slots := 1
	for slots < cfg.RingSlots {
		slots <<= 1
	}
	for slots > 1 && slots*cfg.SnapLenBytes > MaxRingBytes {
		slots >>= 1
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
