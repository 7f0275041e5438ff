package dataplane

// fakeIO is the one in-memory FrameIO of the data plane's tests and benchmarks, in two modes:
//
//   - queued (&fakeIO{}): frames queued with push are received once each, into fresh buffers,
//     and what the worker sends is kept for take. held counts frames handed out and not yet
//     returned; released counts frames handed back.
//   - replay (newReplayIO): the same prebuilt frames are received on every Receive, copied into
//     buffers allocated once, and what is sent is discarded: the pipeline in batches with no
//     I/O and no allocation.
type fakeIO struct {
	rx       [][]byte
	sent     [][]byte
	released int
	held     int // frames handed to the worker and not yet returned

	replaying bool     // replay mode (newReplayIO)
	replay    [][]byte // replay mode: the frames every Receive hands out
	bufs      [][]byte // replay mode: one receive buffer per frame of replay
}

// newReplayIO returns a fakeIO in replay mode; nil frames receives nothing.
func newReplayIO(frames [][]byte) *fakeIO {
	f := &fakeIO{replaying: true, replay: frames}
	for range frames {
		f.bufs = append(f.bufs, make([]byte, 2048))
	}
	return f
}

// push queues b to be received once.
func (f *fakeIO) push(b []byte) { f.rx = append(f.rx, b) }

// take returns what was sent since the last take.
func (f *fakeIO) take() [][]byte { s := f.sent; f.sent = nil; return s }

func (f *fakeIO) Receive(frames []Frame) int {
	if f.replaying {
		n := min(len(frames), len(f.replay))
		for i := range n {
			k := copy(f.bufs[i], f.replay[i])
			frames[i] = Frame{Addr: uint64(i), Data: f.bufs[i][:k]}
		}
		return n
	}
	n := 0
	for n < len(frames) && len(f.rx) > 0 {
		buf := make([]byte, 2048)
		k := copy(buf, f.rx[0])
		frames[n] = Frame{Addr: uint64(n), Data: buf[:k]}
		f.rx = f.rx[1:]
		n++
	}
	f.held += n
	return n
}

func (f *fakeIO) Transmit(frames []Frame) int {
	if !f.replaying {
		for _, fr := range frames {
			f.sent = append(f.sent, append([]byte(nil), fr.Data...))
		}
		f.held -= len(frames)
	}
	return len(frames)
}

func (f *fakeIO) TransmitCopies(data [][]byte) int {
	if !f.replaying {
		for _, d := range data {
			f.sent = append(f.sent, append([]byte(nil), d...))
		}
	}
	return len(data)
}

func (f *fakeIO) Release(frames []Frame) {
	if !f.replaying {
		f.released += len(frames)
		f.held -= len(frames)
	}
}
