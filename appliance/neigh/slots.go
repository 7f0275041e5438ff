package neigh

import (
	"net"
	"sync/atomic"

	"github.com/vishvananda/netlink"
)

// Slot is a handle on one next hop in a Slots table: the slot's index in its low
// slotIndexBits bits and, above them, the generation the index had when the handle was given
// out. A handle reads a MAC only while its index still has that generation, so a handle kept
// after its next hop was released reads invalid. NoSlot (0) is never valid.
type Slot uint32

// NoSlot is the zero Slot; it never holds a MAC.
const NoSlot Slot = 0

const (
	slotIndexBits = 20
	slotIndexMask = 1<<slotIndexBits - 1
	slotGenBits   = 32 - slotIndexBits
	slotGenMask   = 1<<slotGenBits - 1

	// SlotGenerations is how many times an index can be released before its generation, and so
	// its handles, repeat. A stale handle could name another next hop only after SlotGenerations
	// releases of its index, each at least Config.SlotQuarantine after the one before.
	SlotGenerations = 1 << slotGenBits

	// maxSlots bounds Config.MaxSlots: every index fits in a handle.
	maxSlots = 1 << slotIndexBits
)

func makeSlot(index, gen uint32) Slot { return Slot(gen&slotGenMask)<<slotIndexBits | Slot(index) }

func (s Slot) index() uint32 { return uint32(s) & slotIndexMask }

func (s Slot) generation() uint32 { return uint32(s) >> slotIndexBits }

// A slot's word: MAC (big-endian in bits 0..47), validBit, and the index's generation in the
// slotGenBits bits from wordGenShift, so that one atomic load tells both whether the MAC is
// usable and whether it still belongs to the handle's next hop.
const (
	validBit     = 1 << 48
	macMask      = 1<<48 - 1
	wordGenShift = 49
)

func genWord(gen uint32) uint64 { return uint64(gen&slotGenMask) << wordGenShift }

func wordGen(w uint64) uint32 { return uint32(w>>wordGenShift) & slotGenMask }

// Slots is the fixed array of next-hop words the data plane reads.
type Slots struct {
	words []atomic.Uint64 // MAC | validBit | generation
	links []atomic.Int32  // outgoing link index, set when the slot is given out
	gen   atomic.Uint64   // bumped whenever a slot's word changes
}

// NewSlots returns a table of n slots (slot 0 included, so n-1 usable).
func NewSlots(n int) *Slots {
	return &Slots{words: make([]atomic.Uint64, n), links: make([]atomic.Int32, n)}
}

// Len returns the number of slots, NoSlot included.
func (s *Slots) Len() int { return len(s.words) }

// MAC returns the next hop's MAC and true when the slot holds a usable one and the handle is
// current (its next hop not released since); otherwise the zero MAC and false (also for NoSlot
// and out-of-range slots). Lock-free, allocation-free.
func (s *Slots) MAC(slot Slot) (mac [6]byte, ok bool) {
	i := slot.index()
	if int(i) >= len(s.words) {
		return mac, false
	}
	w := s.words[i].Load()
	if w&validBit == 0 || wordGen(w) != slot.generation() {
		return mac, false
	}
	return wordMAC(w), true
}

// LinkIndex returns the index of the link the slot's next hop is reached through (0 for an
// unused, released or out-of-range slot). Lock-free.
func (s *Slots) LinkIndex(slot Slot) int {
	i := slot.index()
	if int(i) >= len(s.links) {
		return 0
	}
	// The link first, then the generation: a release stores the word (new generation) before
	// the index is given out again and its link replaced, so a matching generation read after
	// the link proves the link is still this handle's.
	link := s.links[i].Load()
	if wordGen(s.words[i].Load()) != slot.generation() {
		return 0
	}
	return int(link)
}

// store sets the word of the slot's index (the handle's generation is ignored: w carries it).
func (s *Slots) store(slot Slot, w uint64) {
	if s.words[slot.index()].Swap(w) != w {
		s.gen.Add(1)
	}
}

// Generation changes whenever any slot's MAC or validity changes (a release included), so that
// readers caching MACs (the data plane's per-worker caches) know to drop them.
func (s *Slots) Generation() uint64 { return s.gen.Load() }

func macWord(mac [6]byte) uint64 {
	return uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
}

func wordMAC(w uint64) [6]byte {
	return [6]byte{byte(w >> 40), byte(w >> 32), byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)}
}

// usableStates are the NUD states whose link-layer address may be used to forward.
const usableStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// entryWord applies the state rules to a kernel neighbour entry: the word to store (MAC|valid)
// and true when the entry is usable; 0 and false otherwise.
func entryWord(state int, lladdr net.HardwareAddr) (uint64, bool) {
	if state&usableStates == 0 || len(lladdr) != 6 {
		return 0, false
	}
	mac := [6]byte(lladdr)
	if mac == ([6]byte{}) || mac[0]&1 != 0 { // zero or group (multicast/broadcast) address
		return 0, false
	}
	return macWord(mac) | validBit, true
}

// needsRevalidation reports whether a usable entry should be re-confirmed by a probe.
func needsRevalidation(state int) bool {
	return state&netlink.NUD_STALE != 0
}
