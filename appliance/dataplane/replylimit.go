package dataplane

import "time"

// Locally generated replies (ARP replies, ICMP echo replies, TCP RSTs, ICMP unreachables) are
// rate limited per worker, so that the appliance answers a flood of spoofed frames with at most
// a trickle and is never a reflector; Linux limits its own ICMP the same way
// (net.ipv4.icmp_msgs_per_sec, icmp_msgs_burst).
const (
	// DefaultLocalRepliesPerSecond is each worker's sustained rate of local replies.
	DefaultLocalRepliesPerSecond = 1000 // Linux's icmp_msgs_per_sec
	// DefaultLocalReplyBurst is how many local replies a worker may send at once.
	DefaultLocalReplyBurst = 50 // Linux's icmp_msgs_burst
)

// replyLimiter is a token bucket owned by one worker (no atomics, no lock): tokens accrue at
// perSecond up to burst, and each local reply takes one. The zero value allows nothing; a
// limiter with perSecond 0 allows everything.
type replyLimiter struct {
	perSecond int64
	burst     int64
	tokens    int64 // credit in ns×perSecond units: one reply costs one second (1e9)
	last      int64 // ns, the worker's batch clock
}

func newReplyLimiter(perSecond, burst int) replyLimiter {
	l := replyLimiter{perSecond: int64(perSecond), burst: int64(max(burst, 1))}
	l.tokens = l.burst * int64(time.Second)
	return l
}

// allow reports whether one more local reply may be sent at now, and takes its token if so.
func (l *replyLimiter) allow(now int64) bool {
	if l.perSecond == 0 {
		return true
	}
	if d := now - l.last; d > 0 {
		l.tokens = min(l.tokens+d*l.perSecond, l.burst*int64(time.Second))
	}
	l.last = now
	if l.tokens < int64(time.Second) {
		return false
	}
	l.tokens -= int64(time.Second)
	return true
}
