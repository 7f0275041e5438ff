package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// SourceLimitConfig sets the per-source limit on new flows. Every field has a default in
// DefaultSourceLimitConfig.
type SourceLimitConfig struct {
	// NewFlowsPerSecond is the sustained rate of new flows one source address may open; 0 turns
	// the limit off.
	NewFlowsPerSecond uint32
	// Burst is how many new flows a source may open at once above the sustained rate.
	Burst uint32
	// Buckets is the number of rate buckets (rounded up to a power of two). Sources are hashed
	// into them with a random key, so a remote sender cannot aim at another source's bucket; two
	// sources share one with probability 1/Buckets.
	Buckets int
	// HashSeed keys the hash; 0 picks a random one (tests may fix it).
	HashSeed uint64
}

// DefaultSourceLimitConfig allows each source 10,000 new flows per second with bursts of 20,000:
// far above what one real client (or a NAT gateway in front of many) opens, and low enough that
// one sender cannot fill the flow table or a backend's SNAT ports within seconds.
func DefaultSourceLimitConfig() SourceLimitConfig {
	return SourceLimitConfig{
		NewFlowsPerSecond: 10_000,  // one client, or many behind a NAT, rarely open more
		Burst:             20_000,  // a page load or a reconnect storm of one gateway fits
		Buckets:           1 << 16, // 512 KiB; collisions at 1/65536
	}
}

// maxSourceLimitBuckets bounds the memory of a SourceLimiter (8 bytes per bucket).
const maxSourceLimitBuckets = 1 << 24

// SourceLimiter limits the rate of new flows per source address with the generic cell rate
// algorithm: each bucket holds one word, the theoretical arrival time of the source's next flow.
// It is pointer-free, allocated once, and Allow takes no lock and does not allocate, so every
// worker may call it per new flow.
type SourceLimiter struct {
	tat      []atomic.Int64 // theoretical arrival time per bucket, ns on the caller's clock
	mask     uint64
	seed     uint64
	interval int64 // ns between flows at the sustained rate
	slack    int64 // how far tat may run ahead of now: (Burst-1) intervals
	refused  atomic.Uint64
}

// NewSourceLimiter allocates a limiter; it returns nil (no limit) when cfg.NewFlowsPerSecond is 0.
func NewSourceLimiter(cfg SourceLimitConfig) (*SourceLimiter, error) {
	if cfg.NewFlowsPerSecond == 0 {
		return nil, nil
	}
	if cfg.Burst == 0 {
		return nil, fmt.Errorf("source limit burst 0: must be at least 1")
	}
	if cfg.Buckets <= 0 || cfg.Buckets > maxSourceLimitBuckets {
		return nil, fmt.Errorf("source limit buckets %d: must be between 1 and %d", cfg.Buckets, maxSourceLimitBuckets)
	}
	n := 1 << bits.Len(uint(cfg.Buckets-1))
	seed := cfg.HashSeed
	if seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("source limit hash seed: %w", err)
		}
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	interval := int64(time.Second) / int64(cfg.NewFlowsPerSecond)
	return &SourceLimiter{
		tat:      make([]atomic.Int64, n),
		mask:     uint64(n - 1),
		seed:     seed,
		interval: interval,
		slack:    interval * int64(cfg.Burst-1),
	}, nil
}

// Allow reports whether the source src (an IPv4 address in its first 4 bytes, or IPv6) may open
// a new flow at now (nanoseconds on the caller's monotonic clock, read once per batch), and
// takes one flow from its allowance if so. A refusal is counted (Refused). A nil limiter allows
// everything.
func (l *SourceLimiter) Allow(fam packet.Family, src *[16]byte, now int64) bool {
	if l == nil {
		return true
	}
	b := &l.tat[l.bucket(fam, src)]
	for {
		tat := b.Load()
		next := max(tat, now) + l.interval
		if next-now > l.slack+l.interval {
			l.refused.Add(1)
			return false
		}
		if b.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// Refused is the number of new flows refused so far.
func (l *SourceLimiter) Refused() uint64 {
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

func (l *SourceLimiter) bucket(fam packet.Family, src *[16]byte) uint64 {
	if fam == packet.FamilyIPv6 {
		return mix(binary.LittleEndian.Uint64(src[0:8])^l.seed, binary.LittleEndian.Uint64(src[8:16])^hashM2) & l.mask
	}
	return mix(uint64(binary.LittleEndian.Uint32(src[0:4]))^l.seed, hashM1) & l.mask
}
