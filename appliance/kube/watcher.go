package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
)

// Config configures a Watcher.
type Config struct {
	// Client talks to the API server: NewClient's clientset, or k8s.io/client-go/kubernetes/fake
	// in tests. Required.
	Client kubernetes.Interface
	// Appliance is the loaded appliance config: the address plan and pools the Services are built
	// against, and services.loadBalancerClass / services.serveUnclassed. Required; must not change.
	Appliance *config.Config
	// InitialState is the persisted allocation State (external IPs, port IDs) the first build
	// starts from; nil = empty.
	InitialState *service.State
	// OnUpdate receives every new desired state, on the sync goroutine, one call at a time.
	// Returning an error rejects the state: the Watcher keeps the previous one as last accepted,
	// writes no status for it, and syncs again after RetryInterval. Required.
	OnUpdate func(Update) error
	// MinSyncInterval is the least time between two syncs; informer events arriving in between
	// are coalesced into the next sync (kube-proxy's minSyncPeriod). Default 100 ms.
	MinSyncInterval time.Duration
	// RetryInterval is how long after a failed build, rejected update or failed status write the
	// Watcher syncs again on its own. Default 1 s.
	RetryInterval time.Duration
	// WriteStatus writes each served LoadBalancer Service's external IP to
	// status.loadBalancer.ingress (and clears it for a pending Service) when this cluster controls
	// it: the Service has services.loadBalancerClass, or is unclassed and either unassigned or
	// recorded as this cluster's (AnnotationOwner). Default true.
	WriteStatus bool
	// ClusterName names this appliance cluster in AnnotationOwner. Two appliance clusters that
	// watch one Kubernetes cluster must have different names. Default: services.loadBalancerClass
	// when set, else UserAgent.
	ClusterName string
	// ShouldWriteStatus, when set, says whether this node writes the status of the Service whose
	// external IP is vip: the node holding the VIP, so that one node of the cluster writes. It is
	// called with the zero Addr for a pending Service (no external IP: a stale status to clear);
	// the answer must then be true on exactly one node too, e.g. the holder of a fixed VIP or the
	// member that sorts first. It runs on the sync goroutine and must not block. nil = every node
	// writes (a single-node appliance).
	ShouldWriteStatus func(vip netip.Addr) bool
	// StatusBackoff is the wait before a Service's second status write in a row; each further
	// write of the series waits twice the previous wait, up to StatusBackoffMax, so that a writer
	// that keeps changing the status cannot start a write loop. Default 1 s.
	StatusBackoff time.Duration
	// StatusBackoffMax is the longest wait between two status writes of one Service; a series
	// ends after 2*StatusBackoffMax without a write. Default 5 min.
	StatusBackoffMax time.Duration
	// StatusTimeout bounds one UpdateStatus request. Default 5 s.
	StatusTimeout time.Duration
	// ResyncPeriod is the informers' resync period; 0 = none (every change arrives as a watch
	// event, and a relist after an outage delivers the differences). Default 0.
	ResyncPeriod time.Duration
	// Logger receives sync and status-write logs (keys: service, vip, err). Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; Client, Appliance and OnUpdate must still be set.
func DefaultConfig() Config {
	return Config{
		MinSyncInterval:  100 * time.Millisecond,
		RetryInterval:    time.Second,
		WriteStatus:      true,
		StatusTimeout:    5 * time.Second,
		StatusBackoff:    time.Second,
		StatusBackoffMax: 5 * time.Minute,
	}
}

// Update is one new desired state.
type Update struct {
	// Snapshot is the validated, allocated state to serve. Never modified afterwards.
	Snapshot *service.Snapshot
	// State is the allocation State to persist (service.SaveState) once the snapshot is applied.
	State *service.State
	// Diff is what changed since the last accepted snapshot (everything is Added the first time).
	Diff service.Diff
	// Skipped lists, FILE-style ("Service ns/name: FIELD: MESSAGE"), every object left out of
	// Snapshot because it failed validation or allocation.
	Skipped config.ErrorList
}

// Stats are counters of a Watcher, safe to read from any goroutine.
type Stats struct {
	// Syncs is the number of syncs started (builds attempted).
	Syncs uint64
	// SyncsDone is the number of syncs finished, status writes included.
	SyncsDone uint64
	// Updates is the number of states accepted by OnUpdate.
	Updates uint64
	// Rejected is the number of states OnUpdate refused, plus builds that failed altogether.
	Rejected uint64
	// StatusWrites is the number of status writes made: an ownership record and, unless the
	// status already said it, the status.
	StatusWrites uint64
	// StatusErrors is the number of status writes that failed (after their conflict retries).
	StatusErrors uint64
	// StatusConflicts is the number of resourceVersion conflicts met while writing statuses.
	StatusConflicts uint64
	// Foreign is the number of LoadBalancer Services, in the last sync, left to another
	// controller (not served as a VIP, status not written).
	Foreign uint64
	// Skipped is the number of objects left out of the last built state.
	Skipped uint64
}

// Watcher follows Services and EndpointSlices of one API server. Create with New, run with Run.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	builder *service.Builder
	kick    chan struct{}

	// owned by the sync goroutine
	state   *service.State
	last    *service.Snapshot
	objects map[types.UID]cachedObject
	// lastSkipped is the text of the last sync's skipped objects
	lastSkipped string
	svcs        corelisters.ServiceLister
	slices      discoverylisters.EndpointSliceLister
	// foreignLogged maps each Service left to another controller to the reason last logged
	foreignLogged map[string]string
	// backoff spaces each Service's status writes
	backoff map[string]*statusBackoff

	synced                                                   atomic.Bool
	syncs, syncsDone, updates, rejected, writes, writeErrors atomic.Uint64
	skipped, conflicts, foreign                              atomic.Uint64
}

// cachedObject is the service.Object built for one resourceVersion of an API object.
type cachedObject struct {
	rv  string
	obj service.Object
}

// New checks cfg and returns a Watcher that has not started.
func New(cfg Config) (*Watcher, error) {
	d := DefaultConfig()
	if cfg.Client == nil || cfg.Appliance == nil || cfg.OnUpdate == nil {
		return nil, errors.New("kube watcher: Client, Appliance and OnUpdate are required")
	}
	if cfg.MinSyncInterval <= 0 {
		cfg.MinSyncInterval = d.MinSyncInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = d.RetryInterval
	}
	if cfg.StatusTimeout <= 0 {
		cfg.StatusTimeout = d.StatusTimeout
	}
	if cfg.StatusBackoff <= 0 {
		cfg.StatusBackoff = d.StatusBackoff
	}
	if cfg.StatusBackoffMax <= 0 {
		cfg.StatusBackoffMax = d.StatusBackoffMax
	}
	cfg.StatusBackoffMax = max(cfg.StatusBackoffMax, cfg.StatusBackoff)
	if cfg.ClusterName == "" {
		cfg.ClusterName = cfg.Appliance.Services.LoadBalancerClass
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = UserAgent
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st := cfg.InitialState
	if st == nil {
		st = &service.State{Version: service.StateVersion, Services: map[string]service.ServiceState{}}
	}
	return &Watcher{
		cfg:     cfg,
		log:     cfg.Logger,
		builder: service.NewBuilderWithOptions(cfg.Appliance, service.BuildOptions{APIAllocated: true}),
		kick:    make(chan struct{}, 1),
		state:   st,
		objects: map[types.UID]cachedObject{},
		backoff: map[string]*statusBackoff{},
	}, nil
}

// Stats returns the Watcher's counters.
func (w *Watcher) Stats() Stats {
	return Stats{Syncs: w.syncs.Load(), SyncsDone: w.syncsDone.Load(), Updates: w.updates.Load(), Rejected: w.rejected.Load(),
		StatusWrites: w.writes.Load(), StatusErrors: w.writeErrors.Load(), StatusConflicts: w.conflicts.Load(),
		Foreign: w.foreign.Load(), Skipped: w.skipped.Load()}
}

// Resync asks for a sync soon (within MinSyncInterval) without an API change: the owner calls it
// when ShouldWriteStatus's answers may have changed (this node took over a VIP). Never blocks.
func (w *Watcher) Resync() { w.trigger() }

// Synced reports whether every informer cache has synced once (the first state follows).
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Run starts the informers, waits for their caches, and syncs on every change until ctx ends.
// It returns nil when ctx ends after the caches synced, an error if ctx ended before.
func (w *Watcher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory := informers.NewSharedInformerFactory(w.cfg.Client, w.cfg.ResyncPeriod)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { w.trigger() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(metav1.Object)
			n, ok2 := newObj.(metav1.Object)
			if ok1 && ok2 && n.GetResourceVersion() != "" && o.GetResourceVersion() == n.GetResourceVersion() {
				return // a resync, nothing changed
			}
			w.trigger()
		},
		DeleteFunc: func(any) { w.trigger() },
	}
	if _, err := svcInf.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	if _, err := sliceInf.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watch endpointslices: %w", err)
	}
	w.svcs, w.slices = svcInf.Lister(), sliceInf.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown() // after cancel (deferred first, runs last): waits for informer goroutines
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return fmt.Errorf("watch services: caches not synced: %w", context.Cause(ctx))
	}
	w.synced.Store(true)
	w.trigger()
	w.loop(ctx)
	return nil
}

// trigger marks the state dirty; never blocks.
func (w *Watcher) trigger() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// loop runs syncs, at most one per MinSyncInterval, until ctx ends.
func (w *Watcher) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	var lastSync time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		if wait := w.cfg.MinSyncInterval - time.Since(lastSync); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select { // events that arrived while waiting are part of this sync
		case <-w.kick:
		default:
		}
		lastSync = time.Now()
		ok, after := w.sync(ctx)
		if !ok && (after == 0 || after > w.cfg.RetryInterval) {
			after = w.cfg.RetryInterval
		}
		if after > 0 {
			if retry != nil {
				retry.Stop()
			}
			retry = time.AfterFunc(after, w.trigger)
		}
	}
}

// served reports whether this appliance serves s under services.loadBalancerClass/serveUnclassed.
func served(s *corev1.Service, sc config.ServicesConfig) bool {
	if s.Spec.LoadBalancerClass == nil || *s.Spec.LoadBalancerClass == "" {
		return sc.ServeUnclassed
	}
	return sc.LoadBalancerClass != "" && *s.Spec.LoadBalancerClass == sc.LoadBalancerClass
}

// sync builds and hands over the current state and writes statuses. false asks for a retry after
// RetryInterval; a positive duration asks for a sync after it (a status write held back).
func (w *Watcher) sync(ctx context.Context) (bool, time.Duration) {
	w.syncs.Add(1)
	defer w.syncsDone.Add(1)
	svcList, err := w.svcs.List(labels.Everything())
	if err != nil {
		w.log.Error("list services from cache", "err", err)
		return false, 0
	}
	sliceList, err := w.slices.List(labels.Everything())
	if err != nil {
		w.log.Error("list endpointslices from cache", "err", err)
		return false, 0
	}
	objs, current := w.objectsOf(svcList, sliceList)
	snap, st, skipped, err := w.build(objs, w.preferStatusIPs(current))
	w.skipped.Store(uint64(len(skipped)))
	if err != nil {
		w.rejected.Add(1)
		w.log.Error("build services from the API; previous state keeps serving", "err", err)
		return false, 0
	}
	if msg := skipped.Error(); msg != w.lastSkipped { // log a problem once, not every sync
		for _, e := range skipped {
			w.log.Warn("object left out of the services", "service", e.File, "err", e.Field+": "+e.Message)
		}
		w.lastSkipped = msg
	}
	if w.last == nil || !snap.Diff(w.last).Empty() {
		u := Update{Snapshot: snap, State: st, Diff: snap.Diff(w.last), Skipped: skipped}
		if err := w.cfg.OnUpdate(u); err != nil {
			w.rejected.Add(1)
			w.log.Error("services update refused; previous state keeps serving", "err", err)
			return false, 0
		}
		w.updates.Add(1)
		w.last, w.state = snap, st
	}
	if !w.cfg.WriteStatus {
		return true, 0
	}
	return w.writeStatuses(ctx, current)
}

// objectsOf turns the served Services and their EndpointSlices into service.Objects (reusing
// the object built for an unchanged resourceVersion) and returns the served Services by key.
func (w *Watcher) objectsOf(svcList []*corev1.Service, sliceList []*discoveryv1.EndpointSlice) ([]service.Object, map[string]*corev1.Service) {
	sc := w.cfg.Appliance.Services
	current := make(map[string]*corev1.Service, len(svcList))
	objs := make([]service.Object, 0, len(svcList)+len(sliceList))
	seen := make(map[types.UID]bool, len(svcList)+len(sliceList))
	foreign := map[string]string{}
	for _, s := range svcList {
		if !served(s, sc) {
			continue
		}
		key := s.Namespace + "/" + s.Name
		current[key] = s
		var src any = s
		if c, why := w.claimOf(s); c == claimForeign {
			foreign[key] = why
			src = withoutLoadBalancer(s) // a pure function of the object: the cache by resourceVersion holds
		}
		if o, ok := w.object(src, "Service "+key, s.UID, s.ResourceVersion); ok {
			objs, seen[s.UID] = append(objs, o), true
		}
	}
	w.noteForeign(foreign)
	for _, es := range sliceList {
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" || current[es.Namespace+"/"+name] == nil {
			continue // not a served Service's slice (or not yet)
		}
		if o, ok := w.object(es, "EndpointSlice "+es.Namespace+"/"+es.Name, es.UID, es.ResourceVersion); ok {
			objs, seen[es.UID] = append(objs, o), true
		}
	}
	for uid := range w.objects {
		if !seen[uid] {
			delete(w.objects, uid)
		}
	}
	return objs, current
}

func (w *Watcher) object(obj any, file string, uid types.UID, rv string) (service.Object, bool) {
	if c, ok := w.objects[uid]; ok && uid != "" && rv != "" && c.rv == rv {
		return c.obj, true
	}
	o, err := service.NewObject(obj, file, 0)
	if err != nil {
		w.log.Warn("object left out of the services", "service", file, "err", err)
		return o, false
	}
	if uid != "" && rv != "" {
		w.objects[uid] = cachedObject{rv: rv, obj: o}
	}
	return o, true
}

// preferStatusIPs returns the State to build from: the last accepted one, with the recorded
// status.loadBalancer.ingress IP (of the serviceCIDR's family) of each served LoadBalancer
// Service this cluster controls in place of the local choice, so that every appliance node
// converges on what the API says. A status another controller assigned is never adopted.
func (w *Watcher) preferStatusIPs(current map[string]*corev1.Service) *service.State {
	v4 := w.cfg.Appliance.Network.ServiceCIDR.Addr().Is4()
	st := &service.State{Version: service.StateVersion, Services: make(map[string]service.ServiceState, len(w.state.Services))}
	for k, v := range w.state.Services {
		st.Services[k] = v
	}
	for k, s := range current {
		if c, _ := w.claimOf(s); c != claimOurs {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil || ip.Is4() != v4 {
				continue
			}
			ss := st.Services[k]
			ss.LoadBalancerIP = ip
			st.Services[k] = ss
			break
		}
	}
	return st
}

// build runs the Builder, leaving out every object an error names until the rest builds.
func (w *Watcher) build(objs []service.Object, prev *service.State) (*service.Snapshot, *service.State, config.ErrorList, error) {
	var skipped config.ErrorList
	for range len(objs) + 1 {
		snap, st, err := w.builder.Build(objs, prev)
		if err == nil {
			skipped.Sort()
			return snap, st, skipped, nil
		}
		var el config.ErrorList
		if !errors.As(err, &el) {
			return nil, nil, skipped, fmt.Errorf("build services: %w", err)
		}
		bad := map[string]bool{}
		for _, e := range el {
			bad[e.File] = true
		}
		skipped = append(skipped, el...)
		kept := objs[:0:0]
		for _, o := range objs {
			if bad[o.File] {
				continue
			}
			if o.EndpointSlice != nil && bad["Service "+o.EndpointSlice.Namespace+"/"+o.EndpointSlice.Labels[discoveryv1.LabelServiceName]] {
				continue // its Service is left out
			}
			kept = append(kept, o)
		}
		if len(kept) == len(objs) {
			return nil, nil, skipped, fmt.Errorf("build services: %w", err)
		}
		objs = kept
	}
	return nil, nil, skipped, errors.New("build services: no subset of the objects builds")
}
