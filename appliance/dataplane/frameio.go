package dataplane

import "github.com/xdpsvc/lb/appliance/xsk"

// Frame is one received frame that stays in its queue's memory (UMEM for AF_XDP). Data is the
// frame's bytes; its capacity is the whole buffer, so the pipeline may grow a frame it turns into
// a larger answer (an ICMP error) up to cap(Data). Addr is the I/O layer's handle for the buffer.
// It is the AF_XDP layer's frame type, so batches pass between the two without conversion.
type Frame = xsk.Frame

// FrameIO is one queue of one port as a worker sees it. Every method is called once per batch,
// never per frame, and only by the worker that owns the queue.
type FrameIO interface {
	// Receive fills frames with up to len(frames) received frames and returns how many, without
	// waiting (the worker's Wait function blocks across all its queues when all are idle). The
	// frames belong to the worker until it passes them to Transmit or Release.
	Receive(frames []Frame) int
	// Transmit sends frames that this FrameIO received, as they are now (Data's length is the
	// frame length). It takes ownership of all of them and returns how many were queued; the
	// others were returned to the receive side and count as TX drops.
	Transmit(frames []Frame) int
	// TransmitCopies sends copies of frames held by another port's FrameIO (the caller still owns
	// and releases the originals) and returns how many were queued.
	TransmitCopies(data [][]byte) int
	// Release hands frames back to the receive side without sending them.
	Release(frames []Frame)
}
