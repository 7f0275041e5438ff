package pktgen

import (
	"time"

	"github.com/asavie/xdp"
)

// descRing hands out the prebuilt slots round robin. It never allocates.
type descRing struct {
	slots []xdp.Desc
	next  int
}

// fill copies the next len(batch) slot descriptors into batch.
func (r *descRing) fill(batch []xdp.Desc) {
	for i := range batch {
		batch[i] = r.slots[r.next]
		r.next++
		if r.next == len(r.slots) {
			r.next = 0
		}
	}
}

// window counts descriptors between the TX ring and the completion ring: at most capacity (the completion
// ring's size) may be outstanding, so every submitted frame has a completion slot and a slot is never handed
// out twice before it completed (the ring holds at least capacity slots).
type window struct {
	outstanding int
	capacity    int
}

// room is how many descriptors may be submitted now.
func (w *window) room() int { return w.capacity - w.outstanding }

func (w *window) submitted(n int) { w.outstanding += n }

func (w *window) completed(n int) { w.outstanding -= n }

// tokenBucket limits the rate in packets per second, taken a batch at a time. Burst bounds how far it may
// catch up after a late wake-up.
type tokenBucket struct {
	ratePPS float64
	burst   float64
	tokens  float64
	last    time.Time
}

func newTokenBucket(ratePPS float64, batch int, now time.Time) *tokenBucket {
	burst := max(2*float64(batch), ratePPS*0.005) // 5 ms worth (sleep overshoot), at least two batches
	return &tokenBucket{ratePPS: ratePPS, burst: burst, tokens: float64(batch), last: now}
}

// take returns how many of want packets may go now (0..want) and spends them.
func (b *tokenBucket) take(now time.Time, want int) int {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.ratePPS)
		b.last = now
	}
	n := min(want, int(b.tokens))
	b.tokens -= float64(n)
	return n
}

// wait is how long until want tokens are there.
func (b *tokenBucket) wait(want int) time.Duration {
	missing := float64(want) - b.tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / b.ratePPS * float64(time.Second))
}
