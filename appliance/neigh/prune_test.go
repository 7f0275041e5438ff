package neigh

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// manualClock is a Resolver clock that moves only when the test steps it.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func useManualClock(r *Resolver) *manualClock {
	c := &manualClock{now: time.Unix(1_000_000, 0)}
	r.clock = c.Now
	return c
}

// churnAddr is the n-th endpoint address of a churn test; churnMAC is its neighbour's MAC.
func churnAddr(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 2 + byte(n>>8), byte(n)}) }

func churnMAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xcc, 0, 0, byte(n >> 8), byte(n)}
}

// addOnLink gives the fake kernel an on-link route to the n-th churn address and a REACHABLE
// entry for it.
func addOnLink(k *fakeKernel, n int) netip.Addr {
	a := churnAddr(n)
	k.mu.Lock()
	k.routes[a] = netlink.Route{LinkIndex: 3, Type: unix.RTN_UNICAST}
	k.mu.Unlock()
	k.setNeigh(3, a.String(), netlink.NUD_REACHABLE, churnMAC(n))
	return a
}

func macIs(got [6]byte, want net.HardwareAddr) bool {
	return net.HardwareAddr(got[:]).String() == want.String()
}

// TestPruneChurnBeyondMaxSlots is pod churn: over the Resolver's life far more distinct
// endpoints (each its own next hop) come and go than there are slots or destinations. Before
// Prune existed, Resolve failed with ErrNoSlots once MaxSlots-1 next hops had ever been seen.
func TestPruneChurnBeyondMaxSlots(t *testing.T) {
	r, k, _ := newFake(t) // 8 slots: 7 next hops at once
	r.cfg.MaxDestinations = 4
	r.cfg.SlotQuarantine = time.Minute
	clock := useManualClock(r)
	const rounds, perRound = 40, 3 // 120 next hops over time
	n := 0
	for round := range rounds {
		current := map[netip.Addr]int{}
		for range perRound {
			current[addOnLink(k, n)] = n
			n++
		}
		for a, i := range current {
			slot, err := r.Resolve(a)
			if err != nil {
				t.Fatalf("round %d: endpoint %d of %d ever seen: %v", round, i+1, n, err)
			}
			if mac, ok := r.Slots().MAC(slot); !ok || !macIs(mac, churnMAC(i)) {
				t.Fatalf("round %d: %v has MAC %x ok=%v, want %v", round, a, mac, ok, churnMAC(i))
			}
		}
		dests, hops := r.Prune(func(netip.Addr) bool { return false }) // the round's endpoints leave
		if dests != perRound || hops != perRound {
			t.Fatalf("round %d: pruned %d destinations and %d next hops, want %d each", round, dests, hops, perRound)
		}
		clock.Step(r.cfg.SlotQuarantine)
	}
	st := r.Stats()
	if st.NextHops != 0 || st.Destinations != 0 || st.NextHopsReleased != rounds*perRound {
		t.Fatalf("after churn: %+v", st)
	}
}

// TestPruneKeepsWhatIsInUse: a destination in use keeps its slot and MAC; a next hop shared with
// a forgotten destination (a gateway) stays while another destination goes through it.
func TestPruneKeepsWhatIsInUse(t *testing.T) {
	r, k, _ := newFake(t)
	k.setNeigh(2, "198.18.0.1", netlink.NUD_REACHABLE, macB)
	k.setNeigh(3, "198.18.1.21", netlink.NUD_REACHABLE, macA)
	keep := map[netip.Addr]bool{netip.MustParseAddr("198.18.0.78"): true, netip.MustParseAddr("198.18.1.21"): true}
	slots := map[netip.Addr]Slot{}
	for _, s := range []string{"198.18.0.77", "198.18.0.78", "198.18.1.21", "198.18.1.22"} {
		a := netip.MustParseAddr(s)
		slot, err := r.Resolve(a)
		if err != nil {
			t.Fatal(err)
		}
		slots[a] = slot
	}
	dests, hops := r.Prune(func(a netip.Addr) bool { return keep[a] })
	if dests != 2 || hops != 1 { // 198.18.0.77 and 198.18.1.22 forgotten; only 198.18.1.22's next hop unused
		t.Fatalf("pruned %d destinations and %d next hops, want 2 and 1", dests, hops)
	}
	for a, slot := range slots {
		got, known := r.Snapshot().Slot(a)
		if known != keep[a] || (known && got != slot) {
			t.Fatalf("%v: snapshot slot %d known=%v, want %d known=%v", a, got, known, slot, keep[a])
		}
	}
	if mac, ok := r.Slots().MAC(slots[netip.MustParseAddr("198.18.0.77")]); !ok || !macIs(mac, macB) {
		t.Fatalf("gateway slot still used by 198.18.0.78: MAC %x ok=%v", mac, ok)
	}
	if mac, ok := r.Slots().MAC(slots[netip.MustParseAddr("198.18.1.21")]); !ok || !macIs(mac, macA) {
		t.Fatalf("kept destination: MAC %x ok=%v", mac, ok)
	}
}

// TestPrunedSlotInvalidAtOnceAndQuarantined: a released slot reads invalid through every handle
// of it at once, is not given to another next hop before SlotQuarantine has passed, and once it
// is, the old handles still read invalid while the new one reads the new neighbour's MAC.
func TestPrunedSlotInvalidAtOnceAndQuarantined(t *testing.T) {
	r, k, _ := newFake(t)
	r.cfg.MaxSlots = 2 // one next hop at a time
	r.slots = NewSlots(2)
	r.cfg.SlotQuarantine = time.Minute
	clock := useManualClock(r)
	k.setNeigh(3, "198.18.1.21", netlink.NUD_REACHABLE, macA)
	k.setNeigh(3, "198.18.1.22", netlink.NUD_REACHABLE, macB)
	a, b := netip.MustParseAddr("198.18.1.21"), netip.MustParseAddr("198.18.1.22")
	old, err := r.Resolve(a)
	if err != nil {
		t.Fatal(err)
	}
	if mac, ok := r.Slots().MAC(old); !ok || !macIs(mac, macA) || r.Slots().LinkIndex(old) != 3 {
		t.Fatalf("before prune: MAC %x ok=%v link %d", mac, ok, r.Slots().LinkIndex(old))
	}
	gen := r.Slots().Generation()
	r.Prune(func(netip.Addr) bool { return false })
	if mac, ok := r.Slots().MAC(old); ok || mac != ([6]byte{}) {
		t.Fatalf("pruned slot still reads MAC %x ok=%v", mac, ok)
	}
	if link := r.Slots().LinkIndex(old); link != 0 {
		t.Fatalf("pruned slot still reads link %d", link)
	}
	if r.Slots().Generation() == gen {
		t.Fatal("release did not change Slots.Generation: MAC caches would keep the old MAC")
	}
	if _, known := r.Snapshot().Slot(a); known {
		t.Fatal("pruned destination is still in the snapshot")
	}
	for _, wait := range []time.Duration{0, r.cfg.SlotQuarantine - time.Nanosecond} {
		clock.Step(wait)
		if slot, err := r.Resolve(b); !errors.Is(err, ErrNoSlots) {
			t.Fatalf("%v into the quarantine: Resolve = slot %d, %v; want ErrNoSlots", wait, slot, err)
		}
	}
	clock.Step(time.Nanosecond)
	slot, err := r.Resolve(b)
	if err != nil {
		t.Fatalf("after the quarantine: %v", err)
	}
	if slot.index() != old.index() || slot == old {
		t.Fatalf("reused slot %#x, old handle %#x: want the same index, another generation", slot, old)
	}
	if mac, ok := r.Slots().MAC(slot); !ok || !macIs(mac, macB) {
		t.Fatalf("new handle: MAC %x ok=%v, want %v", mac, ok, macB)
	}
	if mac, ok := r.Slots().MAC(old); ok || r.Slots().LinkIndex(old) != 0 {
		t.Fatalf("old handle reads the new neighbour: MAC %x ok=%v link %d", mac, ok, r.Slots().LinkIndex(old))
	}
	if st := r.Stats(); st.ReleasedSlots != 0 || st.NextHops != 1 || st.DestinationsPruned != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSlotHandleGenerations(t *testing.T) {
	s := NewSlots(4)
	w, _ := entryWord(netlink.NUD_REACHABLE, macA)
	s.store(makeSlot(2, 5), w|genWord(5))
	tests := []struct {
		name string
		slot Slot
		ok   bool
	}{
		{"current handle", makeSlot(2, 5), true},
		{"older generation", makeSlot(2, 4), false},
		{"newer generation", makeSlot(2, 6), false},
		{"generation wraps", makeSlot(2, SlotGenerations+5), true},
		{"other index", makeSlot(1, 5), false},
		{"largest index", makeSlot(maxSlots-1, 5), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := s.MAC(tc.slot); ok != tc.ok {
				t.Fatalf("MAC(%#x) ok = %v, want %v", tc.slot, ok, tc.ok)
			}
		})
	}
	if makeSlot(1, SlotGenerations-1).index() != 1 || makeSlot(1, SlotGenerations-1).generation() != SlotGenerations-1 {
		t.Fatal("handle does not round-trip index and generation")
	}
}

// TestPruneConcurrentReaders churns next hops through few slots with no quarantine (for -race):
// a reader holding a handle across releases and reuses, or reading an old Snapshot, must only
// ever see its own destination's MAC or nothing.
func TestPruneConcurrentReaders(t *testing.T) {
	r, k, _ := newFake(t)
	r.cfg.MaxSlots = 4
	r.slots = NewSlots(4)
	r.cfg.SlotQuarantine = time.Nanosecond
	const endpoints = 12
	for n := range endpoints {
		addOnLink(k, n)
	}
	var stop atomic.Bool
	var wrong atomic.Value
	var wg sync.WaitGroup
	for reader := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held := map[int]Slot{}
			for i := reader; !stop.Load(); i++ {
				n := i % endpoints
				if s, ok := r.Snapshot().Slot(churnAddr(n)); ok {
					held[n] = s
				}
				if mac, ok := r.Slots().MAC(held[n]); ok && !macIs(mac, churnMAC(n)) {
					wrong.Store(churnAddr(n).String() + " read " + net.HardwareAddr(mac[:]).String())
				}
			}
		}()
	}
	for round := range 1000 {
		current := map[netip.Addr]bool{}
		for j := range 3 {
			a := churnAddr((round + j) % endpoints)
			current[a] = true
			if _, err := r.Resolve(a); err != nil {
				t.Errorf("round %d: %v", round, err)
				break
			}
		}
		r.Prune(func(a netip.Addr) bool { return current[a] && a != churnAddr(round%endpoints) })
	}
	stop.Store(true)
	wg.Wait()
	if w := wrong.Load(); w != nil {
		t.Fatal(w)
	}
}
