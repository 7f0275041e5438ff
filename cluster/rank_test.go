package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func testVIPs(n int) []netip.Addr {
	vips := make([]netip.Addr, n)
	for i := range vips {
		vips[i] = netip.AddrFrom4([4]byte{198, 19, 1 + byte(i/250), byte(i%250 + 1)})
	}
	return vips
}

func TestRankDeterministicAndOrderFree(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		want    int
	}{
		{"three", []string{"lb-a", "lb-b", "lb-c"}, 3},
		{"reversed", []string{"lb-c", "lb-b", "lb-a"}, 3},
		{"duplicates and empty", []string{"lb-a", "", "lb-b", "lb-a", "lb-c"}, 3},
		{"one", []string{"lb-a"}, 1},
		{"none", nil, 0},
	}
	ref := map[netip.Addr][]string{}
	for _, v := range testVIPs(50) {
		ref[v] = Rank(v, []string{"lb-b", "lb-c", "lb-a"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range testVIPs(50) {
				got := Rank(v, tc.members)
				if len(got) != tc.want {
					t.Fatalf("Rank(%s) = %v, want %d members", v, got, tc.want)
				}
				if tc.want == 3 && !slices.Equal(got, ref[v]) {
					t.Fatalf("Rank(%s, %v) = %v, want %v", v, tc.members, got, ref[v])
				}
			}
		})
	}
	v4 := netip.MustParseAddr("198.19.1.7")
	mapped := netip.AddrFrom16(v4.As16())
	if !slices.Equal(Rank(v4, []string{"a", "b", "c"}), Rank(mapped, []string{"a", "b", "c"})) {
		t.Fatal("IPv4 and IPv4-mapped forms rank differently")
	}
}

func TestRankSpreads(t *testing.T) {
	tests := []struct {
		name    string
		nodes   int
		vips    int
		minEach int
		maxEach int
	}{
		{"100 over 3", 3, 100, 20, 47},
		{"300 over 3", 3, 300, 75, 125},
		{"200 over 5", 5, 200, 25, 55},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var members []string
			for i := range tc.nodes {
				members = append(members, fmt.Sprintf("lb-%d", i))
			}
			owners, standbys := map[string]int{}, map[string]int{}
			for _, v := range testVIPs(tc.vips) {
				r := Rank(v, members)
				owners[r[0]]++
				standbys[r[1]]++
				if r[0] == r[1] {
					t.Fatalf("%s: owner is its own standby", v)
				}
			}
			for _, m := range members {
				if owners[m] < tc.minEach || owners[m] > tc.maxEach {
					t.Errorf("%s owns %d VIPs, want %d..%d (all: %v)", m, owners[m], tc.minEach, tc.maxEach, owners)
				}
				if standbys[m] < tc.minEach || standbys[m] > tc.maxEach {
					t.Errorf("%s stands by for %d VIPs, want %d..%d (all: %v)", m, standbys[m], tc.minEach, tc.maxEach, standbys)
				}
			}
		})
	}
}

func TestRankRemovingANodeMovesOnlyItsVIPs(t *testing.T) {
	all := []string{"lb-a", "lb-b", "lb-c"}
	for _, dead := range all {
		t.Run("kill "+dead, func(t *testing.T) {
			var rest []string
			for _, m := range all {
				if m != dead {
					rest = append(rest, m)
				}
			}
			moved := 0
			for _, v := range testVIPs(100) {
				before, after := Rank(v, all), Rank(v, rest)
				if before[0] != dead {
					if after[0] != before[0] {
						t.Fatalf("%s moved from live %s to %s", v, before[0], after[0])
					}
					continue
				}
				moved++
				if after[0] != before[1] {
					t.Fatalf("%s: dead owner %s handed to %s, want its standby %s", v, dead, after[0], before[1])
				}
			}
			if moved == 0 {
				t.Fatalf("%s owned no VIPs", dead)
			}
		})
	}
}

func TestShouldStepDown(t *testing.T) {
	vip := netip.MustParseAddr("198.19.1.1")
	r := Rank(vip, []string{"lb-a", "lb-b", "lb-c"})
	tests := []struct {
		name        string
		self, other string
		want        bool
	}{
		{"first sees second", r[0], r[1], false},
		{"second sees first", r[1], r[0], true},
		{"third sees first", r[2], r[0], true},
		{"first sees third", r[0], r[2], false},
		{"unknown mac", r[2], "", false},
		{"itself", r[1], r[1], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShouldStepDown(vip, tc.self, tc.other); got != tc.want {
				t.Fatalf("ShouldStepDown(%s, %s) = %v, want %v", tc.self, tc.other, got, tc.want)
			}
		})
	}
	// Symmetry: for any pair exactly one steps down.
	for _, v := range testVIPs(100) {
		if ShouldStepDown(v, "x", "y") == ShouldStepDown(v, "y", "x") {
			t.Fatalf("%s: step-down rule not antisymmetric", v)
		}
	}
}

func BenchmarkRank3(b *testing.B) {
	vips := testVIPs(256)
	members := []string{"lb-a", "lb-b", "lb-c"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Rank(vips[i&255], members)
	}
}

func BenchmarkShouldStepDown(b *testing.B) {
	vip := netip.MustParseAddr("198.19.1.1")
	b.ReportAllocs()
	for b.Loop() {
		ShouldStepDown(vip, "lb-a", "lb-b")
	}
}

func TestShouldStepDownAllocatesNothing(t *testing.T) {
	vip := netip.MustParseAddr("198.19.1.1")
	if n := testing.AllocsPerRun(100, func() { ShouldStepDown(vip, "lb-a", "lb-b") }); n != 0 {
		t.Fatalf("ShouldStepDown allocates %v times", n)
	}
}
