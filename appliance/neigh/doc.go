// Package neigh resolves the Ethernet address of every next hop the data plane forwards to
// (backends on the cluster segment; clients, or their gateway, on the external segment) from
// the kernel's route and neighbour tables through netlink, so that no frame is ever sent to a
// wrong or zero MAC.
//
// Two halves:
//   - Slots is the data plane's view: a fixed array of atomic 64-bit words, one per slot (MAC in
//     the low 48 bits, bit 48 = valid, the slot's generation above). The data plane gets a Slot
//     handle (index and generation) for a next hop from the daemon's NeighborSource, keeps the
//     MAC in each worker's small cache, and drops that cache when Slots.Generation changes;
//     Slots.MAC(slot) is one atomic load, no lock, no map, no allocation. Slot 0 (NoSlot) is
//     never valid, so a zero handle cannot yield a MAC.
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
// Invariants: a Slot handle names one next hop (link index, IP) for as long as it reads anything:
// a flow holding a handle can never get another neighbour's MAC. At most MaxSlots-1 next hops at
// once, at most MaxDestinations destinations. The destination → slot map is published as an
// immutable Snapshot behind an atomic.Pointer, replaced on every change; its handles are always
// those of live next hops.
//
// Forgetting: without it, endpoint churn over a long life would use up the slots. Prune(inUse),
// called by the owner with the destinations still in use (the plan's endpoints, the live flows'
// destinations), forgets the others and releases every next hop no remaining destination goes
// through. Releasing is safe by generations, and slow by a quarantine:
//   - Release moves the slot's word to the index's next generation with no MAC, in one atomic
//     store. Every existing handle carries the old generation, so Slots.MAC and Slots.LinkIndex
//     refuse it from that instant — a flow's handle, or one read from an older Snapshot — and
//     Slots.Generation changes, so MAC caches are dropped. The handle given out when the index
//     is reused carries the new generation.
//   - A released index is given out again only after Config.SlotQuarantine, and only once no
//     never-used index is left. The generation has SlotGenerations values, so a stale handle
//     could match again only after SlotGenerations releases of its index, that is no sooner than
//     SlotGenerations × SlotQuarantine. That must exceed how long anyone keeps a stale handle:
//     a holder whose handle reads invalid looks its destination up again (Snapshot.Slot, else
//     Request) instead of keeping it, so a handle outlives its next hop only in a flow that sees
//     no packet, which conntrack expires within the longest flow idle timeout. DefaultConfig's
//     quarantine makes the wrap-around far longer than that.
//
// Generations were chosen over a quarantine alone because a quarantine alone is safe only if it
// outlasts every flow timeout (days for established TCP), which would keep released slots idle
// for as long and let churn exhaust them anyway; with generations a stale handle fails closed at
// once, and the quarantine only has to make a generation wrap-around longer than a flow's life.
//
// # Concurrency
//
// Slots.MAC, Slots.LinkIndex, Resolver.Snapshot, Snapshot.Slot and Resolver.Request
// are lock-free and may be called from any goroutine, the data plane included. Resolve,
// ResolveAll, Refresh, Prune and Close are control-path calls (they take a mutex; all but Prune
// do netlink I/O); Run is called once, on its own goroutine, and returns when its context ends.
package neigh
