// Package neigh resolves the Ethernet address of every next hop the data plane forwards to
// (backends on the cluster segment; clients, or their gateway, on the external segment) from
// the kernel's route and neighbour tables through netlink, so that no frame is ever sent to a
// wrong or zero MAC.
//
// Two halves:
//   - Slots is the data plane's view: a fixed array of atomic 64-bit words, one per next hop
//     (MAC in the low 48 bits, bit 48 = valid). The data plane keeps a Slot number in its flow
//     entry and per packet calls Slots.MAC(slot): no lock, no map, no allocation. Slot 0
//     (NoSlot) is never valid, so a zeroed flow entry cannot yield a MAC.
//   - Resolver is the control side. Resolve(dst) picks the next hop with a route lookup
//     (gateway, else dst itself, plus the outgoing link), gives it a slot, and keeps the slot's
//     word in step with the kernel: an initial dump, netlink neighbour notifications
//     (NeighSubscribeWithOptions), and a periodic re-dump as fallback. A next hop with no usable
//     entry (missing, INCOMPLETE, FAILED) is probed every ProbeInterval: by default a UDP
//     datagram of zero bytes to its discard port from a socket in the resolver's namespace,
//     which makes the kernel run ARP/NDISC; or by Config.Probe (e.g. the data plane's own ARP
//     sender). A STALE entry in use is probed every RevalidateInterval so that the kernel
//     re-confirms it (a neighbour whose MAC changed without a gratuitous ARP otherwise stays
//     STALE with the old MAC, because the kernel sends nothing to it itself).
//
// State rules: REACHABLE, STALE, DELAY, PROBE, PERMANENT and NOARP carry a usable MAC; a MAC that
// is missing, not 6 bytes, all-zero or a group address is never used; INCOMPLETE, FAILED, NONE
// and a deleted entry make the slot invalid until the kernel learns the address again.
//
// Invariants: a slot, once given to a next hop (link index, IP), names that next hop for the
// life of the Resolver (slots are never reused, so a flow holding a slot can never get another
// neighbour's MAC); at most MaxSlots-1 next hops. The destination → slot map is published as an
// immutable Snapshot behind an atomic.Pointer, replaced on every change.
//
// Goroutines: Slots.MAC, Slots.LinkIndex, Resolver.Snapshot, Snapshot.Slot and Resolver.Request
// are lock-free and may be called from any goroutine, the data plane included. Resolve,
// ResolveAll, Refresh and Close are control-path calls (they take a mutex and do netlink I/O);
// Run is called once, on its own goroutine, and returns when its context ends.
package neigh
