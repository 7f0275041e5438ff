package cluster

import (
	"net/netip"
	"sort"
)

// weight is the rendezvous (highest-random-weight) score of node for vip:
// FNV-1a over the 16-byte form of the address, a zero separator and the node
// name, finished with the splitmix64 mixer so that short names still spread.
func weight(vip netip.Addr, node string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	a := vip.Unmap().As16()
	for _, b := range a {
		h ^= uint64(b)
		h *= prime
	}
	h ^= 0
	h *= prime
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// ranksAbove reports whether node a ranks above node b for vip: the higher
// weight wins, equal weights go to the lower name.
func ranksAbove(vip netip.Addr, a, b string) bool {
	wa, wb := weight(vip, a), weight(vip, b)
	if wa != wb {
		return wa > wb
	}
	return a < b
}

// Rank orders members for vip by rendezvous hashing: element 0 holds the
// VIP, element 1 is its standby. The result depends only on the VIP and the
// set of names (not their order; duplicates and empty names are removed), so
// every node that sees the same members computes the same ranking, and
// removing a member moves only the VIPs it ranked first for.
func Rank(vip netip.Addr, members []string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if m != "" {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	uniq := out[:0]
	for i, m := range out {
		if i == 0 || m != out[i-1] {
			uniq = append(uniq, m)
		}
	}
	out = uniq
	type scored struct {
		name string
		w    uint64
	}
	sc := make([]scored, len(out))
	for i, m := range out {
		sc[i] = scored{m, weight(vip, m)}
	}
	// out is sorted by name, so a stable sort by weight breaks ties by name.
	sort.SliceStable(sc, func(i, j int) bool { return sc[i].w > sc[j].w })
	for i := range sc {
		out[i] = sc[i].name
	}
	return out
}

// ShouldStepDown is the conflict rule for "another node answers for my VIP":
// self, which believes it holds vip, must stop announcing it when other (the
// member name behind the MAC seen answering) ranks above self for vip. The
// rule is symmetric, so of two nodes that see each other answering exactly
// one steps down. An empty other (a MAC that belongs to no known member) never
// makes self step down: the caller should log and count it instead.
func ShouldStepDown(vip netip.Addr, self, other string) bool {
	if other == "" || other == self {
		return false
	}
	return ranksAbove(vip, other, self)
}
