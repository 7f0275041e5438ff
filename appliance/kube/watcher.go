package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
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
	// status.loadBalancer.ingress (and clears it for a pending Service). Default true.
	WriteStatus bool
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
		MinSyncInterval: 100 * time.Millisecond,
		RetryInterval:   time.Second,
		WriteStatus:     true,
		StatusTimeout:   5 * time.Second,
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
	// StatusWrites is the number of successful UpdateStatus calls.
	StatusWrites uint64
	// StatusErrors is the number of failed UpdateStatus calls.
	StatusErrors uint64
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

	synced                                                            atomic.Bool
	syncs, syncsDone, updates, rejected, writes, writeErrors, skipped atomic.Uint64
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
	}, nil
}

// Stats returns the Watcher's counters.
func (w *Watcher) Stats() Stats {
	return Stats{Syncs: w.syncs.Load(), SyncsDone: w.syncsDone.Load(), Updates: w.updates.Load(), Rejected: w.rejected.Load(),
		StatusWrites: w.writes.Load(), StatusErrors: w.writeErrors.Load(), Skipped: w.skipped.Load()}
}

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
		if !w.sync(ctx) {
			if retry != nil {
				retry.Stop()
			}
			retry = time.AfterFunc(w.cfg.RetryInterval, w.trigger)
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

// sync builds and hands over the current state and writes statuses; false asks for a retry.
func (w *Watcher) sync(ctx context.Context) bool {
	w.syncs.Add(1)
	defer w.syncsDone.Add(1)
	svcList, err := w.svcs.List(labels.Everything())
	if err != nil {
		w.log.Error("list services from cache", "err", err)
		return false
	}
	sliceList, err := w.slices.List(labels.Everything())
	if err != nil {
		w.log.Error("list endpointslices from cache", "err", err)
		return false
	}
	objs, current := w.objectsOf(svcList, sliceList)
	snap, st, skipped, err := w.build(objs, w.preferStatusIPs(current))
	w.skipped.Store(uint64(len(skipped)))
	if err != nil {
		w.rejected.Add(1)
		w.log.Error("build services from the API; previous state keeps serving", "err", err)
		return false
	}
	if msg := skipped.Error(); msg != w.lastSkipped { // log a problem once, not every sync
		for _, e := range skipped {
			w.log.Warn("object left out of the services", "service", e.File, "err", e.Field+": "+e.Message)
		}
		w.lastSkipped = msg
	}
	ok := true
	if w.last == nil || !snap.Diff(w.last).Empty() {
		u := Update{Snapshot: snap, State: st, Diff: snap.Diff(w.last), Skipped: skipped}
		if err := w.cfg.OnUpdate(u); err != nil {
			w.rejected.Add(1)
			w.log.Error("services update refused; previous state keeps serving", "err", err)
			return false
		}
		w.updates.Add(1)
		w.last, w.state = snap, st
	}
	if w.cfg.WriteStatus {
		ok = w.writeStatuses(ctx, current)
	}
	return ok
}

// objectsOf turns the served Services and their EndpointSlices into service.Objects (reusing
// the object built for an unchanged resourceVersion) and returns the served Services by key.
func (w *Watcher) objectsOf(svcList []*corev1.Service, sliceList []*discoveryv1.EndpointSlice) ([]service.Object, map[string]*corev1.Service) {
	sc := w.cfg.Appliance.Services
	current := make(map[string]*corev1.Service, len(svcList))
	objs := make([]service.Object, 0, len(svcList)+len(sliceList))
	seen := make(map[types.UID]bool, len(svcList)+len(sliceList))
	for _, s := range svcList {
		if !served(s, sc) {
			continue
		}
		current[s.Namespace+"/"+s.Name] = s
		if o, ok := w.object(s, "Service "+s.Namespace+"/"+s.Name, s.UID, s.ResourceVersion); ok {
			objs, seen[s.UID] = append(objs, o), true
		}
	}
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

// preferStatusIPs returns the State to build from: the last accepted one, with each served
// LoadBalancer Service's recorded status.loadBalancer.ingress IP (of the serviceCIDR's family)
// in place of the local choice, so that every appliance node converges on what the API says.
func (w *Watcher) preferStatusIPs(current map[string]*corev1.Service) *service.State {
	v4 := w.cfg.Appliance.Network.ServiceCIDR.Addr().Is4()
	st := &service.State{Version: service.StateVersion, Services: make(map[string]service.ServiceState, len(w.state.Services))}
	for k, v := range w.state.Services {
		st.Services[k] = v
	}
	for k, s := range current {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
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

// writeStatuses makes status.loadBalancer.ingress of every served LoadBalancer Service say what
// the last accepted snapshot assigned; false if a write failed.
func (w *Watcher) writeStatuses(ctx context.Context, current map[string]*corev1.Service) bool {
	if w.last == nil {
		return true
	}
	ok := true
	for _, svc := range w.last.Services {
		if svc.Type != service.TypeLoadBalancer {
			continue
		}
		obj := current[svc.Key()]
		if obj == nil || obj.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		var want []corev1.LoadBalancerIngress
		if svc.ExternalIP.IsValid() {
			mode := corev1.LoadBalancerIPModeVIP
			want = []corev1.LoadBalancerIngress{{IP: svc.ExternalIP.String(), IPMode: &mode}}
		}
		if sameIngress(obj.Status.LoadBalancer.Ingress, want) {
			continue
		}
		upd := obj.DeepCopy()
		upd.Status.LoadBalancer.Ingress = want
		rctx, cancel := context.WithTimeout(ctx, w.cfg.StatusTimeout)
		_, err := w.cfg.Client.CoreV1().Services(obj.Namespace).UpdateStatus(rctx, upd, metav1.UpdateOptions{})
		cancel()
		vip := "<pending>"
		if svc.ExternalIP.IsValid() {
			vip = svc.ExternalIP.String()
		}
		if err != nil {
			w.writeErrors.Add(1)
			w.log.Warn("write status.loadBalancer.ingress", "service", svc.Key(), "vip", vip, "err", err)
			ok = false
			continue
		}
		w.writes.Add(1)
		w.log.Info("wrote status.loadBalancer.ingress", "service", svc.Key(), "vip", vip)
	}
	return ok
}

// sameIngress compares the IPs of two ingress lists (hostnames and ports are not ours to keep).
func sameIngress(have, want []corev1.LoadBalancerIngress) bool {
	ips := func(l []corev1.LoadBalancerIngress) []string {
		var out []string
		for _, i := range l {
			out = append(out, i.IP)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ips(have), ips(want))
}
