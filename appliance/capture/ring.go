package capture

import "sync/atomic"

// Direction says which side of the translation a record shows.
type Direction uint8

const (
	// DirRX is a frame as received, before the pipeline touched it.
	DirRX Direction = iota
	// DirTX is a frame as sent, after translation (or the answer that replaced it).
	DirTX
)

func (d Direction) String() string {
	if d == DirTX {
		return "tx"
	}
	return "rx"
}

// Record describes one captured frame.
type Record struct {
	// TimeUnixNano is the batch time of the worker that saw the frame.
	TimeUnixNano int64
	// Port is the data-plane port index the frame arrived on (DirRX) or left by (DirTX).
	Port uint16
	// Dir is before (rx) or after (tx) translation.
	Dir Direction
	// Length is the frame's length on the wire.
	Length uint32
	// CapLength is how many of its bytes were kept (at most the session's snap length).
	CapLength uint32
}

// Ring is a bounded single-producer single-consumer queue of captured frames, preallocated
// when the session is armed. The producer is one data-plane worker, the consumer the Stream
// goroutine; neither ever waits for the other.
type Ring struct {
	filter *Filter
	snap   int
	meta   []Record
	data   []byte
	mask   uint64

	head    atomic.Uint64 // published records; written only by the producer
	tail    atomic.Uint64 // consumed records; written only by the consumer
	dropped atomic.Uint64 // records not kept because the ring was full (producer)
	matched atomic.Uint64 // received frames that matched before or after translation (producer)

	// Producer state between Begin and End.
	pendSlot   bool // the before-copy sits in slot head, unpublished
	pendMatch  bool // the before-frame matched
	pendPort   uint16
	pendTime   int64
	pendLength uint32
}

func newRing(f *Filter, slots, snap int) *Ring {
	return &Ring{filter: f, snap: snap, meta: make([]Record, slots), data: make([]byte, slots*snap), mask: uint64(slots - 1)}
}

func (r *Ring) free(head uint64) bool { return head-r.tail.Load() < uint64(len(r.meta)) }

func (r *Ring) put(head uint64, frame []byte, port uint16, dir Direction, now int64) {
	i := head & r.mask
	n := copy(r.data[int(i)*r.snap:int(i+1)*r.snap], frame)
	r.meta[i] = Record{TimeUnixNano: now, Port: port, Dir: dir, Length: uint32(len(frame)), CapLength: uint32(n)}
}

// Begin is called by the worker before the pipeline processes frame, received on port at
// batch time now. It evaluates the filter and copies the frame into the next slot, unpublished.
func (r *Ring) Begin(frame []byte, port int, now int64) {
	r.pendMatch = r.filter.Match(frame)
	r.pendPort, r.pendTime, r.pendLength = uint16(port), now, uint32(len(frame))
	head := r.head.Load()
	r.pendSlot = r.free(head)
	if r.pendSlot {
		r.put(head, frame, r.pendPort, DirRX, now)
	}
}

// End is called by the worker after the pipeline: sent tells whether the frame leaves (then
// after is its new content and outPort its egress port). If the frame matched before or after
// translation, both versions are published; a version without a free slot is counted in
// Dropped.
func (r *Ring) End(sent bool, after []byte, outPort int) {
	match := r.pendMatch || (sent && r.filter.Match(after))
	if !match {
		r.pendSlot = false
		return
	}
	r.matched.Store(r.matched.Load() + 1)
	head := r.head.Load()
	if r.pendSlot {
		head++
		r.head.Store(head)
	} else {
		r.dropped.Store(r.dropped.Load() + 1)
	}
	r.pendSlot = false
	if !sent {
		return
	}
	if !r.free(head) {
		r.dropped.Store(r.dropped.Load() + 1)
		return
	}
	r.put(head, after, uint16(outPort), DirTX, r.pendTime)
	r.head.Store(head + 1)
}

// Pop hands the oldest record and its bytes to fn (valid only during the call) and frees its
// slot; it returns false when the ring is empty. Consumer only.
func (r *Ring) Pop(fn func(Record, []byte)) bool {
	tail := r.tail.Load()
	if tail == r.head.Load() {
		return false
	}
	i := tail & r.mask
	m := r.meta[i]
	fn(m, r.data[int(i)*r.snap:int(i)*r.snap+int(m.CapLength)])
	r.tail.Store(tail + 1)
	return true
}

// Dropped is how many records (before or after versions of matching frames) were not kept
// because the ring was full.
func (r *Ring) Dropped() uint64 { return r.dropped.Load() }

// Matched is how many received frames matched the filter before or after translation; each
// gives two records (before and after) or one (dropped by the pipeline).
func (r *Ring) Matched() uint64 { return r.matched.Load() }
