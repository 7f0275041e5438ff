package cluster

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/xdpsvc/lb/bench/tstest"
)

// TestNodeConflict: lb-a believes lb-z is dead (as in a partition, where lb-a's side took the
// VIPs over) and so holds every VIP, but lb-z still answers ARP for them: lb-a keeps every VIP,
// whatever lb-z's rank, as it does for a MAC of no member. Then lb-z is seen alive but the
// ownership view has not caught up (the moment before reconcile): for a VIP where lb-z ranks
// above, lb-a steps down at once (Lost event, Holds false) and takes it back after
// ConflictYield (Gained) since its view still gives it the VIP; where lb-a ranks above, it keeps.
func TestNodeConflict(t *testing.T) {
	w := newConflictWorld(t, 300*time.Millisecond)
	a, vips, zMAC := w.a, w.vips, w.zMAC

	var above, below netip.Addr
	for _, v := range vips {
		if ShouldStepDown(v, "lb-a", "lb-z") {
			above = v
		} else {
			below = v
		}
	}
	if !above.IsValid() || !below.IsValid() {
		t.Fatal("16 VIPs did not give both rankings")
	}
	if res := a.Conflict(above, zMAC); res.StepDown || res.Other != "lb-z" || !res.Held {
		t.Fatalf("dead higher-ranked lb-z: %+v", res)
	}
	if res := a.Conflict(above, [6]byte{2, 9, 9, 9, 9, 9}); res.StepDown || res.Other != "" {
		t.Fatalf("stranger's MAC: %+v", res)
	}
	// lb-z alive in the member records, the ownership view not yet recomputed: hold the event
	// loop off by taking the lock, flip the record, and report the conflicts before reconcile.
	a.mu.Lock()
	a.members["lb-z"].state = StateAlive
	a.mu.Unlock()
	if res := a.Conflict(below, zMAC); res.StepDown || res.Other != "lb-z" || !res.Held {
		t.Fatalf("lower-ranked lb-z: %+v", res)
	}
	w.reset()
	res := a.Conflict(above, zMAC)
	a.mu.Lock()
	a.members["lb-z"].state = StateDead // before the event loop's next reconcile (every second) sees it
	a.mu.Unlock()
	if !res.StepDown || res.Other != "lb-z" {
		t.Fatalf("higher-ranked lb-z: %+v", res)
	}
	if a.Holds(above) || len(a.Held()) != len(vips)-1 {
		t.Fatal("still holds the VIP after stepping down")
	}
	if again := a.Conflict(above, zMAC); again.Held || again.StepDown {
		t.Fatalf("second report while yielding: %+v", again)
	}
	// Generous: on a loaded machine the event goroutine may run late; the yield itself is 300 ms.
	tstest.Eventually(t, 5*time.Second, "Lost then Gained again after the yield", func() error {
		got := w.events()
		if len(got) == 2 && got[0].VIP == above && got[0].Change == Lost && got[0].Owner == "lb-z" &&
			got[1].VIP == above && got[1].Change == Gained && got[1].Owner == "lb-a" {
			return nil
		}
		return fmt.Errorf("events so far: %+v", got)
	})
	if !a.Holds(above) {
		t.Fatal("VIP not held again after the yield")
	}
}

// TestNodeConflictYieldEndsWhenTheOtherDies: a node that stepped aside for a member ranked above
// takes the VIP back as soon as that member dies, not after ConflictYield (here an hour).
func TestNodeConflictYieldEndsWhenTheOtherDies(t *testing.T) {
	w := newConflictWorld(t, time.Hour)
	a, vips, zMAC, ev, z := w.a, w.vips, w.zMAC, w.ev, w.z
	var above netip.Addr
	for _, v := range vips {
		if ShouldStepDown(v, "lb-a", "lb-z") {
			above = v
		}
	}
	a.mu.Lock()
	a.members["lb-z"].state = StateAlive // seen alive, the ownership view not yet recomputed
	a.mu.Unlock()
	if res := a.Conflict(above, zMAC); !res.StepDown {
		t.Fatalf("no step-down: %+v", res)
	}
	ev.NotifyLeave(z) // lb-z dies: reconcile runs
	tstest.EventuallyTrue(t, 2*time.Second, "the VIP is held again at once", func() bool { return a.Holds(above) })
	tstest.EventuallyTrue(t, 2*time.Second, "a Gained event for it", func() bool {
		for _, e := range w.events() {
			if e.VIP == above && e.Change == Gained && e.Owner == "lb-a" {
				return true
			}
		}
		return false
	})
}

// conflictWorld is lb-a (no quorum, 16 VIPs, every ownership event recorded) that once saw lb-z,
// an appliance with MAC zMAC, alive and now sees it dead, so lb-a holds every VIP.
type conflictWorld struct {
	a    *Node
	vips []netip.Addr
	zMAC [6]byte
	ev   *eventDelegate
	z    *memberlist.Node
	mu   sync.Mutex
	got  []OwnershipEvent
}

func newConflictWorld(t *testing.T, yield time.Duration) *conflictWorld {
	t.Helper()
	old := ConflictYield
	ConflictYield = yield
	t.Cleanup(func() { ConflictYield = old })
	w := &conflictWorld{vips: testVIPs(16), zMAC: [6]byte{2, 0, 0, 0, 0, 0x2a}}
	cfg := newMockNetwork(t, "lb-a").config(t, "lb-a", nil)
	cfg.RequireQuorum = false
	cfg.OnOwnership = func(e OwnershipEvent) {
		w.mu.Lock()
		w.got = append(w.got, e)
		w.mu.Unlock()
	}
	w.a = startNode(t, cfg)
	w.a.SetVIPs(w.vips)
	meta, err := EncodeMeta(Meta{Role: RoleAppliance, MACs: [][6]byte{w.zMAC}})
	if err != nil {
		t.Fatal(err)
	}
	w.ev = (*eventDelegate)(w.a)
	w.z = mlNode("lb-z", netip.MustParseAddrPort("127.0.0.1:1"), meta)
	w.ev.NotifyJoin(w.z)
	w.ev.NotifyLeave(w.z)
	tstest.EventuallyTrue(t, 2*time.Second, "lb-a holds every VIP with lb-z dead", func() bool { return len(w.a.Held()) == len(w.vips) })
	return w
}

// events returns the ownership events recorded so far.
func (w *conflictWorld) events() []OwnershipEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]OwnershipEvent(nil), w.got...)
}

// reset forgets the events recorded so far.
func (w *conflictWorld) reset() {
	w.mu.Lock()
	w.got = nil
	w.mu.Unlock()
}
