package xsk

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// BindMode selects zero-copy or copy mode.
type BindMode int

// Bind modes.
const (
	BindAuto     BindMode = iota // zero-copy where the driver supports it, else copy
	BindZeroCopy                 // XDP_ZEROCOPY or fail
	BindCopy                     // XDP_COPY
)

func (m BindMode) String() string {
	switch m {
	case BindZeroCopy:
		return "zero-copy"
	case BindCopy:
		return "copy"
	default:
		return "auto"
	}
}

// Config sizes one socket. Ring sizes are powers of two.
type Config struct {
	// FrameSizeBytes is the UMEM chunk size: 2048 or 4096.
	FrameSizeBytes int
	// NumFrames is the number of UMEM chunks; at least FillRingSize + TxRingSize so the fill ring
	// can stay full while a TX ring's worth of frames is in flight.
	NumFrames int
	// FillRingSize, RxRingSize, TxRingSize, CompletionRingSize are ring entry counts.
	FillRingSize       int
	RxRingSize         int
	TxRingSize         int
	CompletionRingSize int
	// Bind chooses zero-copy or copy mode.
	Bind BindMode
	// NeedWakeup binds with XDP_USE_NEED_WAKEUP (syscalls only when the kernel asks).
	NeedWakeup bool
	// TxSkbBudget sets XDP_MAX_TX_SKB_BUDGET (frames per sendto in copy mode); 0 keeps the
	// kernel's default (32). Refused values are logged and ignored.
	TxSkbBudget int
	// MaxKicksPerFlush bounds the sendto calls one Transmit makes to drain the TX ring in copy mode.
	MaxKicksPerFlush int
	// Logger receives open/close events; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig is 2048-byte frames, 8192-entry fill/RX rings, 4096-entry TX/completion rings
// (ARCHITECTURE.md: 8192-entry rings lost nothing in a 10k-frame burst), 12288 frames, auto bind,
// need-wakeup, TX budget 256.
func DefaultConfig() Config {
	return Config{
		FrameSizeBytes: 2048, NumFrames: 8192 + 4096,
		FillRingSize: 8192, RxRingSize: 8192, TxRingSize: 4096, CompletionRingSize: 4096,
		Bind: BindAuto, NeedWakeup: true, TxSkbBudget: 256, MaxKicksPerFlush: 256,
	}
}

func (c Config) validate() error {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	if c.FrameSizeBytes != 2048 && c.FrameSizeBytes != 4096 {
		return fmt.Errorf("frame size %d: must be 2048 or 4096", c.FrameSizeBytes)
	}
	for _, r := range []struct {
		name string
		n    int
	}{{"fill", c.FillRingSize}, {"rx", c.RxRingSize}, {"tx", c.TxRingSize}, {"completion", c.CompletionRingSize}} {
		if !pow2(r.n) {
			return fmt.Errorf("%s ring size %d: must be a power of two", r.name, r.n)
		}
	}
	if c.CompletionRingSize < c.TxRingSize {
		return fmt.Errorf("completion ring %d smaller than TX ring %d", c.CompletionRingSize, c.TxRingSize)
	}
	if c.NumFrames < c.FillRingSize+c.TxRingSize {
		return fmt.Errorf("%d frames: need at least fill ring + TX ring = %d", c.NumFrames, c.FillRingSize+c.TxRingSize)
	}
	if c.MaxKicksPerFlush <= 0 {
		return fmt.Errorf("MaxKicksPerFlush %d: must be positive", c.MaxKicksPerFlush)
	}
	return nil
}

// Frame is one UMEM frame held by the worker. Data starts at the frame's bytes in UMEM and its
// capacity runs to the end of the UMEM chunk, so it may be grown in place. Addr is the UMEM
// address the frame was received at (the handle Release and Transmit use to find the chunk).
type Frame struct {
	Addr uint64
	Data []byte
}

// Where a UMEM chunk is.
const (
	stFree uint8 = iota // on the socket's free stack
	stFill              // in the fill ring or the kernel's RX path
	stHeld              // received, held by the worker
	stTX                // in the TX ring or awaiting completion
)

// openMu serialises socket creation: asavie takes the bind flags from a package variable.
var openMu sync.Mutex

// Socket is one AF_XDP socket on one queue with its own UMEM. Only its worker goroutine may
// call its methods, except Stats and Close (Close after the worker has stopped).
type Socket struct {
	cfg        Config
	log        *slog.Logger
	x          *xdp.Socket
	fd         int
	ifindex    int
	queue      int
	zeroCopy   bool
	needWakeup bool
	frameSize  uint64
	chunkMask  uint64
	umem       []byte

	fill, rx, tx, comp ring
	fillQ, compQ       []uint64
	rxQ, txQ           []unix.XDPDesc

	free  []uint64 // stack of free chunk addresses
	state []uint8  // per chunk
	acct  Accounting

	rxFrames, txFrames, txCopies, txDropped, badFrames, kicks, kickErrors atomic.Uint64

	// pub is acct as of the start of the last Receive, for readers on other goroutines.
	pub [4]atomic.Int64
}

// Open creates an AF_XDP socket bound to queue of ifindex in the calling thread's network
// namespace (callers in another namespace hold runtime.LockOSThread), maps its rings and fills
// the fill ring. The socket receives nothing until its fd is registered in the steering
// program's XSKMAP.
func Open(ifindex, queue int, cfg Config) (*Socket, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open AF_XDP socket on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	s := &Socket{cfg: cfg, log: cfg.Logger, ifindex: ifindex, queue: queue}
	if s.log == nil {
		s.log = slog.Default()
	}
	opts := &xdp.SocketOptions{
		NumFrames: cfg.NumFrames, FrameSize: cfg.FrameSizeBytes,
		FillRingNumDescs: cfg.FillRingSize, CompletionRingNumDescs: cfg.CompletionRingSize,
		RxRingNumDescs: cfg.RxRingSize, TxRingNumDescs: cfg.TxRingSize,
	}
	var wake uint16
	if cfg.NeedWakeup {
		wake = unix.XDP_USE_NEED_WAKEUP
	}
	tries := []BindMode{cfg.Bind}
	if cfg.Bind == BindAuto {
		tries = []BindMode{BindZeroCopy, BindCopy}
	}
	var errs []error
	openMu.Lock()
	for _, m := range tries {
		flags := uint16(unix.XDP_COPY)
		if m == BindZeroCopy {
			flags = unix.XDP_ZEROCOPY
		}
		xdp.DefaultSocketFlags = flags | wake
		x, err := xdp.NewSocket(ifindex, queue, opts)
		if err == nil {
			s.x, s.zeroCopy = x, m == BindZeroCopy
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", m, err))
	}
	xdp.DefaultSocketFlags = 0
	openMu.Unlock()
	if s.x == nil {
		return nil, fmt.Errorf("open AF_XDP socket on ifindex %d queue %d: %w", ifindex, queue, errors.Join(errs...))
	}
	s.fd = s.x.FD()
	s.needWakeup = cfg.NeedWakeup
	if err := s.setup(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open AF_XDP socket on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	s.log.Info("AF_XDP socket open", "iface", ifindex, "queue", queue, "mode", s.Mode(), "need_wakeup", s.needWakeup)
	return s, nil
}

func (s *Socket) setup() error {
	cfg := s.cfg
	if cfg.TxSkbBudget > 0 {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, cfg.TxSkbBudget); err != nil {
			s.log.Info("XDP_MAX_TX_SKB_BUDGET refused; kernel default kept", "queue", s.queue, "err", err)
		}
	}
	off, err := mmapOffsets(s.fd)
	if err != nil {
		return err
	}
	if s.fill, err = mmapRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, cfg.FillRingSize, 8); err != nil {
		return fmt.Errorf("fill ring: %w", err)
	}
	s.fillQ = s.fill.addrs(off.Fr)
	if s.comp, err = mmapRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, cfg.CompletionRingSize, 8); err != nil {
		return fmt.Errorf("completion ring: %w", err)
	}
	s.compQ = s.comp.addrs(off.Cr)
	if s.rx, err = mmapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, cfg.RxRingSize, 16); err != nil {
		return fmt.Errorf("rx ring: %w", err)
	}
	s.rxQ = s.rx.descs(off.Rx)
	if s.tx, err = mmapRing(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, cfg.TxRingSize, 16); err != nil {
		return fmt.Errorf("tx ring: %w", err)
	}
	s.txQ = s.tx.descs(off.Tx)

	s.frameSize = uint64(cfg.FrameSizeBytes)
	s.chunkMask = ^(s.frameSize - 1)
	s.umem = s.x.GetFrame(xdp.Desc{Addr: 0, Len: uint32(cfg.NumFrames * cfg.FrameSizeBytes)})
	s.state = make([]uint8, cfg.NumFrames)
	s.free = make([]uint64, 0, cfg.NumFrames)
	for i := cfg.NumFrames - 1; i >= 0; i-- {
		s.free = append(s.free, uint64(i)*s.frameSize)
	}
	s.acct = Accounting{Frames: cfg.NumFrames, Free: cfg.NumFrames}
	s.refill()
	return nil
}

// FD is the socket's file descriptor (for the XSKMAP).
func (s *Socket) FD() int { return s.fd }

// Queue is the queue index the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// Ifindex is the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// ZeroCopy reports whether the socket is bound in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Mode is "zero-copy" or "copy".
func (s *Socket) Mode() string {
	if s.zeroCopy {
		return BindZeroCopy.String()
	}
	return BindCopy.String()
}

// FrameSize is the UMEM chunk size in bytes.
func (s *Socket) FrameSize() int { return int(s.frameSize) }

func (s *Socket) chunk(addr uint64) (uint64, int, bool) {
	c := addr & s.chunkMask
	i := c / s.frameSize
	return c, int(i), i < uint64(len(s.state))
}

// refill moves free chunks into the fill ring, as many as fit.
func (s *Socket) refill() {
	prod := s.fill.prod
	p := *prod
	room := int(s.fill.size - (p - s.fill.loadCons()))
	n := min(room, len(s.free))
	for i := 0; i < n; i++ {
		c := s.free[len(s.free)-1-i]
		s.fillQ[(p+uint32(i))&s.fill.mask] = c
		s.state[c/s.frameSize] = stFill
	}
	if n > 0 {
		s.free = s.free[:len(s.free)-n]
		s.fill.storeProd(p + uint32(n))
		s.acct.Free -= n
		s.acct.Fill += n
	}
}

// reap takes TX completions back onto the free stack.
func (s *Socket) reap() {
	c := s.comp.loadCons()
	n := s.comp.loadProd() - c
	if n == 0 {
		return
	}
	for i := uint32(0); i < n; i++ {
		addr := s.compQ[(c+i)&s.comp.mask]
		ch, idx, ok := s.chunk(addr)
		if !ok || s.state[idx] != stTX {
			s.badFrames.Add(1)
			continue
		}
		s.state[idx] = stFree
		s.free = append(s.free, ch)
		s.acct.TX--
		s.acct.Free++
	}
	s.comp.storeCons(c + n)
}

// txPending is how many descriptors the kernel has not yet taken from the TX ring.
func (s *Socket) txPending() uint32 { return *s.tx.prod - s.tx.loadCons() }

// kick asks the kernel to send what is in the TX ring. In copy mode each sendto sends at most
// the TX budget, so it repeats (bounded) until the ring drains, reaping completions between.
func (s *Socket) kick() {
	if s.txPending() == 0 {
		return
	}
	if s.zeroCopy {
		if !s.needWakeup || s.tx.needWakeup() {
			s.kicks.Add(1)
			if e := sendto(s.fd); e != 0 && e != unix.EAGAIN && e != unix.EBUSY && e != unix.ENOBUFS {
				s.kickErrors.Add(1)
			}
		}
		return
	}
	for i := 0; i < s.cfg.MaxKicksPerFlush && s.txPending() > 0; i++ {
		s.kicks.Add(1)
		e := sendto(s.fd)
		s.reap()
		switch e {
		case 0, unix.EINTR, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
		default:
			s.kickErrors.Add(1)
			return
		}
	}
}

// Receive fills frames with up to len(frames) received frames and returns how many, without
// waiting. On every call it also reaps TX completions, keeps the fill ring full and kicks a TX
// ring that still holds frames.
func (s *Socket) Receive(frames []Frame) int {
	s.reap()
	s.refill()
	s.kick()
	s.pub[0].Store(int64(s.acct.Free))
	s.pub[1].Store(int64(s.acct.Fill))
	s.pub[2].Store(int64(s.acct.Held))
	s.pub[3].Store(int64(s.acct.TX))
	c := s.rx.loadCons()
	avail := s.rx.loadProd() - c
	n := min(int(avail), len(frames))
	got := 0
	for i := 0; i < n; i++ {
		d := s.rxQ[(c+uint32(i))&s.rx.mask]
		ch, idx, ok := s.chunk(d.Addr)
		if !ok || s.state[idx] != stFill || d.Addr+uint64(d.Len) > ch+s.frameSize {
			s.badFrames.Add(1)
			continue
		}
		s.state[idx] = stHeld
		frames[got] = Frame{Addr: d.Addr, Data: s.umem[d.Addr : d.Addr+uint64(d.Len) : ch+s.frameSize]}
		got++
	}
	if n > 0 {
		s.rx.storeCons(c + uint32(n))
		s.acct.Fill -= got
		s.acct.Held += got
		s.rxFrames.Add(uint64(got))
	} else if s.needWakeup && s.fill.needWakeup() {
		recvfrom(s.fd)
	}
	return got
}

// release returns one held chunk to the free stack; false if the frame is not held here.
func (s *Socket) release(addr uint64) bool {
	ch, idx, ok := s.chunk(addr)
	if !ok || s.state[idx] != stHeld {
		s.badFrames.Add(1)
		return false
	}
	s.state[idx] = stFree
	s.free = append(s.free, ch)
	s.acct.Held--
	s.acct.Free++
	return true
}

// Release hands frames back without sending them; they go back to the fill ring.
func (s *Socket) Release(frames []Frame) {
	for i := range frames {
		s.release(frames[i].Addr)
	}
	s.refill()
}

// Transmit sends frames this socket received, as they are now (Data may have been moved or
// grown within its chunk), without copying. It takes ownership of all of them and returns how
// many were queued; the rest (TX ring full, Data outside the frame's chunk) are released and
// counted as TX drops.
func (s *Socket) Transmit(frames []Frame) int {
	s.reap()
	p := *s.tx.prod
	room := int(s.tx.size - (p - s.tx.loadCons()))
	if room < len(frames) {
		s.kick()
		p = *s.tx.prod
		room = int(s.tx.size - (p - s.tx.loadCons()))
	}
	q := 0
	for i := range frames {
		f := &frames[i]
		ch, idx, ok := s.chunk(f.Addr)
		if !ok || s.state[idx] != stHeld {
			s.badFrames.Add(1)
			continue
		}
		off, inside := offsetIn(s.umem, f.Data)
		if q >= room || !inside || off&s.chunkMask != ch || off+uint64(len(f.Data)) > ch+s.frameSize {
			s.release(f.Addr)
			s.txDropped.Add(1)
			continue
		}
		s.txQ[(p+uint32(q))&s.tx.mask] = unix.XDPDesc{Addr: off, Len: uint32(len(f.Data))}
		s.state[idx] = stTX
		q++
	}
	if q > 0 {
		s.tx.storeProd(p + uint32(q))
		s.acct.Held -= q
		s.acct.TX += q
		s.txFrames.Add(uint64(q))
		s.kick()
	}
	s.refill()
	return q
}

// TransmitCopies copies each frame (held by another socket, which keeps ownership) into a free
// chunk of this socket's UMEM and sends it; it returns how many were queued. Frames longer
// than a chunk, or beyond the free frames and TX ring room, are counted as TX drops.
func (s *Socket) TransmitCopies(data [][]byte) int {
	s.reap()
	p := *s.tx.prod
	room := int(s.tx.size - (p - s.tx.loadCons()))
	if room < len(data) {
		s.kick()
		p = *s.tx.prod
		room = int(s.tx.size - (p - s.tx.loadCons()))
	}
	q := 0
	for _, d := range data {
		if q >= room || len(s.free) == 0 || len(d) == 0 || uint64(len(d)) > s.frameSize {
			s.txDropped.Add(1)
			continue
		}
		ch := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		copy(s.umem[ch:ch+s.frameSize], d)
		s.txQ[(p+uint32(q))&s.tx.mask] = unix.XDPDesc{Addr: ch, Len: uint32(len(d))}
		s.state[ch/s.frameSize] = stTX
		q++
	}
	if q > 0 {
		s.tx.storeProd(p + uint32(q))
		s.acct.Free -= q
		s.acct.TX += q
		s.txFrames.Add(uint64(q))
		s.txCopies.Add(uint64(q))
		s.kick()
	}
	return q
}

// Flush kicks the TX ring and reaps completions (call when idle so queued frames leave).
func (s *Socket) Flush() {
	s.kick()
	s.reap()
	s.refill()
}

// Accounting says where every UMEM frame is. Free+Fill+Held+TX == Frames always.
type Accounting struct {
	Frames int // UMEM chunks in total
	Free   int // on the socket's free stack
	Fill   int // in the fill ring or the kernel's receive path
	Held   int // received and not yet released or transmitted
	TX     int // in the TX ring or awaiting completion
}

// Accounting returns the frame counts (worker goroutine only).
func (s *Socket) Accounting() Accounting { return s.acct }

// PublishedAccounting returns the frame counts as of the start of the worker's last Receive
// (any goroutine). Between batches the worker holds nothing, so Held is 0 unless frames leak.
func (s *Socket) PublishedAccounting() Accounting {
	a := Accounting{Frames: len(s.state), Free: int(s.pub[0].Load()), Fill: int(s.pub[1].Load()),
		Held: int(s.pub[2].Load()), TX: int(s.pub[3].Load())}
	return a
}

// CheckAccounting recounts every chunk's state and compares it with the running counts
// (worker goroutine only; O(frames), for tests and debugging).
func (s *Socket) CheckAccounting() error {
	var c [4]int
	for _, st := range s.state {
		c[st]++
	}
	a := s.acct
	got := Accounting{Frames: len(s.state), Free: c[stFree], Fill: c[stFill], Held: c[stHeld], TX: c[stTX]}
	if got != a || a.Free+a.Fill+a.Held+a.TX != a.Frames || len(s.free) != a.Free {
		return fmt.Errorf("frame accounting %+v, recount %+v, free stack %d", a, got, len(s.free))
	}
	return nil
}

// Stats are the kernel's XDP_STATISTICS and the socket's own counters.
type Stats struct {
	RxDropped            uint64 // kernel: frames dropped for reasons other than a full ring
	RxInvalidDescs       uint64 // kernel: invalid fill ring descriptors
	TxInvalidDescs       uint64 // kernel: invalid TX ring descriptors
	RxRingFull           uint64 // kernel: frames dropped because the RX ring was full
	RxFillRingEmptyDescs uint64 // kernel: times the fill ring was empty when a frame arrived
	TxRingEmptyDescs     uint64 // kernel: times the TX ring was empty when kicked

	RxFrames   uint64 // frames handed to the worker
	TxFrames   uint64 // frames queued on the TX ring (copies included)
	TxCopies   uint64 // of which copied in by TransmitCopies
	TxDropped  uint64 // frames not queued (ring full, no free frame, bad length)
	BadFrames  uint64 // descriptors or frames that did not belong where they were (bugs)
	Kicks      uint64 // sendto calls
	KickErrors uint64 // sendto calls that failed with an unexpected error
}

// Stats reads the counters; any goroutine may call it while the socket is open.
func (s *Socket) Stats() (Stats, error) {
	k, err := kernelStats(s.fd)
	st := Stats{
		RxDropped: k.Rx_dropped, RxInvalidDescs: k.Rx_invalid_descs, TxInvalidDescs: k.Tx_invalid_descs,
		RxRingFull: k.Rx_ring_full, RxFillRingEmptyDescs: k.Rx_fill_ring_empty_descs, TxRingEmptyDescs: k.Tx_ring_empty_descs,
		RxFrames: s.rxFrames.Load(), TxFrames: s.txFrames.Load(), TxCopies: s.txCopies.Load(),
		TxDropped: s.txDropped.Load(), BadFrames: s.badFrames.Load(), Kicks: s.kicks.Load(), KickErrors: s.kickErrors.Load(),
	}
	if err != nil {
		return st, fmt.Errorf("AF_XDP stats on queue %d: %w", s.queue, err)
	}
	return st, nil
}

// Close unmaps the rings and closes the socket (which also removes it from any XSKMAP).
// Frames still held by the worker become invalid.
func (s *Socket) Close() error {
	for _, r := range []*ring{&s.fill, &s.comp, &s.rx, &s.tx} {
		r.unmap()
	}
	s.fillQ, s.compQ, s.rxQ, s.txQ, s.umem = nil, nil, nil, nil, nil
	if s.x == nil {
		return nil
	}
	err := s.x.Close()
	s.x = nil
	if err != nil && !errors.Is(err, syscall.EBADF) {
		return fmt.Errorf("close AF_XDP socket on queue %d: %w", s.queue, err)
	}
	return nil
}
