package cluster

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestNodeConflict: lb-a believes lb-z is dead (as in a partition, where lb-a's side took the
// VIPs over) and so holds every VIP, but lb-z still answers ARP for them: lb-a keeps every VIP,
// whatever lb-z's rank, as it does for a MAC of no member. Then lb-z is seen alive but the
// ownership view has not caught up (the moment before reconcile): for a VIP where lb-z ranks
// above, lb-a steps down at once (Lost event, Holds false) and takes it back after
// ConflictYield (Gained) since its view still gives it the VIP; where lb-a ranks above, it keeps.
func TestNodeConflict(t *testing.T) {
	old := ConflictYield
	ConflictYield = 300 * time.Millisecond
	t.Cleanup(func() { ConflictYield = old })
	var mu sync.Mutex
	var got []OwnershipEvent
	cfg := testConfig(t, "lb-a", nil)
	cfg.RequireQuorum = false
	cfg.OnOwnership = func(e OwnershipEvent) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}
	a := startNode(t, cfg)
	vips := testVIPs(16)
	a.SetVIPs(vips)
	zMAC := [6]byte{2, 0, 0, 0, 0, 0x2a}
	meta, err := EncodeMeta(Meta{Role: RoleAppliance, MACs: [][6]byte{zMAC}})
	if err != nil {
		t.Fatal(err)
	}
	ev := (*events)(a)
	ev.NotifyJoin(mlNode("lb-z", netip.MustParseAddrPort("127.0.0.1:1"), meta))
	ev.NotifyLeave(mlNode("lb-z", netip.MustParseAddrPort("127.0.0.1:1"), meta))
	eventually(t, 2*time.Second, "lb-a holds every VIP with lb-z dead", func() bool { return len(a.Held()) == len(vips) })

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
	mu.Lock()
	got = nil
	mu.Unlock()
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
	eventually(t, 2*time.Second, "Lost then Gained again after the yield", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2 && got[0].VIP == above && got[0].Change == Lost && got[0].Owner == "lb-z" &&
			got[1].VIP == above && got[1].Change == Gained && got[1].Owner == "lb-a"
	})
	if !a.Holds(above) {
		t.Fatal("VIP not held again after the yield")
	}
}

// TestNodeConflictYieldEndsWhenTheOtherDies: a node that stepped aside for a member ranked above
// takes the VIP back as soon as that member dies, not after ConflictYield (here an hour).
func TestNodeConflictYieldEndsWhenTheOtherDies(t *testing.T) {
	old := ConflictYield
	ConflictYield = time.Hour
	t.Cleanup(func() { ConflictYield = old })
	var mu sync.Mutex
	var got []OwnershipEvent
	cfg := testConfig(t, "lb-a", nil)
	cfg.RequireQuorum = false
	cfg.OnOwnership = func(e OwnershipEvent) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}
	a := startNode(t, cfg)
	vips := testVIPs(16)
	a.SetVIPs(vips)
	zMAC := [6]byte{2, 0, 0, 0, 0, 0x2b}
	meta, err := EncodeMeta(Meta{Role: RoleAppliance, MACs: [][6]byte{zMAC}})
	if err != nil {
		t.Fatal(err)
	}
	ev := (*events)(a)
	z := mlNode("lb-z", netip.MustParseAddrPort("127.0.0.1:1"), meta)
	ev.NotifyJoin(z)
	ev.NotifyLeave(z)
	eventually(t, 2*time.Second, "lb-a holds every VIP with lb-z dead", func() bool { return len(a.Held()) == len(vips) })
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
	eventually(t, 2*time.Second, "the VIP is held again at once", func() bool { return a.Holds(above) })
	eventually(t, 2*time.Second, "a Gained event for it", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range got {
			if e.VIP == above && e.Change == Gained && e.Owner == "lb-a" {
				return true
			}
		}
		return false
	})
}
