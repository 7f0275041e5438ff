// Package capture records the frames the data plane sees, before and after translation, into
// pcapng: what tcpdump on the interface cannot show, because AF_XDP takes the frames before the
// kernel's taps.
//
// A Session is armed on the data plane (one atomic pointer, loaded once per batch by every
// worker). While it is armed, each worker has its own Ring (single producer: that worker; single
// consumer: the Stream goroutine). Per frame the worker calls Ring.Begin before the pipeline
// touches the frame (the filter is evaluated and the frame is copied into the next free slot,
// not yet published) and Ring.End after it (the translated frame is matched too; if either
// matched, both are published). A full ring never makes a worker wait: the frame is counted in
// Dropped and skipped. Begin and End allocate nothing.
//
// Stream drains the rings of a Session and writes pcapng with two interfaces per data-plane
// port, "<port>:rx" (frames as received, before translation) and "<port>:tx" (frames as sent,
// after translation), until a frame count, a duration or its context ends.
//
// Filter decides which frames are kept: rules over addresses, ports and protocols, or an exact
// flow in either direction. Its frame decoder reads untrusted bytes and never panics (fuzzed by
// FuzzFilterMatch).
//
// Bounds: the snap length is capped at MaxSnapLenBytes (the longest frame the data plane
// handles), a worker's ring at MaxRingBytes, a capture's duration at HandlerConfig.MaxDuration.
// The duration holds even against a client that stops reading: a timer disarms the session at
// its end and the response's writes get a deadline TailWriteTimeout later.
//
// # Concurrency
//
// Ring.Begin/End only on the ring's worker; Ring.Pop, Stream and Session.Stats on
// any one consumer goroutine; Handler on net/http's goroutines, plus one timer goroutine per
// capture that calls Target.StopCapture at its end (StopCapture must be safe from any goroutine
// and idempotent).
package capture
