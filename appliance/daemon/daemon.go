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
	// ICMP, and node address + SNAT ports to the sockets. On error the maps keep what the
	// previous successful Sync put there.
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

// node is the running daemon. Its fields are grouped by who owns them and what guards them.
type node struct {
	// Set by newNode and never changed after: read from any goroutine.
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	fromAPI bool // Services come from the Kubernetes API (else from manifest files)
	ports   []dataplane.Port
	builder *service.Builder // used by the control goroutine only
	started time.Time

	// The parts. health, fsync and agentSrc are built by newNode; cl, nb, dp and io by start,
	// before any goroutine that uses them runs; none is replaced after start. Each part keeps
	// its own concurrency contract.
	cl       *cluster.Node
	nb       *kernelNeighbors
	dp       *dataplane.DataPlane
	io       IOLayer
	health   *healthCheck // endpoint health probing and its gossip (health.go)
	fsync    *flowSync    // flow-state sync (flowsync.go)
	agentSrc *agentSource // backend agents' endpoints (agents.go)
	// kubeWatch is the Kubernetes watcher once startKube ran (kube.go), for resyncs.
	kubeWatch kubeResyncer

	// control is owned by the control goroutine (Run's): newNode and start fill it before the
	// event loop runs, after that only the loop reads and writes it. No lock.
	control struct {
		state         *service.State
		mtimes        map[string]time.Time
		objs          []service.Object     // manifest objects last loaded (manifest mode)
		published     []cluster.Allocation // last allocations proposed to the cluster
		publishedOnce bool                 // published holds a proposal (an empty one included)
	}

	// events are the channels into the control goroutine's event loop, made by newNode. Any
	// goroutine sends (the cluster's callbacks, health checking, the Kubernetes watcher); only
	// the loop receives.
	events struct {
		// refresh asks the loop to rebuild what it serves from the current sources (other
		// sources than manifests and the API changed: agents' endpoints, endpoint health). The
		// value says why, for the log.
		refresh     chan string
		kubeUpdates chan kubeUpdate
		ownership   chan cluster.OwnershipEvent
	}

	// metrics are the daemon's own Prometheus metrics, made by newNode; safe from any goroutine.
	metrics struct {
		ownershipChanges *prometheus.CounterVec
		vipConflicts     *prometheus.CounterVec
		failover         prometheus.Histogram
		collectors       []prometheus.Collector // every daemon metric, for the admin registry
	}

	// view is what is served, guarded by its RWMutex: the control goroutine writes it, the
	// admin API's handlers and the capture routes read it.
	view struct {
		sync.RWMutex
		raw     *service.Snapshot // as built from the sources, before overlays (health)
		snap    *service.Snapshot // what is served: raw with the overlays applied
		healthy error
	}

	// running is what start started, for stop; owned by the control goroutine (start, stop).
	running struct {
		leaveOnce   sync.Once          // leaveCluster runs once (the loop, then stop)
		cancel      context.CancelFunc // ends the goroutines below
		goroutines  sync.WaitGroup     // workers, conflict watcher, health checking
		captureDone chan struct{}      // closed: captures in progress end
		srv         *admin.Server
	}
}

// Run runs a node until ctx ends or SIGINT/SIGTERM arrives: newNode builds it, start starts its
// goroutines, serve runs the event loop, and stop tears everything down.
func Run(ctx context.Context, opts Options) error {
	n, err := newNode(opts)
	if err != nil {
		return err
	}
	snap, err := n.initialSnapshot()
	if err != nil {
		return err
	}
	defer n.stop()
	if err := n.start(ctx, snap); err != nil {
		return err
	}
	return n.serve(ctx)
}

// newNode builds a node from opts: the config (and the AF_XDP preflight checks when the I/O is
// AF_XDP), the ports, the persisted state, health checking, flow sync and the metrics. It
// starts no goroutine and opens nothing that needs closing.
func newNode(opts Options) (*node, error) {
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
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("node", cfg.Node.Name)
	if preflight {
		// Before anything is opened: refuse with what is missing and how to fix it.
		if err := checkAFXDP(cfg, log); err != nil {
			return nil, err
		}
	}
	n := &node{opts: opts, log: log, cfg: cfg, fromAPI: cfg.Services.FromAPI(), builder: service.NewBuilder(cfg),
		started: time.Now(), agentSrc: newAgentSource()}
	n.events.refresh = make(chan string, 1)
	n.events.kubeUpdates = make(chan kubeUpdate)
	n.events.ownership = make(chan cluster.OwnershipEvent, 64)
	if n.ports = opts.Ports; n.ports == nil {
		if n.ports, err = discoverPorts(cfg.Interfaces); err != nil {
			return nil, err
		}
	}
	if n.ports, err = chooseSNATAddresses(n.ports, cfg.Network.SNAT.Addresses); err != nil {
		return nil, err
	}
	if n.health, err = newHealthCheck(cfg.HealthChecks, cfg.Node.Name, n.ports, n, log); err != nil {
		return nil, err
	}
	if n.control.state, err = service.LoadState(cfg.State.Path); err != nil {
		return nil, err
	}
	fsync, fsyncCollectors := newFlowSync(cfg.Node.Name, cfg.Cluster.FlowSyncBytesPerSecond, log)
	n.fsync = fsync
	n.metrics.collectors = append(n.clusterMetrics(), fsyncCollectors...)
	n.metrics.collectors = append(n.metrics.collectors, n.health.collectors()...)
	return n, nil
}

// initialSnapshot is what the node serves first: in manifest mode, the manifests built against
// the persisted state (the new state is kept in control.state; start saves it once the node
// serves); in API mode nothing until the API's first update.
func (n *node) initialSnapshot() (*service.Snapshot, error) {
	if n.fromAPI {
		return &service.Snapshot{}, nil
	}
	if err := n.loadManifests(); err != nil {
		return nil, err
	}
	snap, st, err := n.build()
	if err != nil {
		return nil, err
	}
	n.control.state = st
	return snap, nil
}

// start brings the node up serving snap: it joins the cluster, makes the data plane and applies
// snap, opens the I/O and programs the steering maps, serves the admin API, and starts the
// workers, the conflict watcher, flow sync, health checking and (API mode) the Kubernetes
// watcher, then announces the VIPs it holds. On error what was started stays recorded for
// stop, which the caller runs in every case.
func (n *node) start(ctx context.Context, snap *service.Snapshot) error {
	if err := n.startCluster(); err != nil {
		return err
	}
	if err := n.startAgentCluster(); err != nil { // agentcluster.go
		return err
	}
	n.setClusterVIPs(snap)
	nb, err := newKernelNeighbors(ctx, n.log)
	if err != nil {
		return fmt.Errorf("neighbour resolver: %w", err)
	}
	n.nb = nb
	dcfg := dataplane.DefaultConfig()
	dcfg.Ports = n.ports
	dcfg.HoldsVIP = n.cl.Holds
	dcfg.ClusterCIDRs = n.cfg.Network.ClusterCIDRs
	// The node addresses' SNAT ports (the steering program sends them to the sockets); a
	// floating SNAT address (a VIP) keeps the data plane's own wider range.
	if sp := n.cfg.Network.SNAT.Ports; sp.First != 0 {
		dcfg.Conntrack.SNATPortMin, dcfg.Conntrack.SNATPortMax = sp.First, sp.Last
	}
	setDataPlaneLimits(&dcfg, n.cfg.DataPlane)
	dcfg.Logger = n.log
	dcfg.Neighbors = nb
	if n.dp, err = dataplane.New(dcfg); err != nil {
		return err
	}
	n.fsync.setTable(n.dp.Conntrack())
	n.nb.setFlowTable(n.dp.Conntrack())
	empty := n.dp.Plan()
	served := n.overlay(snap)
	plan, err := n.dp.Apply(served)
	if err != nil {
		return err
	}
	n.setSnapshot(snap, served)
	n.publishAllocations(snap, n.control.state)

	if n.io, err = n.opts.OpenIO(n.ports, n.dp, n.log); err != nil {
		return fmt.Errorf("open data plane: %w", err)
	}
	if err := n.io.Sync(plan); err != nil {
		return fmt.Errorf("steering program: %w", err)
	}
	if !n.fromAPI {
		// Persisted only now that the plan serves: a start that fails leaves the file alone.
		if err := n.saveState(n.control.state); err != nil {
			return err
		}
	}
	n.log.Info("data plane open", "mode", n.io.Modes(), "ports", len(n.ports), "queues", len(n.io.Queues()))
	if err := n.startAdmin(); err != nil {
		return err
	}
	if err := n.startGoroutines(ctx); err != nil {
		return err
	}
	n.resolveEndpoints(snap)
	n.announceChanges(empty, plan)
	if n.opts.Ready != nil {
		close(n.opts.Ready)
	}
	n.log.Info("serving", "services", len(snap.Services), "frontends", len(plan.Frontends()), "admin", n.running.srv.Addr())
	return nil
}

// startAdmin serves the admin API with every metric registered: on admin.listen, and on
// admin.socket (its directory made 0755 when missing) for callers the file permissions allow,
// with admin.tokenFile's token opening the privileged routes over TCP.
func (n *node) startAdmin() error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(dataplane.NewCollector(n.dp), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c, ok := n.io.(prometheus.Collector); ok {
		reg.MustRegister(c)
	}
	reg.MustRegister(n.metrics.collectors...)
	ac := n.cfg.Admin
	if ac.Socket != "" {
		if err := os.MkdirAll(filepath.Dir(ac.Socket), 0o755); err != nil {
			return fmt.Errorf("admin.socket: %w", err)
		}
	}
	n.running.captureDone = make(chan struct{})
	srv, err := admin.Start(n, admin.Config{Listen: ac.Listen, SocketPath: ac.Socket, TokenFile: ac.TokenFile,
		Registry: reg, Logger: n.log, MaxFlows: 1000, Routes: n.captureRoutes(n.running.captureDone)})
	if err != nil {
		return err
	}
	n.running.srv = srv
	return nil
}

// startGoroutines starts one worker per queue index, the conflict watcher, flow sync, health
// checking and, in API mode, the Kubernetes watcher, all ending with running.cancel.
func (n *node) startGoroutines(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	n.running.cancel = cancel
	for q, queue := range n.io.Queues() {
		w, err := n.dp.AddWorker(q, queue.IO)
		if err != nil {
			return err
		}
		n.running.goroutines.Go(func() { w.Run(wctx, queue.Wait) })
	}
	n.running.goroutines.Go(func() { n.watchConflicts(wctx) })
	if err := n.fsync.start(wctx); err != nil {
		return err
	}
	if err := n.health.start(wctx, n.cl, &n.running.goroutines); err != nil {
		return err
	}
	if n.fromAPI {
		return n.startKube(wctx)
	}
	return nil
}

// stop tears down whatever start started, in this order (each step skipped when its part was
// never started):
//
//  1. leave the cluster, handing the VIPs over while the data plane still serves;
//  2. end the goroutines (workers, conflict watcher, flow sync, health checking, Kubernetes
//     watcher) and wait for the workers, the conflict watcher and health checking;
//  3. end captures in progress, then close the admin API server;
//  4. close the I/O: the XDP programs are detached and the sockets closed;
//  5. close the neighbour resolver.
func (n *node) stop() {
	if n.cl != nil {
		n.leaveCluster()
	}
	n.stopAgentCluster() // agentcluster.go
	if n.running.cancel != nil {
		n.running.cancel()
		n.running.goroutines.Wait()
	}
	if n.running.captureDone != nil {
		close(n.running.captureDone)
	}
	if n.running.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.running.srv.Close(sctx)
		cancel()
	}
	if n.io != nil {
		if err := n.io.Close(); err != nil {
			n.log.Error("close data plane", "err", err)
		}
	}
	if n.nb != nil {
		n.nb.Close()
	}
}

// serve is the control goroutine's event loop: reloads (SIGHUP, a changed manifest file),
// Kubernetes updates, refresh requests and ownership changes, until ctx ends or SIGINT/SIGTERM
// arrives; it then leaves the cluster (stop does the rest).
func (n *node) serve(ctx context.Context) error {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	tick := time.NewTicker(n.opts.ReloadCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			n.log.Info("stopping", "reason", ctx.Err())
			n.leaveCluster()
			return nil
		case s := <-sig:
			if s == syscall.SIGHUP {
				if !n.fromAPI {
					_ = n.reload("SIGHUP") // logged; the previous services keep serving
				}
				continue
			}
			n.log.Info("stopping", "signal", s.String())
			n.leaveCluster()
			return nil
		case req := <-n.events.kubeUpdates:
			n.applyKube(req)
		case <-tick.C:
			if !n.fromAPI && n.manifestsChanged() {
				_ = n.reload("manifest changed") // logged; the previous services keep serving
			}
		case why := <-n.events.refresh:
			n.refreshView(why)
		case <-n.events.ownership:
			// Coalesce a burst of events into one recompile.
			for len(n.events.ownership) > 0 {
				<-n.events.ownership
			}
			n.ownershipChanged()
		}
	}
}

// leaveCluster hands this node's VIPs over and leaves the cluster, while the data plane still
// serves (it is closed after this returns).
func (n *node) leaveCluster() {
	n.running.leaveOnce.Do(func() {
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
	n.control.objs, n.control.mtimes = objs, mt
	return nil
}

// build builds a snapshot from the manifest objects last loaded plus the other sources'
// objects (extraObjects) against the persisted state, and returns it with the new state (its
// creation times stamped). It changes nothing and saves nothing: the caller persists the state
// once the snapshot serves (applyBuilt).
func (n *node) build() (*service.Snapshot, *service.State, error) {
	objs := n.control.objs
	if extra := n.extraObjects(); len(extra) > 0 {
		objs = append(append(make([]service.Object, 0, len(objs)+len(extra)), objs...), extra...)
	}
	prev := n.control.state
	if n.cl != nil {
		resolved := n.cl.Allocations()
		n.builder.SetReserved(clusterReservations(resolved))
		prev = adoptResolved(n.control.state, n.rawSnapshot(), resolved)
	}
	snap, st, err := n.builder.Build(objs, prev)
	if err != nil {
		return nil, nil, err
	}
	stampCreated(st, prev, time.Now())
	return snap, st, nil
}

// saveState persists st (service.SaveState writes nothing when the file already holds it).
func (n *node) saveState(st *service.State) error {
	if err := service.SaveState(n.cfg.State.Path, st); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// reload re-reads the manifest files, rebuilds and applies. On any error the previous snapshot
// keeps serving, the previously loaded objects stay loaded (the next tick or SIGHUP tries again)
// and the state file is not written; the error is returned after it is logged.
func (n *node) reload(why string) error {
	old, oldMtimes := n.control.objs, n.control.mtimes
	err := n.loadManifests()
	var snap *service.Snapshot
	var st *service.State
	if err == nil {
		snap, st, err = n.build()
	}
	if err == nil {
		err = n.applyBuilt(snap, st, why)
	}
	if err != nil {
		n.control.objs, n.control.mtimes = old, oldMtimes
		n.log.Error("reload refused; previous services keep serving", "why", why, "err", err)
		return fmt.Errorf("reload (%s): %w", why, err)
	}
	return nil
}

// refreshView rebuilds what is served after a source other than the manifests or the API
// changed: in manifest mode the snapshot is rebuilt from the loaded objects plus extraObjects; in
// both modes the overlays are applied again.
func (n *node) refreshView(why string) {
	n.view.RLock()
	raw := n.view.raw
	n.view.RUnlock()
	if !n.cfg.Services.FromAPI() {
		snap, st, err := n.build()
		if err != nil {
			n.log.Error("rebuild refused; previous services keep serving", "why", why, "err", err)
			return
		}
		_ = n.applyBuilt(snap, st, why)
		return
	}
	if raw == nil {
		return
	}
	_ = n.applySnapshot(raw, nil, why)
}

// requestRefresh asks the control loop to call refreshView; requests coalesce.
func (n *node) requestRefresh(why string) {
	select {
	case n.events.refresh <- why:
	default:
	}
}

// applySnapshot swaps in a new desired state (raw as built from the sources; the overlays are
// applied here) with st, when not nil, the allocations it was built with (creation times are
// stamped here): see applyBuilt.
func (n *node) applySnapshot(raw *service.Snapshot, st *service.State, why string) error {
	if st != nil {
		stampCreated(st, n.control.state, time.Now())
	}
	return n.applyBuilt(raw, st, why)
}

// applyBuilt swaps in raw and st (stamped; nil: the allocations do not change): cluster VIPs,
// data plane plan and steering maps (installPlan), then, only once those serve it, the
// persisted state, neighbour resolution and VIP announcements. On error the previous plan
// keeps serving, nothing is saved, and the error is logged and returned.
func (n *node) applyBuilt(raw *service.Snapshot, st *service.State, why string) error {
	old := n.snapshot()
	snap := n.overlay(raw)
	if _, err := n.installPlan(snap, old); err != nil {
		n.log.Error("update refused; previous services keep serving", "why", why, "err", err)
		return err
	}
	if st != nil {
		if err := n.saveState(st); err != nil {
			// The plan serves already: keep it, and the allocations it serves (the file is
			// written again on the next change).
			n.log.Error("update serves but its state was not saved", "why", why, "err", err)
		}
		n.control.state = st
	}
	n.setSnapshot(raw, snap)
	n.publishAllocations(raw, n.control.state)
	if old != nil {
		d := snap.Diff(old)
		n.log.Info("services updated", "why", why, "added", len(d.Added), "removed", len(d.Removed),
			"changed", len(d.Changed), "endpointsChanged", len(d.EndpointsChanged))
	}
	n.resolveEndpoints(snap)
	return nil
}

// installPlan makes the cluster, the data plane and the steering maps serve snap (served, with
// the overlays), then announces the VIPs taken. prev is the snapshot served until now (nil:
// none yet). On error the previous plan serves on: the cluster's VIPs go back to prev's, and
// when the steering maps refused the plan (a map full, say) the data plane goes back to the
// previous plan, whose steering the I/O layer kept.
func (n *node) installPlan(snap, prev *service.Snapshot) (*dataplane.Plan, error) {
	old := n.dp.Plan()
	n.setClusterVIPs(snap)
	restoreVIPs := func() {
		if prev != nil {
			n.setClusterVIPs(prev)
		}
	}
	plan, err := n.dp.Apply(snap)
	if err != nil {
		restoreVIPs()
		return nil, err
	}
	if err := n.io.Sync(plan); err != nil {
		err = fmt.Errorf("steering program: %w", err)
		restoreVIPs()
		back := old.Snapshot
		if back == nil {
			back = &service.Snapshot{}
		}
		if _, rerr := n.dp.Apply(back); rerr != nil {
			return nil, errors.Join(err, fmt.Errorf("restore the previous plan: %w", rerr))
		}
		return nil, err
	}
	n.announceChanges(old, plan)
	return plan, nil
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
	if len(now) != len(n.control.mtimes) {
		return true
	}
	for p, t := range now {
		if old, ok := n.control.mtimes[p]; !ok || !old.Equal(t) {
			return true
		}
	}
	return false
}

// setSnapshot records the snapshot as built (raw) and as served (with the overlays).
func (n *node) setSnapshot(raw, served *service.Snapshot) {
	n.view.Lock()
	n.view.raw, n.view.snap = raw, served
	n.view.Unlock()
}

// rawSnapshot is the last snapshot as built, before the overlays.
func (n *node) rawSnapshot() *service.Snapshot {
	n.view.RLock()
	defer n.view.RUnlock()
	return n.view.raw
}

func (n *node) snapshot() *service.Snapshot {
	n.view.RLock()
	defer n.view.RUnlock()
	return n.view.snap
}

// Healthy implements admin.Source.
func (n *node) Healthy() error {
	n.view.RLock()
	defer n.view.RUnlock()
	if n.view.snap == nil {
		return errors.New("no services loaded")
	}
	return n.view.healthy
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

// setDataPlaneLimits copies the config's dataPlane limits into the data plane's config. In the
// config file 0 turns a limit off; in dataplane.Config 0 means its default and a negative rate
// turns it off.
func setDataPlaneLimits(dcfg *dataplane.Config, d config.DataPlaneConfig) {
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	dcfg.NewFlowsPerSourcePerSecond, dcfg.NewFlowsPerSourceBurst = off(d.NewFlowsPerSourcePerSecond), d.NewFlowsPerSourceBurst
	dcfg.LocalRepliesPerSecond, dcfg.LocalReplyBurst = off(d.LocalRepliesPerSecond), d.LocalReplyBurst
}
