// Package xsk is the appliance's AF_XDP socket layer on github.com/asavie/xdp: one socket per
// queue of an interface, each with its own UMEM, registered in the steering program's XSKMAP,
// and a batched, allocation-free frame API for the data plane worker that owns the queue.
//
// asavie creates the socket, registers the UMEM, sizes and maps the rings and binds (zero-copy
// where the driver supports it, copy mode otherwise — veth is copy only; Socket.Mode says
// which). Its ring methods are not used: they hide the completion addresses, scan all frames
// linearly for free ones, ignore EAGAIN and panic on other sendto errors, and never read the
// need-wakeup flags. Instead the socket maps the four rings a second time from the same fd
// (the kernel allows several mappings; the ring words are shared) and drives them itself:
//
//   - a free stack of UMEM chunks and a per-chunk state (free, fill, held, tx), so every frame
//     is accounted for: Accounting().Free+Fill+Held+TX == Frames at all times, and
//     CheckAccounting recounts the states (the soak test proves no leak with it);
//   - every Receive reaps TX completions, tops the fill ring up and kicks a TX ring that still
//     holds frames (copy mode sends at most the TX budget per sendto, so Transmit kicks, bounded
//     by MaxKicksPerFlush, until the ring drains); XDP_MAX_TX_SKB_BUDGET is raised if accepted;
//   - Transmit sends received frames in place (one-armed: no copy), also after the pipeline
//     moved or grew Data within the chunk; TransmitCopies copies frames of another socket into
//     free chunks of this one (asavie has one UMEM per socket); Release returns frames;
//   - Stats reads XDP_STATISTICS plus the socket's own counters.
//
// NumFrames >= fill ring + TX ring, so the fill ring can be kept full while a TX ring's worth of
// frames is in flight or being copied.
//
// # Concurrency
//
// One worker goroutine owns a Socket and its Poller and is the only caller of
// Receive, Transmit, TransmitCopies, Release, Flush, Accounting and CheckAccounting. Stats may
// be read from any goroutine. Open and OpenInterface work in the calling thread's network
// namespace (lock the thread when switching); Close after the worker stopped. asavie keeps
// its own ring mappings, which its Close does not unmap: a few pages per socket until exit.
package xsk
