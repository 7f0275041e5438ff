package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/asavie/xdp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Stop reasons of a run.
const (
	StoppedByCount    = "count"
	StoppedByDuration = "duration"
	StoppedByContext  = "context"
)

// Result is what a run did.
type Result struct {
	// Iface is the interface the frames left from.
	Iface string `json:"iface"`
	// Queue is the TX queue.
	Queue int `json:"queue"`
	// Proto is the kind of frame.
	Proto Proto `json:"proto"`
	// Flows is the number of distinct 5-tuples.
	Flows int `json:"flows"`
	// FrameSize is the frame size including FCS; FrameLen the bytes actually handed to the kernel per frame.
	FrameSize int `json:"frameSize"`
	FrameLen  int `json:"frameLen"`
	// SrcMAC and DstMAC are the frames' MACs (DstMAC as resolved when not given).
	SrcMAC string `json:"srcMAC"`
	DstMAC string `json:"dstMAC"`
	// RatePPS is the target rate (0: flat out).
	RatePPS float64 `json:"ratePPS"`
	// Submitted is the number of descriptors put on the TX ring.
	Submitted uint64 `json:"submitted"`
	// Sent is the number of frames the kernel completed (transmitted or dropped by the device).
	Sent uint64 `json:"sent"`
	// Failed is the number of frames the device dropped on transmit over the run (its tx_dropped counter).
	Failed uint64 `json:"failed"`
	// Elapsed is from the first submit to the last completion reaped.
	Elapsed time.Duration `json:"elapsedNs"`
	// OfferedPPS is (Sent - Failed) / Elapsed.
	OfferedPPS float64 `json:"offeredPPS"`
	// StoppedBy says which bound ended the send loop: count, duration or context.
	StoppedBy string `json:"stoppedBy"`
	// Kicks is the number of sendto calls; KickRetries those that returned EAGAIN, EBUSY or ENOBUFS.
	Kicks       uint64 `json:"kicks"`
	KickRetries uint64 `json:"kickRetries"`
	// InvalidDescs is the kernel's count of TX descriptors it refused (XDP_STATISTICS), 0 when all is well.
	InvalidDescs uint64 `json:"invalidDescs"`
	// Undrained is the number of descriptors still outstanding when DrainTimeout ran out.
	Undrained int `json:"undrained"`
}

// Run sends the configured traffic and returns what it did. It must run on a goroutine locked into the
// interface's network namespace (see the package documentation). It returns after MaxPackets frames were
// submitted, MaxDuration passed or ctx ended, and the last completions were reaped (bounded by DrainTimeout).
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	link, err := sendLink(cfg)
	if err != nil {
		return Result{}, err
	}
	attrs := link.Attrs()
	cfg.Iface = attrs.Name
	if cfg.SrcMAC == nil {
		cfg.SrcMAC = attrs.HardwareAddr
	}
	if !cfg.SrcPrefix.IsValid() {
		a, err := firstAddr(link)
		if err != nil {
			return Result{}, err
		}
		cfg.SrcPrefix = netip.PrefixFrom(a, 32)
	}
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.DstMAC == nil {
		first, _ := hosts(cfg.DstPrefix)
		mac, err := ResolveMAC(ctx, link, first, cfg.ResolveTimeout)
		if err != nil {
			return Result{}, err
		}
		cfg.DstMAC = mac
	}
	im, err := BuildFrames(cfg)
	if err != nil {
		return Result{}, err
	}
	res := Result{Iface: cfg.Iface, Queue: cfg.Queue, Proto: cfg.Proto, Flows: cfg.Flows, FrameSize: cfg.FrameSize,
		FrameLen: im.FrameLen, SrcMAC: cfg.SrcMAC.String(), DstMAC: cfg.DstMAC.String(), RatePPS: cfg.RatePPS}

	xsk, err := openSocket(ctx, attrs.Index, cfg.Queue, &xdp.SocketOptions{
		NumFrames:              len(im.Bytes) / chunkSize,
		FrameSize:              chunkSize,
		FillRingNumDescs:       64, // the kernel wants a fill ring; nothing is ever received
		CompletionRingNumDescs: cfg.TxRingSize,
		RxRingNumDescs:         64, // unused; asavie's Stats needs an RX ring
		TxRingNumDescs:         cfg.TxRingSize,
	})
	if err != nil {
		return Result{}, fmt.Errorf("open AF_XDP socket on %s queue %d: %w", cfg.Iface, cfg.Queue, err)
	}
	closed := false
	defer func() {
		if !closed {
			closeSocket(xsk)
		}
	}()
	if cfg.TxSkbBudget > 0 {
		if err := unix.SetsockoptInt(xsk.FD(), unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, cfg.TxSkbBudget); err != nil {
			return Result{}, fmt.Errorf("set XDP_MAX_TX_SKB_BUDGET %d on %s: %w", cfg.TxSkbBudget, cfg.Iface, err)
		}
	}
	copy(xsk.GetFrame(xdp.Desc{Addr: 0, Len: uint32(len(im.Bytes))}), im.Bytes)

	droppedBefore, err := txDropped(attrs.Index)
	if err != nil {
		return Result{}, err
	}
	s := sender{
		xsk:    xsk,
		fd:     xsk.FD(),
		ring:   descRing{slots: im.Slots},
		win:    window{capacity: cfg.TxRingSize},
		batch:  make([]xdp.Desc, cfg.BatchSize),
		txSize: cfg.TxRingSize,
	}
	if err := s.loop(ctx, cfg, &res); err != nil {
		return res, fmt.Errorf("send on %s: %w", cfg.Iface, err)
	}
	if st, err := xsk.Stats(); err == nil {
		res.InvalidDescs = st.KernelStats.Tx_invalid_descs
	}
	closed = true
	if err := closeSocket(xsk); err != nil {
		return res, err
	}
	droppedAfter, err := txDropped(attrs.Index)
	if err != nil {
		return res, err
	}
	res.Failed = min(droppedAfter-droppedBefore, res.Sent)
	if res.Elapsed > 0 {
		res.OfferedPPS = float64(res.Sent-res.Failed) / res.Elapsed.Seconds()
	}
	return res, nil
}

// openSocket opens the AF_XDP socket. The kernel releases a closed socket's binding asynchronously, so a bind
// right after another run on the same queue can fail with EBUSY for a short while: retry for up to a second.
func openSocket(ctx context.Context, ifindex, queue int, opts *xdp.SocketOptions) (*xdp.Socket, error) {
	deadline := time.Now().Add(time.Second)
	for {
		xsk, err := xdp.NewSocket(ifindex, queue, opts)
		// asavie formats the errno with %v, so only its text tells EBUSY apart.
		if err == nil || !strings.Contains(err.Error(), unix.EBUSY.Error()) || time.Now().After(deadline) || ctx.Err() != nil {
			return xsk, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sender is the send loop's state; nothing in it allocates per packet.
type sender struct {
	xsk    *xdp.Socket
	fd     int
	ring   descRing
	win    window
	batch  []xdp.Desc
	txSize int
	res    *Result
}

// loop sends until a bound is reached, then drains the completions.
func (s *sender) loop(ctx context.Context, cfg Config, res *Result) error {
	s.res = res
	done := ctx.Done()
	start := time.Now()
	deadline := start.Add(cfg.MaxDuration)
	var bucket *tokenBucket
	if cfg.RatePPS > 0 {
		bucket = newTokenBucket(cfg.RatePPS, cfg.BatchSize, start)
	}
	for {
		if res.Submitted >= cfg.MaxPackets {
			res.StoppedBy = StoppedByCount
			break
		}
		now := time.Now() // once per batch
		if !now.Before(deadline) {
			res.StoppedBy = StoppedByDuration
			break
		}
		select {
		case <-done:
			res.StoppedBy = StoppedByContext
		default:
		}
		if res.StoppedBy != "" {
			break
		}
		s.reap()
		n := min(cfg.BatchSize, s.win.room(), s.xsk.NumFreeTxSlots())
		if left := cfg.MaxPackets - res.Submitted; uint64(n) > left {
			n = int(left)
		}
		want := n
		if bucket != nil && n > 0 {
			n = bucket.take(now, n)
		}
		if n > 0 {
			s.ring.fill(s.batch[:n])
			k, err := transmit(s.xsk, s.batch[:n])
			res.Kicks++
			if err != nil {
				return err
			}
			s.win.submitted(k)
			res.Submitted += uint64(k)
		}
		if s.pending() > 0 {
			if err := s.kick(); err != nil {
				return err
			}
		}
		switch {
		case bucket != nil && n < want:
			// Sleep until a batch's worth of tokens is there (or the deadline).
			time.Sleep(min(bucket.wait(want), deadline.Sub(now)))
		case n == 0:
			runtime.Gosched() // ring or window full: the kernel is busy with our frames
		}
	}
	// Drain: keep kicking until the TX ring is empty and every completion is reaped.
	drainEnd := time.Now().Add(cfg.DrainTimeout)
	for s.win.outstanding > 0 && time.Now().Before(drainEnd) {
		if s.pending() > 0 {
			if err := s.kick(); err != nil {
				return err
			}
		}
		if !s.reap() {
			time.Sleep(50 * time.Microsecond)
		}
	}
	res.Elapsed = time.Since(start)
	res.Undrained = s.win.outstanding
	return nil
}

// reap consumes the completion ring and reports whether it found any.
func (s *sender) reap() bool {
	n := s.xsk.NumCompleted()
	if n == 0 {
		return false
	}
	s.xsk.Complete(n)
	s.win.completed(n)
	s.res.Sent += uint64(n)
	return true
}

// pending is the number of descriptors on the TX ring the kernel has not taken yet.
func (s *sender) pending() int { return s.txSize - s.xsk.NumFreeTxSlots() }

// kick asks the kernel to transmit from the TX ring (copy mode: up to the TX skb budget per call).
func (s *sender) kick() error {
	s.res.Kicks++
	switch err := unix.Sendto(s.fd, nil, unix.MSG_DONTWAIT, nil); err {
	case nil:
		return nil
	case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
		// EAGAIN: device busy or no completion slot; EBUSY: a frame completed but not sent (counted by the
		// device's tx_dropped); both mean "kick again later".
		s.res.KickRetries++
		return nil
	default:
		return fmt.Errorf("sendto on the AF_XDP socket: %w", err)
	}
}

// transmit puts descs on the TX ring with asavie's Transmit, which also kicks once and panics on errors other
// than EAGAIN and EBUSY (a device gone down, say); that panic becomes an error here.
func transmit(xsk *xdp.Socket, descs []xdp.Desc) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("AF_XDP transmit: %v", r)
		}
	}()
	return xsk.Transmit(descs), nil
}

// sendLink is the interface named in cfg, or the one the route to the destination leaves through.
func sendLink(cfg Config) (netlink.Link, error) {
	if cfg.Iface != "" {
		l, err := netlink.LinkByName(cfg.Iface)
		if err != nil {
			return nil, fmt.Errorf("find interface %s: %w", cfg.Iface, err)
		}
		return l, nil
	}
	dst, _ := hosts(cfg.DstPrefix)
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil || len(routes) == 0 {
		return nil, fmt.Errorf("find the route to %s: %w", dst, errors.Join(err, errNoRoute))
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("find interface %d of the route to %s: %w", routes[0].LinkIndex, dst, err)
	}
	return l, nil
}

var errNoRoute = errors.New("no route")

// firstAddr is the interface's first IPv4 address.
func firstAddr(l netlink.Link) (netip.Addr, error) {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address: set a source prefix", l.Attrs().Name)
}

// txDropped reads the interface's tx_dropped counter.
func txDropped(ifindex int) (uint64, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("read counters of interface %d: %w", ifindex, err)
	}
	if st := l.Attrs().Statistics; st != nil {
		return st.TxDropped, nil
	}
	return 0, nil
}

// ResolveMAC returns the MAC of the next hop towards dst out of link, from the kernel's neighbour table. When
// the entry is missing or unusable it asks the kernel to resolve it (an NTF_USE update, which sends an ARP
// request without any traffic of ours) and polls until timeout. It must run in link's namespace.
func ResolveMAC(ctx context.Context, link netlink.Link, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	nh := dst
	if routes, err := netlink.RouteGet(net.IP(dst.AsSlice())); err == nil && len(routes) > 0 && routes[0].Gw != nil {
		gw, ok := netip.AddrFromSlice(routes[0].Gw.To4())
		if !ok || !benchRange.Contains(gw) {
			return nil, fmt.Errorf("resolve MAC of %s: gateway %s is outside %s", dst, routes[0].Gw, benchRange)
		}
		nh = gw
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastTrigger time.Time
	for {
		neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("resolve MAC of %s: list neighbours of %s: %w", nh, link.Attrs().Name, err)
		}
		for _, n := range neighs {
			usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && ip == nh && usable && len(n.HardwareAddr) == 6 {
				return n.HardwareAddr, nil
			}
		}
		if time.Since(lastTrigger) > 500*time.Millisecond {
			lastTrigger = time.Now()
			err := netlink.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, Family: netlink.FAMILY_V4,
				IP: net.IP(nh.AsSlice()), Flags: netlink.NTF_USE})
			if err != nil {
				return nil, fmt.Errorf("resolve MAC of %s: ask the kernel to resolve it: %w", nh, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("resolve MAC of %s on %s: no answer within %v: %w", nh, link.Attrs().Name, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
