package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/cluster"
)

// IOLayer is what the daemon needs from the AF_XDP side: per queue index, one FrameIO per port
// (in port order) and a function that waits for any of them; a way to make the XDP steering
// program's maps match a plan; and a clean shutdown.
type IOLayer interface {
	// Queues returns, per queue index, the FrameIOs of every port and the wait function.
	Queues() []Queue
	// Sync makes the steering program send exactly the plan's frontends, held VIPs' ARP and
	// ICMP, and node address + SNAT ports to the sockets.
	Sync(plan *dataplane.Plan) error
	// Modes says which XDP and AF_XDP modes are in use, for logs and metrics.
	Modes() string
	// Close detaches the XDP programs and closes the sockets.
	Close() error
}

// Queue is one queue index's I/O across all ports.
type Queue struct {
	IO   []dataplane.FrameIO
	Wait func(timeout time.Duration)
}

// OpenIOFunc opens the I/O layer on the ports. The default is the AF_XDP layer.
type OpenIOFunc func(ports []dataplane.Port, dp *dataplane.DataPlane, log *slog.Logger) (IOLayer, error)

// Options configure Run.
type Options struct {
	// ConfigPath is the appliance config file.
	ConfigPath string
	// Logger receives structured logs; nil: slog.Default().
	Logger *slog.Logger
	// OpenIO opens the data plane's I/O; nil: AF_XDP on the configured interfaces.
	OpenIO OpenIOFunc
	// ReloadCheckInterval is how often manifest files are checked for changes; 0: 1 s.
	ReloadCheckInterval time.Duration
	// Ready, when set, is closed once the node serves (tests wait on it).
	Ready chan<- struct{}
	// Ports, when set, replaces reading the configured interfaces from the kernel (tests that
	// run the control path without real NICs).
	Ports []dataplane.Port
	// KubeClient, when set, replaces the client built from services.kubeconfig/inCluster (tests:
	// client-go's fake clientset).
	KubeClient kubernetes.Interface
}

// node is the running daemon's control state, owned by the Run goroutine (the admin API reads
// through the mutex-guarded fields).
type node struct {
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	ports   []dataplane.Port
	dp      *dataplane.DataPlane
	io      IOLayer
	builder *service.Builder
	state   *service.State
	mtimes  map[string]time.Time
	objs    []service.Object // manifest objects last loaded (manifest mode)
	nb      *kernelNeighbors

	// refresh asks the control loop to rebuild what it serves from the current sources (other
	// sources than manifests and the API changed: agents' endpoints, endpoint health). The value
	// says why, for the log.
	refresh chan string

	kubeUpdates      chan kubeUpdate
	cl               *cluster.Node
	leaveOnce        sync.Once
	ownership        chan cluster.OwnershipEvent
	ownershipChanges *prometheus.CounterVec
	vipConflicts     *prometheus.CounterVec
	published        []cluster.Allocation // last allocations proposed to the cluster
	publishedOnce    bool                 // published holds a proposal (an empty one included)
	fsync            *flowSync
	failover         prometheus.Histogram
	health           *healthCheck // endpoint health probing and its gossip (health.go)

	mu      sync.RWMutex
	raw     *service.Snapshot // as built from the sources, before overlays (health)
	snap    *service.Snapshot // what is served: raw with the overlays applied
	healthy error
	started time.Time
}

// Run runs a node until ctx ends or SIGINT/SIGTERM arrives.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReloadCheckInterval <= 0 {
		opts.ReloadCheckInterval = time.Second
	}
	preflight := opts.OpenIO == nil // only the AF_XDP layer needs the kernel's support
	if opts.OpenIO == nil {
		opts.OpenIO = openAFXDP
	}
	log := opts.Logger
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	log = log.With("node", cfg.Node.Name)
	if preflight {
		// Before anything is opened: refuse with what is missing and how to fix it.
		if err := checkAFXDP(cfg, log); err != nil {
			return err
		}
	}
	n := &node{opts: opts, log: log, cfg: cfg, builder: service.NewBuilder(cfg), started: time.Now(),
		refresh: make(chan string, 1)}
	if n.health, err = newHealthCheck(n); err != nil {
		return err
	}

	if n.ports = opts.Ports; n.ports == nil {
		if n.ports, err = discoverPorts(cfg.Interfaces); err != nil {
			return err
		}
	}
	n.state, err = service.LoadState(cfg.State.Path)
	if err != nil {
		return err
	}
	fromAPI := cfg.Services.FromAPI()
	var snap *service.Snapshot
	if fromAPI {
		// Services come from the Kubernetes API; nothing is served until its first update.
		snap = &service.Snapshot{}
	} else {
		if err := n.loadManifests(); err != nil {
			return err
		}
		if snap, err = n.build(); err != nil {
			return err
		}
	}

	n.ownership = make(chan cluster.OwnershipEvent, 64)
	clusterCollectors := n.clusterMetrics()
	fsync, fsyncCollectors := n.flowSyncMetrics()
	n.fsync = fsync
	if err := n.startCluster(); err != nil {
		return err
	}
	defer n.leaveCluster()
	n.setClusterVIPs(snap)

	dcfg := dataplane.DefaultConfig()
	dcfg.Ports = n.ports
	dcfg.HoldsVIP = n.cl.Holds
	dcfg.ClusterCIDRs = cfg.Network.ClusterCIDRs
	dcfg.Logger = log
	nb, err := newKernelNeighbors(ctx, log)
	if err != nil {
		return fmt.Errorf("neighbour resolver: %w", err)
	}
	defer nb.Close()
	n.nb = nb
	dcfg.Neighbors = nb
	n.dp, err = dataplane.New(dcfg)
	if err != nil {
		return err
	}
	fsync.setTable(n.dp.Conntrack())
	empty := n.dp.Plan()
	served := n.overlay(snap)
	plan, err := n.dp.Apply(served)
	if err != nil {
		return err
	}
	n.setSnapshot(snap, served)
	n.publishAllocations(snap, n.state)

	n.io, err = opts.OpenIO(n.ports, n.dp, log)
	if err != nil {
		return fmt.Errorf("open data plane: %w", err)
	}
	defer func() {
		if err := n.io.Close(); err != nil {
			log.Error("close data plane", "err", err)
		}
	}()
	if err := n.io.Sync(plan); err != nil {
		return fmt.Errorf("steering program: %w", err)
	}
	log.Info("data plane open", "mode", n.io.Modes(), "ports", len(n.ports), "queues", len(n.io.Queues()))

	reg := prometheus.NewRegistry()
	reg.MustRegister(dataplane.NewCollector(n.dp), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c, ok := n.io.(prometheus.Collector); ok {
		reg.MustRegister(c)
	}
	reg.MustRegister(clusterCollectors...)
	reg.MustRegister(fsyncCollectors...)
	reg.MustRegister(n.health.collectors()...)
	captureDone := make(chan struct{})
	srv, err := admin.Start(n, admin.Config{Listen: cfg.Admin.Listen, Registry: reg, Logger: log, MaxFlows: 1000,
		Routes: n.captureRoutes(captureDone)})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Close(sctx)
	}()
	defer close(captureDone) // runs first: captures in progress end before the server shuts down

	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for q, queue := range n.io.Queues() {
		w, err := n.dp.AddWorker(q, queue.IO)
		if err != nil {
			stopWorkers()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Run(wctx, queue.Wait)
		}()
	}
	defer func() {
		stopWorkers()
		wg.Wait()
	}()

	go n.watchConflicts(wctx)
	if err := fsync.start(wctx); err != nil {
		return err
	}
	if err := n.health.start(wctx, &wg); err != nil {
		return err
	}
	if fromAPI {
		if err := n.startKube(wctx); err != nil {
			return err
		}
	}
	n.resolveEndpoints(snap)
	n.announceChanges(empty, plan)
	if opts.Ready != nil {
		close(opts.Ready)
	}
	log.Info("serving", "services", len(snap.Services), "frontends", len(plan.Frontends()), "admin", srv.Addr())

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	tick := time.NewTicker(opts.ReloadCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", ctx.Err())
			n.leaveCluster()
			return nil
		case s := <-sig:
			if s == syscall.SIGHUP {
				if !fromAPI {
					n.reload("SIGHUP")
				}
				continue
			}
			log.Info("stopping", "signal", s.String())
			n.leaveCluster()
			return nil
		case req := <-n.kubeUpdates:
			n.applyKube(req)
		case <-tick.C:
			if !fromAPI && n.manifestsChanged() {
				n.reload("manifest changed")
			}
		case why := <-n.refresh:
			n.refreshView(why)
		case <-n.ownership:
			// Coalesce a burst of events into one recompile.
			for len(n.ownership) > 0 {
				<-n.ownership
			}
			n.ownershipChanged()
		}
	}
}

// leaveCluster hands this node's VIPs over and leaves the cluster, while the data plane still
// serves (it is closed after this returns).
func (n *node) leaveCluster() {
	n.leaveOnce.Do(func() {
		if err := n.cl.Close(2 * time.Second); err != nil {
			n.log.Warn("leave cluster", "err", err)
		}
	})
}

// loadManifests reads the manifest files. It changes nothing on failure.
func (n *node) loadManifests() error {
	mt := n.statManifests()
	objs, err := service.LoadManifests(n.cfg.Services.Manifests)
	if err != nil {
		return err
	}
	n.objs, n.mtimes = objs, mt
	return nil
}

// build builds a snapshot from the manifest objects last loaded plus the other sources'
// objects (extraObjects) against the persisted state, saving the new state on success. It
// changes nothing on failure.
func (n *node) build() (*service.Snapshot, error) {
	objs := n.objs
	if extra := n.extraObjects(); len(extra) > 0 {
		objs = append(append(make([]service.Object, 0, len(objs)+len(extra)), objs...), extra...)
	}
	prev := n.state
	if n.cl != nil {
		resolved := n.cl.Allocations()
		n.builder.SetReserved(clusterReservations(resolved))
		prev = adoptResolved(n.state, n.rawSnapshot(), resolved)
	}
	snap, st, err := n.builder.Build(objs, prev)
	if err != nil {
		return nil, err
	}
	stampCreated(st, prev, time.Now())
	if err := service.SaveState(n.cfg.State.Path, st); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	n.state = st
	return snap, nil
}

// reload re-reads the manifest files, rebuilds and applies; on any error the previous snapshot
// keeps serving.
func (n *node) reload(why string) {
	old, oldMtimes := n.objs, n.mtimes
	if err := n.loadManifests(); err != nil {
		n.log.Error("reload refused; previous services keep serving", "why", why, "err", err)
		return
	}
	snap, err := n.build()
	if err != nil {
		n.objs, n.mtimes = old, oldMtimes
		n.log.Error("reload refused; previous services keep serving", "why", why, "err", err)
		return
	}
	_ = n.applySnapshot(snap, nil, why)
}

// refreshView rebuilds what is served after a source other than the manifests or the API
// changed: in manifest mode the snapshot is rebuilt from the loaded objects plus extraObjects; in
// both modes the overlays are applied again.
func (n *node) refreshView(why string) {
	n.mu.RLock()
	raw := n.raw
	n.mu.RUnlock()
	if !n.cfg.Services.FromAPI() {
		snap, err := n.build()
		if err != nil {
			n.log.Error("rebuild refused; previous services keep serving", "why", why, "err", err)
			return
		}
		raw = snap
	}
	if raw == nil {
		return
	}
	_ = n.applySnapshot(raw, nil, why)
}

// requestRefresh asks the control loop to call refreshView; requests coalesce.
func (n *node) requestRefresh(why string) {
	select {
	case n.refresh <- why:
	default:
	}
}

// applySnapshot swaps in a new desired state (snap as built from the sources; the overlays are
// applied here): cluster VIPs, data plane plan, steering maps, persisted state, neighbour
// resolution and VIP announcements. On error nothing changes.
func (n *node) applySnapshot(raw *service.Snapshot, st *service.State, why string) error {
	old := n.snapshot()
	snap := n.overlay(raw)
	n.setClusterVIPs(snap)
	if _, err := n.install(snap); err != nil {
		n.log.Error("update refused; previous services keep serving", "why", why, "err", err)
		if old != nil {
			n.setClusterVIPs(old)
		}
		return err
	}
	if st != nil {
		stampCreated(st, n.state, time.Now())
		if err := service.SaveState(n.cfg.State.Path, st); err != nil {
			n.log.Error("save state", "err", err)
		}
		n.state = st
	}
	n.setSnapshot(raw, snap)
	n.publishAllocations(raw, n.state)
	if old != nil {
		d := snap.Diff(old)
		n.log.Info("services updated", "why", why, "added", len(d.Added), "removed", len(d.Removed),
			"changed", len(d.Changed), "endpointsChanged", len(d.EndpointsChanged))
	}
	n.resolveEndpoints(snap)
	return nil
}

// resolveEndpoints resolves every endpoint's next hop before traffic needs it.
func (n *node) resolveEndpoints(snap *service.Snapshot) {
	var addrs []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, s := range snap.Services {
		for _, p := range s.Ports {
			for _, e := range p.Endpoints {
				if !seen[e.Addr] {
					seen[e.Addr] = true
					addrs = append(addrs, e.Addr)
				}
			}
		}
	}
	if err := n.nb.resolveEndpoints(addrs); err != nil {
		n.log.Warn("resolve endpoints", "err", err)
	}
}

func (n *node) statManifests() map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range n.cfg.Services.Manifests {
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if info, err := d.Info(); err == nil && !d.IsDir() {
				out[path] = info.ModTime()
			}
			return nil
		})
	}
	return out
}

func (n *node) manifestsChanged() bool {
	now := n.statManifests()
	if len(now) != len(n.mtimes) {
		return true
	}
	for p, t := range now {
		if old, ok := n.mtimes[p]; !ok || !old.Equal(t) {
			return true
		}
	}
	return false
}

// setSnapshot records the snapshot as built (raw) and as served (with the overlays).
func (n *node) setSnapshot(raw, served *service.Snapshot) {
	n.mu.Lock()
	n.raw, n.snap = raw, served
	n.mu.Unlock()
}

// rawSnapshot is the last snapshot as built, before the overlays.
func (n *node) rawSnapshot() *service.Snapshot {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.raw
}

func (n *node) snapshot() *service.Snapshot {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.snap
}

// Healthy implements admin.Source.
func (n *node) Healthy() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.snap == nil {
		return errors.New("no services loaded")
	}
	return n.healthy
}

// Services implements admin.Source.
func (n *node) Services() []admin.ServiceStatus {
	snap := n.snapshot()
	out := admin.ServicesFromSnapshot(snap)
	active := n.dp.ActiveFlows()
	for i, s := range snap.Services {
		if s.ExternalIP.IsValid() {
			out[i].VIPHolder, _ = n.cl.Owner(s.ExternalIP)
		}
		for j, p := range s.Ports {
			t := n.dp.PortTotals(p.ID)
			out[i].Ports[j].Packets, out[i].Ports[j].Bytes, out[i].Ports[j].NewFlows = t.Packets, t.Bytes, t.NewFlows
			out[i].Ports[j].ActiveFlows = active[p.ID]
		}
	}
	return out
}

// Endpoints implements admin.Source.
func (n *node) Endpoints() []admin.EndpointStatus { return admin.EndpointsFromSnapshot(n.snapshot()) }

// Flows implements admin.Source.
func (n *node) Flows(limit int) []admin.FlowStatus {
	fv := n.dp.Flows(limit)
	out := make([]admin.FlowStatus, len(fv))
	for i, f := range fv {
		out[i] = admin.FlowStatus{Protocol: f.Proto, Client: f.Client, Frontend: f.Frontend, Backend: f.Backend,
			SNAT: f.SNAT, Service: f.Service, State: f.State, ExpiresIn: f.ExpiresIn.Round(time.Second).String()}
	}
	return out
}

// Members implements admin.Source.
func (n *node) Members() []admin.MemberStatus { return n.members() }
