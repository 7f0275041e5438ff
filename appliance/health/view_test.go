package health

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func ep(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestResolve(t *testing.T) {
	a, b, c := "lb-a", "lb-b", "lb-c"
	e1 := ep("198.18.1.21:8080")
	e2 := ep("198.18.1.22:8080")
	rep := func(origin string, gen uint64, down ...netip.AddrPort) Report {
		return Report{Origin: origin, Generation: gen, Down: down}
	}
	cases := []struct {
		name    string
		reports []Report
		alive   []string
		want    []netip.AddrPort
	}{
		{"no report from anyone: up", nil, []string{a, b, c}, nil},
		{"two of three say down", []Report{rep(a, 1, e1), rep(b, 1, e1), rep(c, 1)}, []string{a, b, c}, []netip.AddrPort{e1}},
		{"one of three says down: up (its own path may be broken)",
			[]Report{rep(a, 1, e1, e2), rep(b, 1), rep(c, 1)}, []string{a, b, c}, nil},
		{"only reporters count: one report decides everything",
			[]Report{rep(b, 1, e1, e2)}, []string{a, b, c}, []netip.AddrPort{e1, e2}},
		{"two reporters must agree", []Report{rep(a, 1, e1, e2), rep(b, 1, e2)}, []string{a, b}, []netip.AddrPort{e2}},
		{"dead member's report ignored",
			[]Report{rep(b, 1, e1, e2)}, []string{a, c}, nil},
		{"dead member's vote does not count",
			[]Report{rep(a, 1, e1), rep(b, 1, e1), rep(c, 1)}, []string{a, c}, nil},
		{"alive order and duplicates do not matter",
			[]Report{rep(a, 1, e1), rep(b, 1, e1), rep(c, 1)}, []string{c, a, b, a}, []netip.AddrPort{e1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewView()
			for _, r := range tc.reports {
				v.Merge(r)
			}
			got := slices.SortedFunc(maps.Keys(v.Resolve(tc.alive)), netip.AddrPort.Compare)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("down %v, want %v", got, tc.want)
			}
		})
	}
}

// TestResolveSameEverywhere: nodes that merged the same reports in different orders resolve
// the same down set.
func TestResolveSameEverywhere(t *testing.T) {
	names := []string{"lb-a", "lb-b", "lb-c"}
	var reports []Report
	for i, n := range names {
		var down []netip.AddrPort
		for j := range 40 {
			if (j>>i)&1 == 1 { // endpoint j is down in popcount(j&7) of the 3 reports
				down = append(down, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(j)}), 8080))
			}
		}
		reports = append(reports, Report{Origin: n, Generation: uint64(i + 1), Down: down})
	}
	want := Resolve(map[string]Report{"lb-a": reports[0], "lb-b": reports[1], "lb-c": reports[2]}, names)
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		v := NewView()
		for _, i := range order {
			v.Merge(reports[i])
		}
		if got := v.Resolve([]string{names[order[0]], names[order[1]], names[order[2]]}); !maps.Equal(got, want) {
			t.Fatalf("order %v: %v, want %v", order, got, want)
		}
	}
	if len(want) == 0 || len(want) == 40 {
		t.Fatalf("degenerate case: %d down", len(want))
	}
}

func TestMergeGenerations(t *testing.T) {
	v := NewView()
	e := ep("198.18.1.21:80")
	cases := []struct {
		name string
		r    Report
		want bool
	}{
		{"first", Report{Origin: "a", Generation: 5, Down: []netip.AddrPort{e}}, true},
		{"older ignored", Report{Origin: "a", Generation: 4}, false},
		{"same ignored", Report{Origin: "a", Generation: 5}, false},
		{"newer replaces", Report{Origin: "a", Generation: 6}, true},
		{"other origin", Report{Origin: "b", Generation: 1}, true},
	}
	for _, tc := range cases {
		if got := v.Merge(tc.r); got != tc.want {
			t.Fatalf("%s: Merge = %v, want %v", tc.name, got, tc.want)
		}
	}
	if d := v.Resolve([]string{"a"}); len(d) != 0 {
		t.Fatalf("newest report of a says nothing down, got %v", d)
	}
	v.Forget("a")
	if !v.Merge(Report{Origin: "a", Generation: 1, Down: []netip.AddrPort{e}}) {
		t.Fatal("after Forget a restarted origin counts again from any generation")
	}
	if got := v.Origins(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("origins %v", got)
	}
}

// TestViewBounded: reports from any number of names never grow the view past MaxViewOrigins,
// and Retain drops the origins that are not members.
func TestViewBounded(t *testing.T) {
	v := NewView()
	for i := range MaxViewOrigins + 500 {
		v.Merge(Report{Origin: fmt.Sprintf("forged-%d", i), Generation: 1})
	}
	if n := len(v.Origins()); n > MaxViewOrigins {
		t.Fatalf("view holds %d origins, bound %d", n, MaxViewOrigins)
	}
	v.Retain([]string{"forged-1", "lb-a"})
	if got := v.Origins(); !slices.Equal(got, []string{"forged-1"}) {
		t.Fatalf("after Retain: origins %v", got)
	}
	if !v.Merge(Report{Origin: "lb-a", Generation: 1}) {
		t.Fatal("a member's report refused after Retain made room")
	}
}

// TestViewAccept: a received report counts only from a live appliance, for its own name, with
// a generation not far ahead of the clock; a wild generation does not lock the origin out.
func TestViewAccept(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	gen := uint64(now.UnixNano())
	down := []netip.AddrPort{ep("198.18.1.21:80")}
	cases := []struct {
		name   string
		sender string
		live   bool
		r      Report
		want   error
	}{
		{"forged for another", "lb-b", true, Report{Origin: "lb-a", Generation: gen, Down: down}, ErrReportForeign},
		{"not a live appliance", "agent-1", false, Report{Origin: "agent-1", Generation: gen, Down: down}, ErrReportForeign},
		{"wild generation", "lb-a", true, Report{Origin: "lb-a", Generation: math.MaxUint64, Down: down}, ErrReportFuture},
		{"just past the lead", "lb-a", true, Report{Origin: "lb-a", Generation: gen + uint64(MaxGenerationLead) + 1}, ErrReportFuture},
		{"own report", "lb-a", true, Report{Origin: "lb-a", Generation: gen, Down: down}, nil},
		{"stale", "lb-a", true, Report{Origin: "lb-a", Generation: gen - 1}, ErrReportStale},
		{"newer, within the lead", "lb-a", true, Report{Origin: "lb-a", Generation: gen + uint64(time.Minute)}, nil},
	}
	v := NewView()
	for _, tc := range cases {
		if err := v.Accept(tc.sender, tc.live, tc.r, now); !errors.Is(err, tc.want) {
			t.Fatalf("%s: Accept = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := v.Origins(); !slices.Equal(got, []string{"lb-a"}) {
		t.Fatalf("origins %v, want only lb-a", got)
	}
	v.Forget("lb-a") // died: a restart counts again from a lower generation
	if err := v.Accept("lb-a", true, Report{Origin: "lb-a", Generation: 1}, now); err != nil {
		t.Fatalf("restarted origin: %v", err)
	}
}
