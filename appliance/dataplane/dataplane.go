package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/appliance/maglev"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/conntrack"
)

// Config configures a DataPlane.
type Config struct {
	// Ports are the interfaces, in the order FrameIO slices given to AddWorker follow.
	Ports []Port
	// ClusterCIDRs are the sources that may reach ClusterIPs.
	ClusterCIDRs []netip.Prefix
	// Conntrack sizes the flow table and sets its timeouts.
	Conntrack conntrack.Config
	// MaxServicePorts bounds the Service port IDs that get their own counters.
	MaxServicePorts int
	// FloatingSNAT makes a LoadBalancer VIP the SNAT source of its own flows instead of the
	// egress port's address, so that backends reply to the VIP and a flow survives the VIP
	// moving to another node (with flow-state sync). Backends must reach the VIP on-link on
	// the cluster segment (the holder answers ARP for it there too).
	FloatingSNAT bool
	// VerifyChecksums drops frames whose IP, TCP, UDP or ICMP checksum is wrong (reads every
	// payload byte once; off trusts the NIC).
	VerifyChecksums bool
	// ExpireBudget is how many conntrack entries each worker examines for expiry per batch.
	ExpireBudget int
	// Maglev sizes the per-Service-port backend tables.
	Maglev maglev.Config
	// Route finds the port and next hop of a backend on no port's prefix; nil: none.
	Route RouteFunc
	// Neighbors resolves MACs the data plane has not learned; nil: learned ones only.
	Neighbors NeighborSource
	// HoldsVIP tells whether this node announces a LoadBalancer address; nil: all of them
	// (a single node).
	HoldsVIP func(netip.Addr) bool
	// LearnedMACMaxAge is how long a client MAC learned from the first frame of its flow is
	// used without being refreshed; 0: DefaultLearnedMACMaxAge; negative: nothing is learned
	// (every next hop comes from the NeighborSource or Learn).
	LearnedMACMaxAge time.Duration
	// LocalRepliesPerSecond and LocalReplyBurst limit each worker's locally generated replies
	// (TCP RSTs, ICMP unreachables, echo and ARP replies); 0: DefaultLocalRepliesPerSecond and
	// DefaultLocalReplyBurst; a negative rate: no limit.
	LocalRepliesPerSecond, LocalReplyBurst int
	// NewFlowsPerSourcePerSecond and NewFlowsPerSourceBurst limit how many new flows one
	// source address may open (conntrack.SourceLimiter, shared by the workers); 0: the
	// defaults of conntrack.DefaultSourceLimitConfig; a negative rate: no limit.
	NewFlowsPerSourcePerSecond, NewFlowsPerSourceBurst int
	// Logger receives control-path messages (never per packet); nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a data plane with conntrack's defaults and no ports.
func DefaultConfig() Config {
	return Config{Conntrack: conntrack.DefaultConfig(), Maglev: maglev.DefaultConfig(), MaxServicePorts: 1 << 16, ExpireBudget: 64, VerifyChecksums: true, FloatingSNAT: true}
}

// DataPlane holds the shared state of all workers: the flow table, the current plan and the
// neighbour table.
type DataPlane struct {
	cfg   Config
	ports []Port
	ct    *conntrack.Table
	plan  atomic.Pointer[Plan]
	l2    *l2Table
	log   *slog.Logger
	// srcLimit bounds new flows per source address; nil: no limit.
	srcLimit *conntrack.SourceLimiter

	mu      sync.Mutex // guards reg and workers (control path)
	reg     endpointRegistry
	workers []*Worker

	// capture is the armed packet capture, nil when none; workers load it once per batch.
	capture atomic.Pointer[capture.Session]
	// conflicts receives VIP conflicts seen by workers (non-blocking sends; see Conflicts).
	conflicts chan VIPConflict
}

// VIPConflict is another MAC answering ARP for a VIP this node holds: an ARP reply whose sender
// is the VIP, or a gratuitous ARP (request with sender = target = VIP), from a MAC that is not
// one of this node's ports.
type VIPConflict struct {
	VIP  netip.Addr
	MAC  [6]byte
	Port int // index of the port it arrived on
}

// Conflicts returns the channel VIP conflicts are reported on. Workers never wait on it: when
// it is full, conflicts are only counted (reason vip_conflict); the reader sees the next one.
func (dp *DataPlane) Conflicts() <-chan VIPConflict { return dp.conflicts }

// New creates a data plane with an empty plan.
func New(cfg Config) (*DataPlane, error) {
	if len(cfg.Ports) == 0 {
		return nil, errors.New("data plane: no ports")
	}
	if len(cfg.Ports) > 1<<16 {
		return nil, errors.New("data plane: too many ports")
	}
	if cfg.Maglev.TableSize == 0 {
		cfg.Maglev = maglev.DefaultConfig()
	}
	if err := cfg.Maglev.Validate(); err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	if cfg.MaxServicePorts <= 0 {
		cfg.MaxServicePorts = DefaultConfig().MaxServicePorts
	}
	if cfg.ExpireBudget <= 0 {
		cfg.ExpireBudget = DefaultConfig().ExpireBudget
	}
	if cfg.HoldsVIP == nil {
		cfg.HoldsVIP = func(netip.Addr) bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LearnedMACMaxAge == 0 {
		cfg.LearnedMACMaxAge = DefaultLearnedMACMaxAge
	}
	if cfg.LocalRepliesPerSecond == 0 {
		cfg.LocalRepliesPerSecond = DefaultLocalRepliesPerSecond
	}
	if cfg.LocalReplyBurst <= 0 {
		cfg.LocalReplyBurst = DefaultLocalReplyBurst
	}
	srcLimit, err := newSourceLimiter(cfg)
	if err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	ct, err := conntrack.New(cfg.Conntrack)
	if err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	dp := &DataPlane{cfg: cfg, ports: cfg.Ports, ct: ct, l2: newL2Table(cfg.Neighbors, cfg.LearnedMACMaxAge), log: cfg.Logger,
		srcLimit: srcLimit, conflicts: make(chan VIPConflict, 16)}
	empty, err := compile(&service.Snapshot{}, dp.planInput())
	if err != nil {
		return nil, err
	}
	dp.plan.Store(empty)
	return dp, nil
}

// newSourceLimiter builds the per-source new-flow limiter of cfg (nil when turned off).
func newSourceLimiter(cfg Config) (*conntrack.SourceLimiter, error) {
	if cfg.NewFlowsPerSourcePerSecond < 0 {
		return nil, nil
	}
	lc := conntrack.DefaultSourceLimitConfig()
	if cfg.NewFlowsPerSourcePerSecond > 0 {
		lc.NewFlowsPerSecond = uint32(min(cfg.NewFlowsPerSourcePerSecond, 1<<30))
	}
	if cfg.NewFlowsPerSourceBurst > 0 {
		lc.Burst = uint32(min(cfg.NewFlowsPerSourceBurst, 1<<30))
	}
	lc.HashSeed = cfg.Conntrack.HashSeed
	l, err := conntrack.NewSourceLimiter(lc)
	if err != nil {
		return nil, fmt.Errorf("new flows per source: %w", err)
	}
	return l, nil
}

func (dp *DataPlane) planInput() planInput {
	return planInput{
		ports: dp.ports, clusterCIDRs: dp.cfg.ClusterCIDRs, heldVIPs: dp.cfg.HoldsVIP,
		maglev: dp.cfg.Maglev, route: dp.cfg.Route, reg: &dp.reg,
	}
}

// Apply compiles snap into a plan and swaps it in; workers pick it up at their next batch. On
// error the previous plan keeps serving.
func (dp *DataPlane) Apply(snap *service.Snapshot) (*Plan, error) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	p, err := compile(snap, dp.planInput())
	if err != nil {
		return nil, fmt.Errorf("apply snapshot: %w", err)
	}
	for _, w := range p.Warnings {
		dp.log.Warn(w)
	}
	dp.plan.Store(p)
	return p, nil
}

// Plan returns the plan in force.
func (dp *DataPlane) Plan() *Plan { return dp.plan.Load() }

// Conntrack returns the shared flow table.
func (dp *DataPlane) Conntrack() *conntrack.Table { return dp.ct }

// Ports returns the ports in index order.
func (dp *DataPlane) Ports() []Port { return dp.ports }

// AddWorker creates the worker of one queue index; io has one FrameIO per port, in port order.
func (dp *DataPlane) AddWorker(queue int, io []FrameIO) (*Worker, error) {
	if len(io) != len(dp.ports) {
		return nil, fmt.Errorf("worker %d: %d FrameIOs for %d ports", queue, len(io), len(dp.ports))
	}
	w := newWorker(dp, queue, io)
	dp.mu.Lock()
	w.capIdx = len(dp.workers)
	dp.workers = append(dp.workers, w)
	dp.mu.Unlock()
	return w, nil
}

// Learn records a trusted next hop's MAC (control path: configuration, or the kernel's
// neighbour table); it takes precedence over the NeighborSource and never ages.
func (dp *DataPlane) Learn(ip netip.Addr, mac [6]byte) {
	if ip.Is4() {
		a := ip.As4()
		dp.l2.set(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3]), mac)
	}
}

// Run polls w until ctx ends. wait blocks until any of the worker's queues may have frames or
// its timeout passes; it is called only when a whole pass found nothing.
func (w *Worker) Run(ctx context.Context, wait func(timeout time.Duration)) {
	idle := 0
	var lastCatchUp int64
	for ctx.Err() == nil {
		if w.Poll(time.Now().UnixNano()) > 0 {
			idle = 0
			continue
		}
		// Spin briefly before sleeping in poll(2): a busy queue refills within microseconds.
		// Before a sleep, catch up on expiry with a larger budget, at most every 100 ms: under
		// load poll(2) returns at once, and a catch-up before every such short sleep cost 15% of
		// the core (the per-batch budget keeps up with expiry under load anyway).
		if idle++; idle > 16 {
			if now := time.Now().UnixNano(); now-lastCatchUp >= int64(100*time.Millisecond) {
				lastCatchUp = now
				w.dp.ct.Expire(now, w.dp.cfg.ExpireBudget*256)
			}
			wait(100 * time.Millisecond)
		}
	}
}

// ConntrackConfig returns the flow table's configuration (the SNAT port range, for steering).
func (dp *DataPlane) ConntrackConfig() conntrack.Config { return dp.cfg.Conntrack }

// StartCapture arms a packet capture on every worker (each gets a preallocated ring of the
// session; workers added later are not captured). It returns capture.ErrBusy while another
// capture is armed. Control path: any goroutine.
func (dp *DataPlane) StartCapture(cfg capture.Config) (*capture.Session, error) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if dp.capture.Load() != nil {
		return nil, capture.ErrBusy
	}
	names := make([]string, len(dp.ports))
	for i, p := range dp.ports {
		names[i] = p.Name
	}
	s, err := capture.NewSession(cfg, names, len(dp.workers))
	if err != nil {
		return nil, fmt.Errorf("start capture: %w", err)
	}
	dp.capture.Store(s)
	return s, nil
}

// StopCapture disarms s if it is the armed capture; workers stop copying at their next batch.
func (dp *DataPlane) StopCapture(s *capture.Session) { dp.capture.CompareAndSwap(s, nil) }

// ownMAC reports whether mac is one of this node's ports' MACs.
func (dp *DataPlane) ownMAC(mac [6]byte) bool {
	for i := range dp.ports {
		if dp.ports[i].MAC == mac {
			return true
		}
	}
	return false
}
