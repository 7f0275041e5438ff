package maglev

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// referenceBuild is the textbook population (NSDI 2016 pseudocode 1 with Katran's weight
// credits), probing every permutation entry with plain modulo arithmetic. The optimised Builder
// must give exactly the same table.
func referenceBuild(bs []Backend, m uint64) []string {
	sorted := slices.Clone(bs)
	slices.SortFunc(sorted, func(a, b Backend) int { return strings.Compare(a.Key, b.Key) })
	n := len(sorted)
	off, skip, next, cum := make([]uint64, n), make([]uint64, n), make([]uint64, n), make([]uint64, n)
	var maxW uint64
	for i, b := range sorted {
		h := keyHash(b.Key)
		off[i] = fmix(h^offsetSeed) % m
		skip[i] = fmix(h^skipSeed)%(m-1) + 1
		maxW = max(maxW, uint64(max(b.Weight, 1)))
	}
	out := make([]string, m)
	placed := uint64(0)
	for placed < m {
		for i := 0; i < n && placed < m; i++ {
			cum[i] += uint64(max(sorted[i].Weight, 1))
			if cum[i] < maxW {
				continue
			}
			cum[i] -= maxW
			c := (off[i] + next[i]*skip[i]) % m
			for out[c] != "" {
				next[i]++
				c = (off[i] + next[i]*skip[i]) % m
			}
			out[c] = sorted[i].Key
			next[i]++
			placed++
		}
	}
	return out
}

func TestMatchesReference(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		m       uint64
		weights func(i int) uint32
	}{
		{"3 of 3", 3, 3, nil},
		{"1 of 5", 1, 5, nil},
		{"5 of 7", 5, 7, nil},
		{"17 of 251", 17, 251, nil},
		{"100 of 65537", 100, 65537, nil},
		{"7 of 65537", 7, 65537, nil},
		{"1000 of 65537", 1000, 65537, nil},
		{"weighted 40 of 4099", 40, 4099, func(i int) uint32 { return uint32(1 + i%7) }},
		{"weighted 100 of 65537", 100, 65537, func(i int) uint32 { return uint32(1 + i%3) }},
		{"one heavy of 10", 10, 1009, func(i int) uint32 { return uint32(1 + 9*(i/9)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs := backendsN(tc.n)
			if tc.weights != nil {
				for i := range bs {
					bs[i].Weight = tc.weights(i)
				}
			}
			tab, err := Build(bs, Config{TableSize: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			got, want := keysBySlot(tab, bs), referenceBuild(bs, tc.m)
			for s := range want {
				if got[s] != want[s] {
					t.Fatalf("slot %d: %q, reference %q", s, got[s], want[s])
				}
			}
		})
	}
}

func TestModM(t *testing.T) {
	for _, m := range []uint64{3, 251, 65537, 16777213} {
		t.Run(fmt.Sprint(m), func(t *testing.T) {
			r := newModM(m)
			for _, a := range []uint64{0, 1, m - 1, m, m + 1, 2*m - 1, (m - 1) * (m - 1), 2 * m * (m - 1), 1<<50 - 1} {
				if got := r.reduce(a); got != a%m {
					t.Fatalf("reduce(%d) = %d, want %d", a, got, a%m)
				}
			}
			for _, x := range []uint64{1, 2, m - 1, m / 2} {
				if inv := r.pow(x, m-2); r.reduce(inv*x) != 1 {
					t.Fatalf("inverse of %d mod %d wrong: %d", x, m, inv)
				}
			}
		})
	}
}
