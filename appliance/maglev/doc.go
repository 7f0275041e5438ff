// Package maglev is Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4; weighted population as in Katran's
// MaglevHashV2) over the ready endpoints of one Service port.
//
// A Table maps a 64-bit flow hash onto one backend through a lookup table of a prime size M
// (65537 by default). Build fills it from a set of Backends named by stable keys such as
// "198.18.1.21:8080"; the data plane hashes the flow itself with HashFlow (5-tuple) or HashAddr
// (client address, for sessionAffinity ClientIP) and calls Table.Lookup.
//
// Invariants:
//   - Deterministic: the table depends only on the set of (key, weight) pairs and M, never on
//     input order, process, node or time. Backends are sorted by key, keys are hashed with a fixed
//     function (FNV-1a 64 finalised with two fixed mixers), and HashFlow/HashAddr use fixed
//     constants, so every appliance node builds the identical table and picks the same backend
//     for the same flow, which keeps flows on their backend when a VIP moves between nodes.
//   - Population: with equal weights every backend gets floor(M/N) or ceil(M/N) entries; with
//     weights each gets about M*w/sum(w) entries (within a few entries). Removing one of N
//     backends moves its own ~M/N entries plus a small share of the others'.
//   - Lookup returns an index into the slice given to Build (not the sorted order), or -1 for an
//     empty set; it is O(1), takes no lock and allocates nothing.
//
// # Concurrency
//
// A Table is never modified after Build/Builder.BuildInto returns it, so any number
// of data-plane goroutines may call Lookup concurrently once it is published (e.g. inside an
// atomic.Pointer snapshot). A Builder belongs to one goroutine (the snapshot builder); BuildInto
// must not be given a Table that readers can still see.
package maglev
