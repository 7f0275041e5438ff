package neigh

import (
	"net/netip"
	"time"
)

// Prune forgets every destination for which inUse returns false and releases every next hop
// that no remaining destination goes through, so that a long-lived Resolver does not run out of
// slots (ErrNoSlots) or destinations (ErrTooManyDestinations) as endpoints come and go. It
// returns how many destinations it forgot and how many next hops it released.
//
// inUse must report true for every destination the caller still forwards to: the endpoints of
// the current plan and the destinations of live flows. It is called with the Resolver's mutex
// held, so it must not call the Resolver.
//
// A released slot is invalid at once: its generation moves on, so every handle of it (in a
// flow, or read from an older Snapshot) makes Slots.MAC and Slots.LinkIndex fail, and
// Slots.Generation changes so that MAC caches are dropped. It is given to another next hop only
// after Config.SlotQuarantine, and only once no never-used slot is left. A destination forgotten
// while still in use is not harmful: the next Resolve or Request of it resolves it again.
//
// Control path: takes the mutex, no netlink I/O; publishes a new Snapshot when a destination
// was forgotten.
func (r *Resolver) Prune(inUse func(netip.Addr) bool) (destinations, nextHops int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for dst := range r.dests {
		if !inUse(dst) {
			delete(r.dests, dst)
			destinations++
		}
	}
	if destinations > 0 {
		r.publishLocked()
		r.destinationsPruned.Add(uint64(destinations))
	}
	used := make([]bool, len(r.info))
	for _, slot := range r.dests {
		used[slot.index()] = true
	}
	now := r.clock()
	for key, slot := range r.byNeigh {
		if !used[slot.index()] {
			r.releaseLocked(key, slot, now)
			nextHops++
		}
	}
	if nextHops > 0 {
		r.nextHopsReleased.Add(uint64(nextHops))
	}
	return destinations, nextHops
}

// releaseLocked takes slot back from key: the word moves to the next generation with no MAC
// (every handle of slot reads invalid from here on), and the index waits out the quarantine.
func (r *Resolver) releaseLocked(key neighKey, slot Slot, now time.Time) {
	index := slot.index()
	delete(r.byNeigh, key)
	in := &r.info[index]
	*in = slotInfo{gen: (in.gen + 1) & slotGenMask}
	r.slots.store(slot, genWord(in.gen))
	r.slots.links[index].Store(0)
	r.released = append(r.released, releasedSlot{index: index, reusableAt: now.Add(r.cfg.SlotQuarantine)})
	r.log.Debug("next hop released", "backend", key.ip.String(), "iface", key.link, "slot", index)
}
