package cluster

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// world simulates appliance nodes, each running its own VIPOwner, and which
// nodes can see which: a partition is stopping delivery between two groups.
type world struct {
	t      *testing.T
	names  []string
	owners map[string]*VIPOwner
	up     map[string]bool
	cut    map[[2]string]bool
	now    time.Time
	vips   []netip.Addr
}

func newWorld(t *testing.T, names []string, vips []netip.Addr, quorum bool, forget time.Duration) *world {
	w := &world{t: t, names: names, owners: map[string]*VIPOwner{}, up: map[string]bool{}, cut: map[[2]string]bool{},
		now: time.Unix(1_700_000_000, 0), vips: vips}
	for _, n := range names {
		w.owners[n] = NewVIPOwner(OwnerConfig{Self: n, RequireQuorum: quorum, ForgetDeadAfter: forget})
		w.owners[n].SetVIPs(vips)
		w.up[n] = true
	}
	w.step(0)
	return w
}

func (w *world) sees(a, b string) bool {
	return w.up[b] && !w.cut[[2]string{a, b}] && !w.cut[[2]string{b, a}]
}

func (w *world) partition(groupA, groupB []string) {
	for _, a := range groupA {
		for _, b := range groupB {
			w.cut[[2]string{a, b}] = true
		}
	}
}

func (w *world) heal() { w.cut = map[[2]string]bool{} }

func (w *world) step(d time.Duration) {
	w.now = w.now.Add(d)
	for _, n := range w.names {
		if !w.up[n] {
			continue
		}
		var alive []string
		for _, m := range w.names {
			if w.sees(n, m) {
				alive = append(alive, m)
			}
		}
		w.owners[n].Update(w.now, alive, nil)
	}
}

// holders returns, per VIP, the running nodes that hold it.
func (w *world) holders() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for _, v := range w.vips {
		out[v] = nil
		for _, n := range w.names {
			if w.up[n] && w.owners[n].Holds(v) {
				out[v] = append(out[v], n)
			}
		}
	}
	return out
}

func (w *world) requireExactlyOne(members []string) {
	w.t.Helper()
	for v, h := range w.holders() {
		want := Rank(v, members)[0]
		if len(h) != 1 || h[0] != want {
			w.t.Fatalf("%s held by %v, want exactly [%s]", v, h, want)
		}
	}
}

func TestVIPOwnerEvents(t *testing.T) {
	vip := netip.MustParseAddr("198.19.1.1")
	r := Rank(vip, []string{"lb-a", "lb-b", "lb-c"})
	first, second := r[0], r[1]
	o := NewVIPOwner(OwnerConfig{Self: second})
	now := time.Unix(0, 0)
	tests := []struct {
		name  string
		do    func() []OwnershipEvent
		want  []OwnershipEvent
		holds bool
	}{
		{"alone: claims", func() []OwnershipEvent { return o.SetVIPs([]netip.Addr{vip}) },
			[]OwnershipEvent{{VIP: vip, Owner: second, Change: Gained}}, true},
		{"others join: loses to first", func() []OwnershipEvent { return o.Update(now, r, nil) },
			[]OwnershipEvent{{VIP: vip, Owner: first, Standby: second, Previous: second, Change: Lost}}, false},
		{"same view: nothing", func() []OwnershipEvent { return o.Update(now, r, nil) }, nil, false},
		{"first dies: standby takes over", func() []OwnershipEvent { return o.Update(now, r[1:], nil) },
			[]OwnershipEvent{{VIP: vip, Owner: second, Standby: r[2], Previous: first, Change: Gained}}, true},
		{"vip removed: lost", func() []OwnershipEvent { return o.SetVIPs(nil) },
			[]OwnershipEvent{{VIP: vip, Previous: second, Change: Lost}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.do()
			if !slices.Equal(got, tc.want) {
				t.Fatalf("events = %+v, want %+v", got, tc.want)
			}
			if o.Holds(vip) != tc.holds {
				t.Fatalf("Holds = %v, want %v", o.Holds(vip), tc.holds)
			}
		})
	}
}

func TestVIPOwnerCrashMovesOnlyDeadNodesVIPs(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	w := newWorld(t, names, testVIPs(100), true, time.Minute)
	w.requireExactlyOne(names)
	before := w.holders()
	w.up["lb-b"] = false
	w.step(time.Second)
	w.requireExactlyOne([]string{"lb-a", "lb-c"})
	for v, h := range w.holders() {
		if before[v][0] != "lb-b" && h[0] != before[v][0] {
			t.Fatalf("%s moved from live %s to %s", v, before[v][0], h[0])
		}
	}
}

func TestVIPOwnerPartitions(t *testing.T) {
	five := []string{"lb-a", "lb-b", "lb-c", "lb-d", "lb-e"}
	tests := []struct {
		name     string
		nodes    []string
		minority []string
		majority []string
		quorum   bool
		// wantMinorityClaims: without quorum both sides claim (split brain).
		wantMinorityClaims bool
	}{
		{"2|3 with quorum", five, five[:2], five[2:], true, false},
		{"1|2 with quorum", five[:3], five[:1], five[1:3], true, false},
		{"2|3 without quorum", five, five[:2], five[2:], false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.nodes, testVIPs(60), tc.quorum, time.Hour)
			w.requireExactlyOne(tc.nodes)
			w.partition(tc.minority, tc.majority)
			w.step(time.Second)
			minorityClaims := 0
			for v, h := range w.holders() {
				var inMaj []string
				for _, n := range h {
					if slices.Contains(tc.majority, n) {
						inMaj = append(inMaj, n)
					} else {
						minorityClaims++
					}
				}
				if want := Rank(v, tc.majority)[0]; len(inMaj) != 1 || inMaj[0] != want {
					t.Fatalf("%s: majority side holders %v, want [%s]", v, inMaj, want)
				}
			}
			if tc.wantMinorityClaims != (minorityClaims > 0) {
				t.Fatalf("minority holds %d VIPs, want claims=%v", minorityClaims, tc.wantMinorityClaims)
			}
			for _, n := range tc.minority {
				if tc.quorum && w.owners[n].HasQuorum() {
					t.Fatalf("%s in the minority has quorum", n)
				}
			}
			w.heal()
			w.step(100 * time.Millisecond)
			w.requireExactlyOne(tc.nodes)
		})
	}
}

func TestVIPOwnerQuorumMembershipMemory(t *testing.T) {
	vips := testVIPs(20)
	t.Run("two nodes, one dies: blocked until forgotten", func(t *testing.T) {
		w := newWorld(t, []string{"lb-a", "lb-b"}, vips, true, 30*time.Second)
		w.up["lb-b"] = false
		w.step(time.Second)
		if n := len(w.owners["lb-a"].Held()); n != 0 {
			t.Fatalf("lb-a holds %d VIPs seeing 1 of 2 known members", n)
		}
		if got := w.owners["lb-a"].Known(); !slices.Equal(got, []string{"lb-a", "lb-b"}) {
			t.Fatalf("known = %v", got)
		}
		w.step(30 * time.Second)
		if n := len(w.owners["lb-a"].Held()); n != len(vips) {
			t.Fatalf("after ForgetDeadAfter lb-a holds %d VIPs, want %d", n, len(vips))
		}
		if got := w.owners["lb-a"].Known(); !slices.Equal(got, []string{"lb-a"}) {
			t.Fatalf("known after forgetting = %v", got)
		}
	})
	t.Run("graceful leave is forgotten at once", func(t *testing.T) {
		o := NewVIPOwner(OwnerConfig{Self: "lb-a", RequireQuorum: true, ForgetDeadAfter: time.Hour})
		o.SetVIPs(vips)
		now := time.Unix(0, 0)
		o.Update(now, []string{"lb-a", "lb-b"}, nil)
		o.Update(now, []string{"lb-a"}, []string{"lb-b"})
		if !o.HasQuorum() || len(o.Held()) != len(vips) {
			t.Fatalf("after lb-b left: quorum %v, held %d", o.HasQuorum(), len(o.Held()))
		}
	})
	t.Run("membership remembered across partition", func(t *testing.T) {
		w := newWorld(t, []string{"lb-a", "lb-b", "lb-c"}, vips, true, time.Hour)
		w.partition([]string{"lb-a"}, []string{"lb-b", "lb-c"})
		for range 10 {
			w.step(time.Minute)
			if len(w.owners["lb-a"].Held()) != 0 {
				t.Fatal("isolated lb-a claimed VIPs")
			}
		}
		w.heal()
		w.step(time.Second)
		w.requireExactlyOne([]string{"lb-a", "lb-b", "lb-c"})
	})

	t.Run("expected members: a node that sees nobody claims nothing", func(t *testing.T) {
		// A node started with the wrong key never sees the others: alone, it must not think it is
		// the whole cluster.
		o := NewVIPOwner(OwnerConfig{Self: "lb-x", RequireQuorum: true, ForgetDeadAfter: time.Hour, ExpectedMembers: 3})
		o.SetVIPs(vips)
		o.Update(time.Unix(0, 0), []string{"lb-x"}, nil)
		if o.HasQuorum() || len(o.Held()) != 0 {
			t.Fatalf("alone with ExpectedMembers 3: quorum %v, held %d", o.HasQuorum(), len(o.Held()))
		}
		o.Update(time.Unix(1, 0), []string{"lb-x", "lb-y"}, nil)
		if !o.HasQuorum() {
			t.Fatal("2 of 3 expected: no quorum")
		}
		// The floor also holds after ForgetDeadAfter: 1 of 3 never has quorum.
		o.Update(time.Unix(2, 0), []string{"lb-x"}, nil)
		o.Update(time.Unix(7200, 0), []string{"lb-x"}, nil)
		if o.HasQuorum() {
			t.Fatal("1 alive of 3 expected has quorum after forgetting the dead")
		}
	})
}

// TestVIPOwnerExcludedMembers: a member still syncing counts toward the quorum but holds no VIP;
// once it is placeable again it takes its share back.
func TestVIPOwnerExcludedMembers(t *testing.T) {
	vips := testVIPs(20)
	o := NewVIPOwner(OwnerConfig{Self: "lb-a", RequireQuorum: true, ExpectedMembers: 3})
	o.SetVIPs(vips)
	now := time.Unix(0, 0)
	o.SetExcluded([]string{"lb-c"})
	o.Update(now, []string{"lb-a", "lb-b", "lb-c"}, nil)
	if !o.HasQuorum() {
		t.Fatal("no quorum with 3 of 3 alive (one syncing)")
	}
	for _, v := range vips {
		if owner, _ := o.Owner(v); owner == "lb-c" || owner == "" {
			t.Fatalf("VIP %v placed on %q while lb-c syncs", v, owner)
		}
	}
	o.SetExcluded(nil)
	o.Update(now, []string{"lb-a", "lb-b", "lb-c"}, nil)
	if len(o.HeldBy("lb-c")) == 0 {
		t.Fatal("lb-c holds nothing after syncing")
	}
	// Everyone syncing (a cluster starting): nothing is placed, and nothing panics.
	o.SetExcluded([]string{"lb-a", "lb-b", "lb-c"})
	o.Update(now, []string{"lb-a", "lb-b", "lb-c"}, nil)
	if len(o.Held()) != 0 || len(o.HeldBy("lb-b")) != 0 {
		t.Fatal("VIPs placed while every member syncs")
	}
}
