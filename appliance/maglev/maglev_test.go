package maglev

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xdpsvc/lb/packet"
)

func backendsN(n int) []Backend {
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{Key: fmt.Sprintf("198.18.%d.%d:8080", 1+i/250, 1+i%250)}
	}
	return bs
}

// keysBySlot returns the backend key owning every slot.
func keysBySlot(t *Table, bs []Backend) []string {
	out := make([]string, t.Size())
	for s := range out {
		if i := t.Entry(uint64(s)); i >= 0 {
			out[s] = bs[i].Key
		}
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		size uint64
		ok   bool
	}{
		{"default 65537", DefaultTableSize, true},
		{"small prime 3", 3, true},
		{"prime 251", 251, true},
		{"prime 131071", 131071, true},
		{"largest prime below limit", 16777213, true}, // validated only: building it takes seconds
		{"zero", 0, false},
		{"two is below minimum", 2, false},
		{"even 65536", 65536, false},
		{"odd composite 65535", 65535, false},
		{"square of prime 65521^2 too large", 65521 * 65521, false},
		{"composite 1000001", 1000001, false},
		{"above maximum", MaxTableSize + 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{TableSize: tc.size}.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%d) = %v, want ok=%v", tc.size, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrTableSize) {
				t.Fatalf("error %v does not wrap ErrTableSize", err)
			}
			if tc.size > 1<<17 {
				return
			}
			_, err = Build(backendsN(2), Config{TableSize: tc.size})
			if (err == nil) != tc.ok {
				t.Fatalf("Build with size %d = %v, want ok=%v", tc.size, err, tc.ok)
			}
		})
	}
}

func TestPopulationEqualWeights(t *testing.T) {
	tests := []struct {
		name string
		n    int
		m    uint64
	}{
		{"1 backend", 1, DefaultTableSize},
		{"2 backends", 2, DefaultTableSize},
		{"3 backends", 3, DefaultTableSize},
		{"7 backends", 7, DefaultTableSize},
		{"100 backends", 100, DefaultTableSize},
		{"1000 backends", 1000, DefaultTableSize},
		{"small table 251 with 17", 17, 251},
		{"table equals backends", 13, 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs := backendsN(tc.n)
			tab, err := Build(bs, Config{TableSize: tc.m})
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := int(tc.m)/tc.n, (int(tc.m)+tc.n-1)/tc.n
			counted := make([]int, tc.n)
			for s := range tc.m {
				i := tab.Entry(s)
				if i < 0 || i >= tc.n {
					t.Fatalf("slot %d has entry %d", s, i)
				}
				counted[i]++
			}
			sum := 0
			for i, c := range counted {
				if c != tab.Count(i) {
					t.Errorf("backend %d: Count %d, counted %d", i, tab.Count(i), c)
				}
				if c < lo || c > hi {
					t.Errorf("backend %d has %d entries, want %d or %d", i, c, lo, hi)
				}
				sum += c
			}
			if sum != int(tc.m) {
				t.Fatalf("entries sum %d, want %d", sum, tc.m)
			}
		})
	}
}

func TestWeightsProportional(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
	}{
		{"1:2:3", []uint32{1, 2, 3}},
		{"1:1:10", []uint32{1, 1, 10}},
		{"5:1", []uint32{5, 1}},
		{"zero counts as one", []uint32{0, 1, 2}},
		{"100:37:1:1", []uint32{100, 37, 1, 1}},
		{"equal large weights", []uint32{1000, 1000, 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs := backendsN(len(tc.weights))
			var sum float64
			for i, w := range tc.weights {
				bs[i].Weight = w
				sum += float64(max(w, 1))
			}
			tab, err := Build(bs, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			m := float64(tab.Size())
			for i, w := range tc.weights {
				want := m * float64(max(w, 1)) / sum
				got := float64(tab.Count(i))
				// Weighted population is exact up to the rounding of the last pass: allow
				// the number of backends plus 0.1% of the table.
				if d := got - want; d > float64(len(tc.weights))+m/1000 || -d > float64(len(tc.weights))+m/1000 {
					t.Errorf("backend %d weight %d: %v entries, want about %.1f", i, w, got, want)
				}
			}
		})
	}
}

func TestDisruptionOnRemoveAndAdd(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10, 50, 100, 500} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			bs := backendsN(n)
			full, err := Build(bs, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			before := keysBySlot(full, bs)
			m := float64(full.Size())
			limit := m/float64(n) + m/100
			for _, victim := range []int{0, n / 2, n - 1} {
				rest := append(append([]Backend(nil), bs[:victim]...), bs[victim+1:]...)
				tab, err := Build(rest, DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				after := keysBySlot(tab, rest)
				moved := 0
				for s := range before {
					if before[s] != after[s] {
						moved++
					}
				}
				if float64(moved) > limit {
					t.Errorf("removing backend %d of %d moved %d slots, want <= %.0f", victim, n, moved, limit)
				}
				// Adding it back restores the identical table.
				again := keysBySlot(mustBuild(t, append(rest, bs[victim])), append(rest, bs[victim]))
				for s := range before {
					if before[s] != again[s] {
						t.Fatalf("re-adding backend %d: slot %d is %q, was %q", victim, s, again[s], before[s])
					}
				}
			}
		})
	}
}

func mustBuild(t testing.TB, bs []Backend) *Table {
	t.Helper()
	tab, err := Build(bs, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestDeterministicAcrossOrders(t *testing.T) {
	bs := backendsN(37)
	for i := range bs {
		bs[i].Weight = uint32(1 + i%4)
	}
	want := keysBySlot(mustBuild(t, bs), bs)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		shuffled := append([]Backend(nil), bs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := keysBySlot(mustBuild(t, shuffled), shuffled)
		for s := range want {
			if got[s] != want[s] {
				t.Fatalf("round %d: slot %d is %q, want %q", round, s, got[s], want[s])
			}
		}
	}
}

// TestGolden pins the table and the flow hashes: they are a contract between nodes (and between
// versions during a rolling upgrade), so any change here must be deliberate.
func TestGolden(t *testing.T) {
	bs := []Backend{{Key: "198.18.1.21:8080"}, {Key: "198.18.1.22:8080"}, {Key: "198.18.1.23:8080", Weight: 2}}
	tab := mustBuild(t, bs)
	var h uint64 = 14695981039346656037
	for s := range tab.Size() {
		h ^= uint64(tab.Entry(s) + 1)
		h *= 1099511628211
	}
	k := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, SrcPort: 40000, DstPort: 80}
	copy(k.SrcAddr[:], []byte{198, 18, 0, 100})
	copy(k.DstAddr[:], []byte{198, 19, 0, 10})
	k6 := packet.FlowKey{Family: packet.FamilyIPv6, Proto: packet.ProtoUDP, SrcPort: 5353, DstPort: 53}
	k6.SrcAddr[0], k6.SrcAddr[15] = 0x20, 1
	k6.DstAddr[0], k6.DstAddr[15] = 0x20, 2
	got := []uint64{h, uint64(tab.Count(0)), uint64(tab.Count(1)), uint64(tab.Count(2)),
		HashFlow(&k), HashFlow(&k6), HashAddr(packet.FamilyIPv4, &k.SrcAddr), HashAddr(packet.FamilyIPv6, &k6.SrcAddr)}
	want := goldenValues
	if len(want) == 0 {
		t.Fatalf("golden values not set; got %#v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("golden value %d = %#x, want %#x (all: %#v)", i, got[i], want[i], got)
		}
	}
}

var goldenValues = []uint64{0x998c5753194a9990, 0x4000, 0x4000, 0x8001, 0x924459daf22a158a, 0x5d57f517d8dcfa74, 0x9b3a0510b4f1563e, 0x3e7d2568ef2fac8a}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		backends []Backend
		size     uint64
		want     error
	}{
		{"empty key", []Backend{{Key: "a"}, {Key: ""}}, DefaultTableSize, ErrEmptyKey},
		{"duplicate key", []Backend{{Key: "a"}, {Key: "b"}, {Key: "a", Weight: 3}}, DefaultTableSize, ErrDuplicateKey},
		{"more backends than entries", backendsN(4), 3, ErrTooManyBackends},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBuilder(Config{TableSize: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			tab := mustBuild(t, backendsN(2)) // a used table: an error must leave it empty
			err = b.BuildInto(tab, tc.backends)
			if !errors.Is(err, tc.want) {
				t.Fatalf("BuildInto = %v, want %v", err, tc.want)
			}
			if got := tab.Lookup(12345); got != -1 {
				t.Fatalf("Lookup after error = %d, want -1", got)
			}
			if _, err := Build(tc.backends, Config{TableSize: tc.size}); !errors.Is(err, tc.want) {
				t.Fatalf("Build = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEmptyAndNil(t *testing.T) {
	tab, err := Build(nil, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var nilTab *Table
	for _, h := range []uint64{0, 1, 1 << 63, ^uint64(0)} {
		if got := tab.Lookup(h); got != -1 {
			t.Fatalf("empty Lookup(%#x) = %d", h, got)
		}
		if got := nilTab.Lookup(h); got != -1 {
			t.Fatalf("nil Lookup(%#x) = %d", h, got)
		}
	}
}

func TestBuilderReuse(t *testing.T) {
	b, err := NewBuilder(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var tab Table
	for _, n := range []int{100, 3, 0, 250, 100} {
		bs := backendsN(n)
		if err := b.BuildInto(&tab, bs); err != nil {
			t.Fatal(err)
		}
		want := keysBySlot(mustBuild(t, bs), bs)
		got := keysBySlot(&tab, bs)
		for s := range want {
			if got[s] != want[s] {
				t.Fatalf("n=%d: reused build differs at slot %d", n, s)
			}
		}
	}
	bs := backendsN(100)
	allocs := testing.AllocsPerRun(20, func() {
		if err := b.BuildInto(&tab, bs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("BuildInto into a recycled table allocates %v times", allocs)
	}
}

func TestLookupAndHashAllocateNothing(t *testing.T) {
	tab := mustBuild(t, backendsN(10))
	k := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, SrcPort: 1, DstPort: 80}
	allocs := testing.AllocsPerRun(1000, func() {
		k.SrcPort++
		if tab.Lookup(HashFlow(&k)) < 0 || tab.Lookup(HashAddr(k.Family, &k.SrcAddr)) < 0 {
			t.Fatal("no backend")
		}
	})
	if allocs != 0 {
		t.Fatalf("Lookup+HashFlow allocate %v times", allocs)
	}
}

func TestHashFlowUsesEveryField(t *testing.T) {
	base := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, SrcPort: 40000, DstPort: 80}
	copy(base.SrcAddr[:], []byte{198, 18, 0, 100})
	copy(base.DstAddr[:], []byte{198, 19, 0, 10})
	base6 := base
	base6.Family = packet.FamilyIPv6
	tests := []struct {
		name   string
		base   packet.FlowKey
		change func(*packet.FlowKey)
	}{
		{"v4 src addr", base, func(k *packet.FlowKey) { k.SrcAddr[3]++ }},
		{"v4 dst addr", base, func(k *packet.FlowKey) { k.DstAddr[0]++ }},
		{"v4 src port", base, func(k *packet.FlowKey) { k.SrcPort++ }},
		{"v4 dst port", base, func(k *packet.FlowKey) { k.DstPort++ }},
		{"v4 proto", base, func(k *packet.FlowKey) { k.Proto = packet.ProtoUDP }},
		{"v4 swapped", base, func(k *packet.FlowKey) { *k = k.Reverse() }},
		{"v6 src high byte", base6, func(k *packet.FlowKey) { k.SrcAddr[15]++ }},
		{"v6 dst high byte", base6, func(k *packet.FlowKey) { k.DstAddr[9]++ }},
		{"v6 src port", base6, func(k *packet.FlowKey) { k.SrcPort++ }},
		{"family", base, func(k *packet.FlowKey) { k.Family = packet.FamilyIPv6 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.base
			tc.change(&k)
			b := tc.base
			if HashFlow(&k) == HashFlow(&b) {
				t.Fatalf("hash did not change")
			}
		})
	}
	// IPv4 keys ignore the unused 12 address bytes; HashAddr ignores them too.
	k := base
	k.SrcAddr[10] = 7
	if HashFlow(&k) != HashFlow(&base) || HashAddr(packet.FamilyIPv4, &k.SrcAddr) != HashAddr(packet.FamilyIPv4, &base.SrcAddr) {
		t.Fatal("IPv4 hash depends on bytes beyond the address")
	}
}

// TestFlowSpread checks that sequential client ports spread evenly over the backends.
func TestFlowSpread(t *testing.T) {
	const n, flows = 10, 200000
	tab := mustBuild(t, backendsN(n))
	counts := make([]int, n)
	k := packet.FlowKey{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, DstPort: 80}
	copy(k.DstAddr[:], []byte{198, 19, 0, 10})
	for i := range flows {
		copy(k.SrcAddr[:], []byte{198, 18, 0, byte(1 + i%200)})
		k.SrcPort = uint16(1024 + i/200)
		counts[tab.Lookup(HashFlow(&k))]++
	}
	for i, c := range counts {
		if d := float64(c)/(flows/n) - 1; d > 0.03 || d < -0.03 {
			t.Errorf("backend %d got %d flows, want %d ±3%%", i, c, flows/n)
		}
	}
}

func FuzzBuild(f *testing.F) {
	f.Add([]byte("198.18.1.1:80\x00198.18.1.2:80\x00"), uint8(1), uint16(251))
	f.Add([]byte("a\x00a\x00"), uint8(0), uint16(3))
	f.Add([]byte("\x00"), uint8(7), uint16(65535))
	f.Fuzz(func(t *testing.T, keys []byte, weightSeed uint8, size uint16) {
		var bs []Backend
		start := 0
		for i, c := range keys {
			if c == 0 {
				bs = append(bs, Backend{Key: string(keys[start:i]), Weight: uint32(weightSeed+uint8(len(bs))) % 5})
				start = i + 1
			}
		}
		tab, err := Build(bs, Config{TableSize: uint64(size)})
		if err != nil {
			return
		}
		sum := 0
		for i := range bs {
			sum += tab.Count(i)
		}
		if len(bs) > 0 && sum != int(size) {
			t.Fatalf("counts sum %d, want %d", sum, size)
		}
		for s := range uint64(size) {
			if e := tab.Entry(s); e >= len(bs) || (len(bs) > 0 && e < 0) {
				t.Fatalf("slot %d: entry %d of %d backends", s, e, len(bs))
			}
		}
	})
}
