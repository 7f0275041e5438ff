package maglev

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Limits of Config.TableSize.
const (
	// MinTableSize is the smallest accepted lookup table size.
	MinTableSize = 3
	// MaxBackends is the largest number of backends of one table (entries are 16-bit, which
	// halves the table's cache footprint on the data path).
	MaxBackends = 1<<16 - 1
	// MaxTableSize is the largest accepted lookup table size (16 Mi entries, 64 MiB of entries).
	MaxTableSize = 1 << 24
	// DefaultTableSize is the table size of DefaultConfig: the prime 65537, as in Katran and
	// Cilium, which keeps the per-backend share within 1% of ideal up to ~650 backends.
	DefaultTableSize = 65537
)

// Errors returned by Build and NewBuilder (wrapped with the offending value).
var (
	// ErrTableSize: Config.TableSize is not a prime in [MinTableSize, MaxTableSize].
	ErrTableSize = errors.New("maglev: table size must be a prime")
	// ErrTooManyBackends: more backends than table entries or than MaxBackends.
	ErrTooManyBackends = errors.New("maglev: more backends than table entries")
	// ErrEmptyKey: a backend has an empty key.
	ErrEmptyKey = errors.New("maglev: backend key is empty")
	// ErrDuplicateKey: two backends have the same key.
	ErrDuplicateKey = errors.New("maglev: duplicate backend key")
)

// Config tunes Maglev table construction. Every node of a cluster must use the same Config.
type Config struct {
	// TableSize is the number of lookup table entries M; it must be a prime in
	// [MinTableSize, MaxTableSize] and should be well above 100 × the number of backends.
	TableSize uint64
}

// DefaultConfig returns TableSize 65537.
func DefaultConfig() Config { return Config{TableSize: DefaultTableSize} }

// Validate reports whether the config is usable.
func (c Config) Validate() error {
	if c.TableSize < MinTableSize || c.TableSize > MaxTableSize || !isPrime(c.TableSize) {
		return fmt.Errorf("table size %d: %w in [%d, %d]", c.TableSize, ErrTableSize, MinTableSize, MaxTableSize)
	}
	return nil
}

// Backend is one ready endpoint of a Service port.
type Backend struct {
	// Key identifies the backend identically on every node, e.g. "198.18.1.21:8080". It is what
	// the table is built from, so it must not depend on node-local state.
	Key string
	// Weight is the backend's relative share of the table; 0 counts as 1. Build time grows with
	// max(Weight)/mean(Weight), so keep weights small integers (e.g. 1..100).
	Weight uint32
}

// Table is a built Maglev lookup table. It is immutable once built and safe for concurrent
// Lookup calls.
type Table struct {
	entries []uint16 // TableSize entries: input index of the backend owning the slot
	counts  []int32  // entries owned per input index
	m       uint64   // TableSize
	n       int      // number of backends
}

// Lookup returns the input index of the backend that owns hash, or -1 when the table has no
// backends (or t is nil). hash must be mixed over all 64 bits (HashFlow and HashAddr are): the
// slot is the high word of hash × M. O(1), no lock, no allocation.
func (t *Table) Lookup(hash uint64) int {
	if t == nil || t.n == 0 {
		return -1
	}
	slot, _ := bits.Mul64(hash, t.m)
	return int(t.entries[slot])
}

// Slot returns the slot of the lookup table that hash maps to (for tests and diagnostics).
func (t *Table) Slot(hash uint64) uint64 {
	slot, _ := bits.Mul64(hash, t.m)
	return slot
}

// Entry returns the input index owning slot, or -1 for an empty table or a slot out of range.
func (t *Table) Entry(slot uint64) int {
	if t == nil || t.n == 0 || slot >= t.m {
		return -1
	}
	return int(t.entries[slot])
}

// Size returns the number of lookup table entries M.
func (t *Table) Size() uint64 { return t.m }

// Backends returns the number of backends the table was built from.
func (t *Table) Backends() int { return t.n }

// Count returns how many table entries belong to the backend at input index i (0 if out of
// range).
func (t *Table) Count(i int) int {
	if i < 0 || i >= t.n {
		return 0
	}
	return int(t.counts[i])
}

// Build builds a new Table for backends. The result depends only on the set of (Key, Weight)
// pairs, not on their order; Lookup results are indexes into backends.
func Build(backends []Backend, cfg Config) (*Table, error) {
	b, err := NewBuilder(cfg)
	if err != nil {
		return nil, err
	}
	t := &Table{}
	if err := b.BuildInto(t, backends); err != nil {
		return nil, err
	}
	return t, nil
}

// Builder builds tables repeatedly while reusing its scratch memory, so that a rebuild into a
// recycled Table allocates nothing once the sizes have been seen. A Builder belongs to one
// goroutine.
type Builder struct {
	cfg    Config
	order  []int32  // input indexes sorted by key
	pos    []uint64 // per sorted backend: next slot of its permutation
	skip   []uint64 // per sorted backend: permutation stride in [1, M-1]
	weight []uint64 // per sorted backend: weight (>= 1)
	cum    []uint64 // per sorted backend: accumulated weight credit
	off    []uint64 // per sorted backend: permutation offset (first slot)
	inv    []uint64 // per sorted backend: skip⁻¹ mod M (end phase)
	free   []uint64 // free slots (end phase)
	filled []uint64 // bitset of filled slots (M bits; 8 KiB for 65537, stays in L1)
}

// NewBuilder validates cfg and returns a Builder for it.
func NewBuilder(cfg Config) (*Builder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("maglev config: %w", err)
	}
	return &Builder{cfg: cfg, filled: make([]uint64, (cfg.TableSize+63)/64)}, nil
}

// BuildInto fills t (reusing its memory) from backends. t must not be visible to readers while
// this runs: build into a spare Table and publish it afterwards. On error t is left empty
// (Lookup returns -1).
func (b *Builder) BuildInto(t *Table, backends []Backend) error {
	m := b.cfg.TableSize
	t.m = m
	t.n = 0
	t.entries = resize(t.entries, int(m))
	t.counts = resize(t.counts, len(backends))
	n := len(backends)
	if n == 0 {
		return nil
	}
	if uint64(n) > m || n > MaxBackends {
		return fmt.Errorf("%d backends, table size %d, at most %d: %w", n, m, MaxBackends, ErrTooManyBackends)
	}
	b.order = resize(b.order, n)
	for i := range b.order {
		b.order[i] = int32(i)
	}
	slices.SortFunc(b.order, func(x, y int32) int { return strings.Compare(backends[x].Key, backends[y].Key) })
	for i, idx := range b.order {
		if backends[idx].Key == "" {
			return fmt.Errorf("backend %d: %w", idx, ErrEmptyKey)
		}
		if i > 0 && backends[b.order[i-1]].Key == backends[idx].Key {
			return fmt.Errorf("backend %q: %w", backends[idx].Key, ErrDuplicateKey)
		}
	}

	b.pos = resize(b.pos, n)
	b.skip = resize(b.skip, n)
	b.weight = resize(b.weight, n)
	b.cum = resize(b.cum, n)
	b.off = resize(b.off, n)
	b.inv = resize(b.inv, n)
	var maxW uint64
	for i, idx := range b.order {
		h := keyHash(backends[idx].Key)
		b.off[i] = fmix(h^offsetSeed) % m
		b.pos[i] = b.off[i]
		b.skip[i] = fmix(h^skipSeed)%(m-1) + 1
		w := uint64(max(backends[idx].Weight, 1))
		b.weight[i] = w
		b.cum[i] = 0
		maxW = max(maxW, w)
		t.counts[idx] = 0
	}
	clear(b.filled)

	// Round-robin over the backends in key order; a backend takes its next preferred free slot
	// each time its weight credit reaches maxW (with equal weights: every round, which is the
	// original Maglev population and gives floor/ceil(M/N) entries each).
	//
	// Probing costs about M/F steps per placement when F slots are free, so the last few
	// hundred placements would cost half of all the work. Once F <= endPhase(M) the builder
	// switches to computing, for each free slot x, its rank in the backend's permutation,
	// (x-offset)·skip⁻¹ mod M, and taking the free slot of lowest rank: the same slot the probe
	// would reach (every slot the backend has passed is filled), at F steps per placement.
	entries, filled := t.entries, b.filled
	pos, skip, weight, cum := b.pos, b.skip, b.weight, b.cum
	remaining := m
	threshold := endPhase(m)
	for remaining > threshold {
		for i := range n {
			cum[i] += weight[i]
			if cum[i] < maxW {
				continue
			}
			cum[i] -= maxW
			p := nextFree(filled, pos[i], skip[i], m)
			filled[p>>6] |= 1 << (p & 63)
			idx := b.order[i]
			entries[p] = uint16(idx)
			t.counts[idx]++
			p += skip[i]
			if p >= m {
				p -= m
			}
			pos[i] = p
			remaining--
			if remaining == threshold {
				// Continue with backend i+1 in the end phase, keeping the round order.
				b.endPhase(t, i+1, maxW)
				t.n = n
				return nil
			}
		}
	}
	b.endPhase(t, 0, maxW)
	t.n = n
	return nil
}

// endPhase returns the number of free slots below which population computes ranks instead of
// probing: about 2·sqrt(M), where both costs meet.
func endPhase(m uint64) uint64 {
	r := uint64(1)
	for r*r < m {
		r++
	}
	return 2 * r
}

// endPhase places the remaining free slots, resuming the round at sorted backend first.
func (b *Builder) endPhase(t *Table, first int, maxW uint64) {
	m := b.cfg.TableSize
	red := newModM(m)
	b.free = b.free[:0]
	for w, word := range b.filled {
		for free := ^word; free != 0; free &= free - 1 {
			if x := uint64(w)*64 + uint64(bits.TrailingZeros64(free)); x < m {
				b.free = append(b.free, x)
			}
		}
	}
	n := len(b.order)
	for i := range n {
		b.inv[i] = red.pow(b.skip[i], m-2) // Fermat: M is prime
	}
	free := b.free
	for i := first; len(free) > 0; i++ {
		if i == n {
			i = 0
		}
		b.cum[i] += b.weight[i]
		if b.cum[i] < maxW {
			continue
		}
		b.cum[i] -= maxW
		off, inv := m-b.off[i], b.inv[i]
		best, bestRank := 0, m
		for k, x := range free {
			if rank := red.reduce((x + off) * inv); rank < bestRank {
				best, bestRank = k, rank
			}
		}
		x := free[best]
		free[best] = free[len(free)-1]
		free = free[:len(free)-1]
		b.filled[x>>6] |= 1 << (x & 63)
		idx := b.order[i]
		t.entries[x] = uint16(idx)
		t.counts[idx]++
	}
}

// modM reduces modulo m with a multiply (Barrett) for operands below 2^50.
type modM struct{ m, inv uint64 }

func newModM(m uint64) modM { return modM{m: m, inv: ^uint64(0) / m} }

func (r modM) reduce(a uint64) uint64 {
	q, _ := bits.Mul64(a, r.inv)
	a -= q * r.m
	if a >= r.m {
		a -= r.m
	}
	return a
}

func (r modM) pow(x, e uint64) uint64 {
	acc := uint64(1)
	for ; e > 0; e >>= 1 {
		if e&1 != 0 {
			acc = r.reduce(acc * x)
		}
		x = r.reduce(x * x)
	}
	return acc
}

// nextFree returns the first slot at or after p (stepping by s modulo m) whose bit in filled is
// clear. It tests four candidates per step so that their loads overlap. At least one slot must
// be free: the permutation of a prime m visits every slot.
func nextFree(filled []uint64, p, s, m uint64) uint64 {
	for {
		p1 := p + s
		if p1 >= m {
			p1 -= m
		}
		p2 := p1 + s
		if p2 >= m {
			p2 -= m
		}
		p3 := p2 + s
		if p3 >= m {
			p3 -= m
		}
		busy := filled[p>>6]>>(p&63)&1 | filled[p1>>6]>>(p1&63)&1<<1 |
			filled[p2>>6]>>(p2&63)&1<<2 | filled[p3>>6]>>(p3&63)&1<<3
		if busy != 0xf {
			cand := [4]uint64{p, p1, p2, p3}
			return cand[bits.TrailingZeros64(^busy)&3]
		}
		p = p3 + s
		if p >= m {
			p -= m
		}
	}
}

// Fixed seeds of the key hash: part of the cross-node contract, never change them.
const (
	offsetSeed = 0x9e3779b97f4a7c15
	skipSeed   = 0xc2b2ae3d27d4eb4f
)

// keyHash is FNV-1a 64 of the key.
func keyHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// fmix is the MurmurHash3 64-bit finaliser (full avalanche).
func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// isPrime is trial division; n <= MaxTableSize so at most ~2048 divisions.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
