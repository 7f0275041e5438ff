package dataplane

import (
	"testing"
	"time"
)

func TestReplyLimiter(t *testing.T) {
	l := newReplyLimiter(100, 5) // one reply per 10 ms, bursts of 5
	now := int64(time.Hour)
	l.last = now
	n := 0
	for range 1000 {
		if l.allow(now) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("a flood at one instant got %d replies, want the burst (5)", n)
	}
	if l.allow(now + int64(5*time.Millisecond)) {
		t.Fatal("a reply before one interval passed")
	}
	if !l.allow(now + int64(10*time.Millisecond)) {
		t.Fatal("no reply after one interval")
	}
	// A second of flood after a long pause: the burst plus the rate, not more.
	later := now + int64(time.Minute)
	n = 0
	for i := range 100_000 {
		if l.allow(later + int64(i)*int64(10*time.Microsecond)) {
			n++
		}
	}
	if n < 100 || n > 106 {
		t.Fatalf("one second of flood got %d replies, want about 105", n)
	}
	off := newReplyLimiter(0, 0)
	for range 100 {
		if !off.allow(now) {
			t.Fatal("rate 0 (off) refused")
		}
	}
	if testing.AllocsPerRun(100, func() { l.allow(later) }) != 0 {
		t.Fatal("allow allocates")
	}
}
