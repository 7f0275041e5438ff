// Package conntrack is the appliance's connection-tracking table: for every flow it keeps both
// directions' keys (and so both NAT translations), the protocol state, the last-seen time and the
// small metadata the data plane needs, and it hands out SNAT ports.
//
// A flow's original direction is client → frontend (198.18.0.100:41000 → 198.19.1.1:80); after
// full NAT it leaves as SNAT address:port → backend:targetPort. Its reply direction key is
// backend:targetPort → SNAT address:port, translated back to frontend → client. Lookup finds a
// flow by either key and returns a Handle (entry index, generation, matched direction), not a
// copy; Translate gives the rewritten key, Meta the Service/backend IDs and interfaces, Update
// applies a packet (TCP flags, last-seen time, counters). Workers should look up a whole RX
// batch with LookupBatch: a lookup is two dependent memory accesses (index slot, entry), and in a
// big table each is a cache miss (250-370 ns on the project's KVM guests); the batch form issues
// the misses of up to 64 keys together.
//
// # Memory
//
// Each family has its own table (IPv4 and IPv6 are separate code paths over one generic core):
// a fixed array of entries (64 bytes per IPv4 flow, 112 per IPv6 flow), a uint32 free list, and
// an open-addressing hash index of 64-bit slots (hash bits | entry index | direction), sized to
// the next power of two ≥ 3 slots per flow and split into up to 4096 shards. Everything is
// allocated once in New and holds no pointers, so the GC never scans it. 10M IPv4 flows take
// 904 MiB (about 95 bytes per flow).
//
// # Time
//
// No method reads the clock: the caller passes now (nanoseconds on any monotonic scale, e.g.
// time.Now().UnixNano() read once per batch). Times are kept as 32-bit ticks of 2^24 ns.
// Timeouts follow Linux's nf_conntrack defaults per state. Expiry is lazy (Lookup treats an
// expired flow as a miss; Insert replaces it) and amortised: each worker calls Expire(now,
// budget) once per batch, which examines the next budget entries of a shared round-robin
// cursor. There is no sweep of the whole table.
//
// # Concurrency
//
// A flow's two directions can arrive on different AF_XDP queues (the reply's RSS hash differs)
// and a frame can only be handled by its queue's worker, so one Table is shared by all workers.
// Every method is safe for concurrent use:
//
//   - Lookup, LookupBatch, Translate, Meta and Update take no lock. Index slots and entry fields are read with
//     atomic loads. A shard's seqlock (odd while a delete shifts slots) makes Lookup retry a probe
//     that overlapped a delete; an entry's generation (in its meta word, odd while live) is read
//     before and after its key, so a key that matched belongs to one live incarnation. Handles
//     carry the generation: Translate/Meta/Update fail (return false) once the flow is deleted or
//     reused, and the worker treats the packet as a miss. Update changes state and last-seen time
//     with one CAS on the meta word (only when something changes: last-seen moves in 16.8 ms
//     ticks) and counts the packet with an atomic add.
//   - Insert, Delete, Expire and Import take the mutexes of the (at most two) shards that hold the
//     flow's two keys, in shard order, so two workers inserting the same key or the same SNAT
//     reply key serialise and the second sees the first's entry. A new flow is rarer than a
//     packet; the locks are never held across anything but a few index probes and stores.
//     Free entries are a lock-free stack (CAS with an ABA tag).
//
// # SNAT ports and uniqueness
//
// Without FlagNoSNAT, Insert picks the SNAT port for (SNAT address, backend, protocol)
// pseudo-randomly from [SNATPortMin, SNATPortMax] (a keyed hash of the original key and the
// attempt number, so the expected number of tries is O(1) until the range is nearly used up) and
// takes it only if the candidate reply key is not in the table, checked under the lock of its
// shard as Linux nf_nat does: no two live flows ever share a translated tuple. A port is free
// again only when its flow's entry is removed, and entries leave only by expiry of their state's
// timeout, by Delete, by eviction of a flow that was never assured, or by reclaim: when every
// candidate port is taken, a flow whose backend never answered and that has been idle for a
// second gives its port to the new flow (Stats.SNATReclaimed). A TCP flow that has never seen a
// reply past SYN_SENT (a loose pickup from a bare ACK) also expires after TCPUnrepliedTimeout
// instead of its state's timeout, so that a client cannot pin a backend's ports with bare ACKs.
//
// # Full table
//
// When no entry is free, Insert examines EvictScanEntries entries from a shared cursor and evicts
// the first that is expired or not assured (TCP that has not completed its handshake, UDP and
// ICMP that have not seen a reply, loose pickups without a reply). Assured flows are never
// evicted, so a SYN flood cannot push out established connections; when nothing is evictable
// the new flow is refused and counted (Stats.Full).
//
// # New flows per source
//
// SourceLimiter caps the rate of new flows per source address (generic cell rate algorithm, one
// atomic word per hashed bucket, no lock, no allocation). The data plane asks it before Insert,
// so one sender can neither fill the table nor exhaust a backend's SNAT ports within seconds.
//
// # Export and import
//
// AppendExport and AppendExportChanged write compact versioned records (41 bytes per IPv4 flow)
// for syncing flows to another node; Import validates every field of such untrusted input and
// inserts the flows.
package conntrack
