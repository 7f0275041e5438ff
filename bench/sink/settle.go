package sink

import (
	"time"
)

// Settled waits, bounded by two seconds, until the count stops changing (frames still in the receiving
// softirq when a generator returns land within milliseconds), and returns the frames and bytes counted.
func (s *Sink) Settled() (pkts, bytes uint64, err error) {
	deadline := time.Now().Add(2 * time.Second)
	prev := ^uint64(0)
	for {
		st, err := s.Stats()
		if err != nil {
			return 0, 0, err
		}
		if st.Packets == prev || time.Now().After(deadline) {
			return st.Packets, st.Bytes, nil
		}
		prev = st.Packets
		time.Sleep(50 * time.Millisecond)
	}
}
