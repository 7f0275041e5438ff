package compare

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ForwarderConfig configures the ceiling: a minimal AF_XDP forwarder that receives every frame on one queue of
// one interface, copies it into the UMEM of a socket on another interface, rewrites the two MAC addresses and
// transmits it. It does no parsing, no lookup and no NAT: what it reaches is what any AF_XDP program on this
// I/O path (copy mode, two UMEMs) can reach.
type ForwarderConfig struct {
	// In is the receiving interface (its queue 0; asavie/xdp's program redirects every frame of the queue).
	In string
	// Out is the transmitting interface (queue 0).
	Out string
	// DstMACs are the backends' MACs; each frame gets one, chosen by a hash of its source
	// address and port (pickMAC).
	DstMACs []net.HardwareAddr
	// Frames is the number of 2048-byte UMEM frames per socket (a power of two); the rings have Frames/2 entries.
	Frames int
	// TxSkbBudget raises the frames per sendto in copy mode (XDP_MAX_TX_SKB_BUDGET; 0 keeps the kernel's 32).
	TxSkbBudget int
	// MaxDuration bounds the forwarder's life even if nobody stops it.
	MaxDuration time.Duration
	// Native attaches the XDP program in driver mode (as the appliance does on veth) instead of generic mode.
	Native bool
}

// ForwarderStats is what the forwarder prints as JSON on stdout when it stops.
type ForwarderStats struct {
	// Received and Forwarded count frames; NoTxRoom counts frames dropped because the TX ring was full.
	Received, Forwarded, NoTxRoom uint64
	// Kicks counts sendto calls.
	Kicks uint64
}

// ForwarderMain runs the ceiling forwarder until SIGINT/SIGTERM or --max-duration and returns the exit code.
// It prints "ready" on stderr once the sockets are bound and the program attached, and its stats as JSON on
// stdout at the end. It must be started inside the namespace of the interfaces (ip netns exec).
func ForwarderMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare-forwarder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := ForwarderConfig{}
	fs.StringVar(&cfg.In, "in", "ext0", "receiving interface")
	fs.StringVar(&cfg.Out, "out", "int0", "transmitting interface")
	mac := fs.String("dst-mac", "", "destination MACs of the forwarded frames, comma-separated: a frame goes to one chosen by a hash of its IPv4 source address and port (the same fan-out over the backends as a load balancer)")
	fs.IntVar(&cfg.Frames, "frames", 4096, "UMEM frames per socket")
	fs.IntVar(&cfg.TxSkbBudget, "tx-skb-budget", 256, "XDP_MAX_TX_SKB_BUDGET (0: kernel default)")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", 30*time.Minute, "stop after this long")
	fs.BoolVar(&cfg.Native, "native", true, "attach in driver mode (false: generic)")
	mode := fs.String("mode", "afxdp", "afxdp: the MAC-swap AF_XDP forwarder; xdp: the in-kernel XDP redirect program")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, m := range strings.Split(*mac, ",") {
		hw, err := net.ParseMAC(strings.TrimSpace(m))
		if err != nil {
			fmt.Fprintf(stderr, "compare-forwarder: --dst-mac %q: %v\n", *mac, err)
			return 2
		}
		cfg.DstMACs = append(cfg.DstMACs, hw)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	switch *mode {
	case "afxdp":
	case "xdp":
		if err := RunXDPRedirect(ctx, cfg, func() { fmt.Fprintln(stderr, "ready") }); err != nil {
			fmt.Fprintf(stderr, "compare-forwarder: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, `{"Forwarded":"in the kernel (counted at the backends)"}`)
		return 0
	default:
		fmt.Fprintf(stderr, "compare-forwarder: --mode %q: want afxdp or xdp\n", *mode)
		return 2
	}
	st, err := RunForwarder(ctx, cfg, func() { fmt.Fprintln(stderr, "ready") })
	if err != nil {
		fmt.Fprintf(stderr, "compare-forwarder: %v\n", err)
		return 1
	}
	_ = json.NewEncoder(stdout).Encode(st)
	return 0
}

// RunForwarder forwards until ctx ends. ready is called once the data path is up.
func RunForwarder(ctx context.Context, cfg ForwarderConfig, ready func()) (ForwarderStats, error) {
	var st ForwarderStats
	if len(cfg.DstMACs) == 0 {
		return st, errors.New("no destination MAC")
	}
	if cfg.Frames < 64 || cfg.Frames&(cfg.Frames-1) != 0 {
		return st, fmt.Errorf("frames: %d is not a power of two ≥ 64", cfg.Frames)
	}
	in, err := netlink.LinkByName(cfg.In)
	if err != nil {
		return st, fmt.Errorf("find %s: %w", cfg.In, err)
	}
	out, err := netlink.LinkByName(cfg.Out)
	if err != nil {
		return st, fmt.Errorf("find %s: %w", cfg.Out, err)
	}
	srcMAC := out.Attrs().HardwareAddr
	ring := cfg.Frames / 2
	opts := xdp.SocketOptions{NumFrames: cfg.Frames, FrameSize: 2048, FillRingNumDescs: ring, CompletionRingNumDescs: ring, RxRingNumDescs: ring, TxRingNumDescs: ring}
	prog, err := xdp.NewProgram(1)
	if err != nil {
		return st, fmt.Errorf("load redirect program: %w", err)
	}
	defer prog.Close()
	rx, err := xdp.NewSocket(in.Attrs().Index, 0, &opts)
	if err != nil {
		return st, fmt.Errorf("socket on %s queue 0: %w", cfg.In, err)
	}
	defer rx.Close()
	tx, err := xdp.NewSocket(out.Attrs().Index, 0, &opts)
	if err != nil {
		return st, fmt.Errorf("socket on %s queue 0: %w", cfg.Out, err)
	}
	defer tx.Close()
	if cfg.TxSkbBudget > 0 {
		if err := unix.SetsockoptInt(tx.FD(), unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, cfg.TxSkbBudget); err != nil {
			return st, fmt.Errorf("set XDP_MAX_TX_SKB_BUDGET on %s: %w", cfg.Out, err)
		}
	}
	if err := prog.Register(0, rx.FD()); err != nil {
		return st, fmt.Errorf("register socket: %w", err)
	}
	flags := link.XDPGenericMode
	if cfg.Native {
		flags = link.XDPDriverMode
	}
	// A bpf_link detaches when the process dies, however it dies.
	l, err := link.AttachXDP(link.XDPOptions{Program: prog.Program, Interface: in.Attrs().Index, Flags: flags})
	if err != nil {
		return st, fmt.Errorf("attach redirect program to %s: %w", cfg.In, err)
	}
	defer l.Close()

	rx.Fill(rx.GetDescs(ring))
	// TX frames are used round robin: copy mode completes in submission order, and at most ring frames are
	// outstanding (submitted minus completed), so the frame handed out next has always completed.
	var txProd, txDone uint64
	txDescs := make([]xdp.Desc, 0, ring)
	if ready != nil {
		ready()
	}
	pfd := []unix.PollFd{{Fd: int32(rx.FD()), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n := rx.NumReceived()
		if n == 0 {
			if _, err := unix.Poll(pfd, 100); err != nil && !errors.Is(err, unix.EINTR) {
				return st, fmt.Errorf("poll: %w", err)
			}
			n = rx.NumReceived()
			if n == 0 {
				continue
			}
		}
		// Reap TX completions.
		if c := tx.NumCompleted(); c > 0 {
			tx.Complete(c)
			txDone += uint64(c)
		}
		descs := rx.Receive(n)
		st.Received += uint64(len(descs))
		txDescs = txDescs[:0]
		for _, d := range descs {
			if txProd-txDone >= uint64(ring) {
				st.NoTxRoom++
				continue
			}
			addr := (txProd % uint64(cfg.Frames)) * 2048
			txProd++
			dst := tx.GetFrame(xdp.Desc{Addr: addr, Len: d.Len})
			copy(dst, rx.GetFrame(d))
			copy(dst[0:6], pickMAC(cfg.DstMACs, dst))
			copy(dst[6:12], srcMAC)
			txDescs = append(txDescs, xdp.Desc{Addr: addr, Len: d.Len})
		}
		if len(txDescs) > 0 {
			st.Forwarded += uint64(submit(tx, txDescs))
			st.Kicks++
			// Copy mode sends a bounded number of frames per sendto: kick until the TX ring drains.
			for i := 0; i < 64 && tx.NumFreeTxSlots() < ring; i++ {
				_, _, _ = unix.Syscall6(unix.SYS_SENDTO, uintptr(tx.FD()), 0, 0, uintptr(unix.MSG_DONTWAIT), 0, 0)
				st.Kicks++
			}
		}
		rx.Fill(descs)
	}
	return st, nil
}

// submit puts descs on the TX ring with asavie's Transmit, which kicks once and panics on sendto errors other
// than EAGAIN and EBUSY (ENOBUFS under load): the descriptors are on the ring by then, so the panic only means
// "kick again later".
func submit(tx *xdp.Socket, descs []xdp.Desc) (n int) {
	n = min(len(descs), tx.NumFreeTxSlots())
	defer func() { _ = recover() }()
	return tx.Transmit(descs)
}

// pickMAC chooses the destination MAC of frame among macs by a hash of its IPv4 source address
// and L4 source port (untagged Ethernet, IHL 5: bytes 26-29 and 34-35), so that many flows
// spread over the backends as they do through a load balancer; one MAC, or a frame too short,
// takes the first.
func pickMAC(macs []net.HardwareAddr, frame []byte) net.HardwareAddr {
	if len(macs) == 1 || len(frame) < 36 {
		return macs[0]
	}
	h := uint32(2166136261)
	for _, b := range frame[26:30] {
		h = (h ^ uint32(b)) * 16777619
	}
	for _, b := range frame[34:36] {
		h = (h ^ uint32(b)) * 16777619
	}
	return macs[h%uint32(len(macs))]
}
