package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/bench/tstest"
)

const pool = "198.19.1.0/28"

func applianceConfig(t testing.TB, servicesYAML string) *config.Config {
	t.Helper()
	y := "node: {name: t}\nnetwork:\n  serviceCIDR: 198.19.0.0/24\n  loadBalancerPools:\n    - name: default\n      cidrs: [" + pool + "]\n" +
		"services:\n  kubeconfig: kubeconfig\n" + servicesYAML
	c, err := config.Parse([]byte(y), "lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// recorder keeps every Update handed to OnUpdate.
type recorder struct {
	mu      sync.Mutex
	updates []Update
	times   []time.Time
	fail    error // returned by OnUpdate while set
}

func (r *recorder) onUpdate(u Update) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.updates = append(r.updates, u)
	r.times = append(r.times, time.Now())
	return nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *recorder) last() (Update, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.updates) == 0 {
		return Update{}, 0
	}
	return r.updates[len(r.updates)-1], len(r.updates)
}

// waitTimeout bounds every wait for the watcher: generous, since the machine may be busy.
const waitTimeout = 15 * time.Second

// waitSnapshot waits for an update whose snapshot satisfies cond and returns it.
func waitSnapshot(t *testing.T, r *recorder, what string, cond func(*service.Snapshot) bool) *service.Snapshot {
	t.Helper()
	var snap *service.Snapshot
	tstest.EventuallyTrue(t, waitTimeout, what, func() bool {
		u, n := r.last()
		if n == 0 || !cond(u.Snapshot) {
			return false
		}
		snap = u.Snapshot
		return true
	})
	return snap
}

func startWatcher(t *testing.T, client *fake.Clientset, cfg *config.Config, mod func(*Config)) (*Watcher, *recorder) {
	t.Helper()
	r := &recorder{}
	wc := DefaultConfig()
	wc.Client, wc.Appliance, wc.OnUpdate = client, cfg, r.onUpdate
	wc.MinSyncInterval = 20 * time.Millisecond
	wc.RetryInterval = 50 * time.Millisecond
	wc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mod != nil {
		mod(&wc)
	}
	w, err := New(wc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && w.Synced() {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("watcher did not stop within 15 s")
		}
	})
	return w, r
}

type svcOpt func(*corev1.Service)

func withClass(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func withOwner(cluster string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[AnnotationOwner] = cluster
	}
}
func withStatusIP(ip string) svcOpt {
	return func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}} }
}

// newService builds a Service as kube-apiserver stores it: clusterIP and nodePorts allocated.
func newService(name string, typ corev1.ServiceType, clusterIP string, port, nodePort int32, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type: typ, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []corev1.ServicePort{{Name: "http", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}},
		},
	}
	if clusterIP == "" {
		s.Spec.ClusterIPs = nil
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func newSlice(name, svc string, addrs ...string) *discoveryv1.EndpointSlice {
	port, pname, proto := int32(8080), "http", corev1.ProtocolTCP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return es
}

func endpointsOf(s *service.Service) []string {
	if s == nil || len(s.Ports) == 0 {
		return nil
	}
	var out []string
	for _, e := range s.Ports[0].Endpoints {
		out = append(out, netip.AddrPortFrom(e.Addr, e.Port).String())
	}
	return out
}

func TestWatchAddChangeDelete(t *testing.T) {
	client := newAPI(t)
	cfg := applianceConfig(t, "")
	_, r := startWatcher(t, client, cfg, nil)
	ctx := t.Context()
	svcs := client.CoreV1().Services("default")
	eps := client.DiscoveryV1().EndpointSlices("default")
	// The first state comes once the caches synced, and is empty.
	waitSnapshot(t, r, "first (empty) state", func(s *service.Snapshot) bool { return len(s.Services) == 0 })

	steps := []struct {
		name  string
		do    func() error
		check func(s *service.Snapshot) bool
	}{
		{"service added keeps apiserver clusterIP and nodePort verbatim",
			func() error {
				// nodePort 32999 is outside the appliance's nodePortRange: the apiserver's value wins.
				_, err := svcs.Create(ctx, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 32999), metav1.CreateOptions{})
				return err
			},
			func(s *service.Snapshot) bool {
				w := s.Lookup("default/web")
				return w != nil && w.ClusterIPs[0] == netip.MustParseAddr("198.19.0.10") && w.Ports[0].NodePort == 32999 &&
					netip.MustParsePrefix(pool).Contains(w.ExternalIP) && len(w.Ports[0].Endpoints) == 0
			}},
		{"endpointslice added gives the endpoints",
			func() error {
				_, err := eps.Create(ctx, newSlice("web-1", "web", "198.18.1.10", "198.18.1.11"), metav1.CreateOptions{})
				return err
			},
			func(s *service.Snapshot) bool {
				return slices.Equal(endpointsOf(s.Lookup("default/web")), []string{"198.18.1.10:8080", "198.18.1.11:8080"})
			}},
		{"second endpointslice adds its endpoints",
			func() error {
				_, err := eps.Create(ctx, newSlice("web-2", "web", "198.18.1.12"), metav1.CreateOptions{})
				return err
			},
			func(s *service.Snapshot) bool {
				return slices.Equal(endpointsOf(s.Lookup("default/web")), []string{"198.18.1.10:8080", "198.18.1.11:8080", "198.18.1.12:8080"})
			}},
		{"endpoint removed from a slice",
			func() error {
				_, err := eps.Update(ctx, newSlice("web-1", "web", "198.18.1.11"), metav1.UpdateOptions{})
				return err
			},
			func(s *service.Snapshot) bool {
				return slices.Equal(endpointsOf(s.Lookup("default/web")), []string{"198.18.1.11:8080", "198.18.1.12:8080"})
			}},
		{"service port changed",
			func() error {
				cur, err := svcs.Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur = cur.DeepCopy()
				cur.Spec.Ports[0].Port = 8443
				_, err = svcs.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			},
			func(s *service.Snapshot) bool {
				w := s.Lookup("default/web")
				return w != nil && w.Ports[0].Port == 8443 && w.Ports[0].NodePort == 32999 && len(w.Ports[0].Endpoints) == 2 &&
					s.Frontends[service.Frontend{Addr: netip.MustParseAddr("198.19.0.10"), Port: 8443, Protocol: service.TCP}] != 0
			}},
		{"endpointslice deleted",
			func() error { return eps.Delete(ctx, "web-2", metav1.DeleteOptions{}) },
			func(s *service.Snapshot) bool {
				return slices.Equal(endpointsOf(s.Lookup("default/web")), []string{"198.18.1.11:8080"})
			}},
		{"service deleted",
			func() error { return svcs.Delete(ctx, "web", metav1.DeleteOptions{}) },
			func(s *service.Snapshot) bool {
				return len(s.Services) == 0 && len(s.Frontends) == 0 && len(s.NodePorts) == 0
			}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		waitSnapshot(t, r, st.name, st.check)
	}
}

func statusWrites(client *fake.Clientset) []*corev1.Service {
	var out []*corev1.Service
	for _, a := range client.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok && a.GetSubresource() == "status" && a.GetResource().Resource == "services" {
			out = append(out, u.GetObject().(*corev1.Service))
		}
	}
	return out
}

func TestStatusWriteBack(t *testing.T) {
	tests := []struct {
		name      string
		svc       *corev1.Service
		pools     bool   // false: a config without pools
		wantIP    string // the external IP expected in the snapshot and status; "" = pending
		wantWrite bool
	}{
		{name: "assigned external IP is written to status.loadBalancer.ingress",
			svc: newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080), pools: true, wantWrite: true},
		{name: "external IP this cluster recorded, in a pool, is kept without a write",
			svc:   newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withStatusIP("198.19.1.9"), withOwner(UserAgent)),
			pools: true, wantIP: "198.19.1.9"},
		{name: "status IP this cluster recorded, outside every pool, is replaced",
			svc:   newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withStatusIP("198.18.5.5"), withOwner(UserAgent)),
			pools: true, wantWrite: true},
		{name: "no pool leaves the service pending and clears this cluster's stale status",
			svc:   newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withStatusIP("198.18.5.5"), withOwner(UserAgent)),
			pools: false, wantWrite: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newAPI(t, tc.svc)
			cfg := applianceConfig(t, "")
			if !tc.pools {
				cfg.Network.LoadBalancerPools = nil
			}
			w, r := startWatcher(t, client, cfg, nil)
			snap := waitSnapshot(t, r, "the service", func(s *service.Snapshot) bool { return s.Lookup("default/web") != nil })
			got := snap.Lookup("default/web")
			switch {
			case !tc.pools:
				if !got.Pending || got.ExternalIP.IsValid() {
					t.Fatalf("external IP %v pending %v, want pending", got.ExternalIP, got.Pending)
				}
			case tc.wantIP != "":
				if got.ExternalIP.String() != tc.wantIP {
					t.Fatalf("external IP %v, want %s", got.ExternalIP, tc.wantIP)
				}
			default:
				if !netip.MustParsePrefix(pool).Contains(got.ExternalIP) {
					t.Fatalf("external IP %v not from pool %s", got.ExternalIP, pool)
				}
			}
			want := []string{}
			if got.ExternalIP.IsValid() {
				want = []string{got.ExternalIP.String()}
			}
			ingressIPs := func(s *corev1.Service) []string {
				out := []string{}
				for _, i := range s.Status.LoadBalancer.Ingress {
					out = append(out, i.IP)
				}
				return out
			}
			// The API object ends up saying what the snapshot serves.
			tstest.EventuallyTrue(t, waitTimeout, "status in the API", func() bool {
				cur, err := client.CoreV1().Services("default").Get(t.Context(), "web", metav1.GetOptions{})
				return err == nil && slices.Equal(ingressIPs(cur), want)
			})
			// Another change makes another sync: the status must not be written again.
			if _, err := client.CoreV1().Services("default").Create(t.Context(),
				newService("other", corev1.ServiceTypeClusterIP, "198.19.0.11", 80, 0), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, r, "the second service", func(s *service.Snapshot) bool { return s.Lookup("default/other") != nil })
			tstest.EventuallyTrue(t, waitTimeout, "the sync of the second service to finish", func() bool { s := w.Stats(); return s.SyncsDone == s.Syncs })
			writes := statusWrites(client)
			if !tc.wantWrite {
				if len(writes) != 0 {
					t.Fatalf("%d status writes, want none", len(writes))
				}
				return
			}
			if len(writes) != 1 {
				t.Fatalf("%d status writes, want exactly 1", len(writes))
			}
			if !slices.Equal(ingressIPs(writes[0]), want) {
				t.Errorf("written ingress %v, want %v", ingressIPs(writes[0]), want)
			}
			if len(want) == 1 {
				if m := writes[0].Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
					t.Errorf("ipMode %v, want VIP", m)
				}
			}
			if s := w.Stats(); s.StatusWrites != 1 || s.StatusErrors != 0 {
				t.Errorf("stats %+v", s)
			}
			cur, err := client.CoreV1().Services("default").Get(t.Context(), "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := cur.Annotations[AnnotationOwner]; got != UserAgent {
				t.Errorf("ownership record %q, want %q (the default cluster name)", got, UserAgent)
			}
		})
	}
}

func TestLoadBalancerClass(t *testing.T) {
	objs := []runtime.Object{
		newService("mine", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withClass("example.com/edge")),
		newService("theirs", corev1.ServiceTypeLoadBalancer, "198.19.0.11", 80, 30081, withClass("example.com/cloud")),
		newService("unclassed-lb", corev1.ServiceTypeLoadBalancer, "198.19.0.12", 80, 30082),
		newService("plain", corev1.ServiceTypeClusterIP, "198.19.0.13", 80, 0),
		newSlice("theirs-1", "theirs", "198.18.1.20"),
	}
	tests := []struct {
		name     string
		services string
		want     []string
	}{
		{"no class configured serves every unclassed service", "", []string{"default/plain", "default/unclassed-lb"}},
		{"a class alone serves only that class", "  loadBalancerClass: example.com/edge\n", []string{"default/mine"}},
		{"a class with serveUnclassed serves both", "  loadBalancerClass: example.com/edge\n  serveUnclassed: true\n",
			[]string{"default/mine", "default/plain", "default/unclassed-lb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newAPI(t, objs...)
			_, r := startWatcher(t, client, applianceConfig(t, tc.services), nil)
			snap := waitSnapshot(t, r, "first state", func(*service.Snapshot) bool { return true })
			var got []string
			for _, s := range snap.Services {
				got = append(got, s.Key())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("served %v, want %v", got, tc.want)
			}
			// Services of another class never get a status from this appliance.
			for _, s := range statusWrites(client) {
				if s.Name == "theirs" {
					t.Errorf("wrote the status of another class's service")
				}
			}
		})
	}
}

func TestInvalidObjectsAreSkipped(t *testing.T) {
	client := newAPI(t,
		newService("good", corev1.ServiceTypeNodePort, "198.19.0.10", 80, 30080),
		newService("no-ip", corev1.ServiceTypeClusterIP, "", 80, 0),
		newService("web-dup", corev1.ServiceTypeNodePort, "198.19.0.11", 81, 30080),
		newSlice("orphan-1", "nothing", "198.18.1.10"),
	)
	_, r := startWatcher(t, client, applianceConfig(t, ""), nil)
	waitSnapshot(t, r, "first state", func(*service.Snapshot) bool { return true })
	u, _ := r.last()
	var got []string
	for _, s := range u.Snapshot.Services {
		got = append(got, s.Key())
	}
	if !slices.Equal(got, []string{"default/good"}) {
		t.Errorf("served %v, want only default/good", got)
	}
	msg := u.Skipped.Error()
	for _, want := range []string{
		"Service default/no-ip: spec.clusterIP: Required value",
		"Service default/web-dup: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated (to Service default/good)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("skipped:\n%s\nwant it to contain %q", msg, want)
		}
	}
}

// outage makes the fake API server unreachable for lists and watches on demand, and ends the
// watches that are open when it goes down, as a dropped connection does.
type outage struct {
	mu        sync.Mutex
	down      bool
	open      []watch.Interface
	failed    atomic.Int64 // list/watch requests refused while down
	listCalls atomic.Int64
}

func (o *outage) install(client *fake.Clientset) {
	unavailable := errors.New("dial tcp 198.18.0.1:6443: i/o timeout (test outage)")
	client.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		o.listCalls.Add(1)
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.down {
			o.failed.Add(1)
			return true, nil, unavailable
		}
		return false, nil, nil
	})
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.down {
			o.failed.Add(1)
			return true, nil, unavailable
		}
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		o.open = append(o.open, w)
		return true, w, nil
	})
	client.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.down {
			return true, nil, unavailable
		}
		return false, nil, nil
	})
}

func (o *outage) set(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
	if down {
		for _, w := range o.open {
			w.Stop()
		}
		o.open = nil
	}
}

func TestAPIOutageKeepsLastStateAndResyncs(t *testing.T) {
	client := newAPI(t,
		newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080),
		newSlice("web-1", "web", "198.18.1.10", "198.18.1.11"),
		newService("gone", corev1.ServiceTypeClusterIP, "198.19.0.11", 80, 0),
	)
	var o outage
	o.install(client)
	w, r := startWatcher(t, client, applianceConfig(t, ""), nil)
	before := waitSnapshot(t, r, "first state", func(s *service.Snapshot) bool {
		return len(s.Services) == 2 && len(endpointsOf(s.Lookup("default/web"))) == 2
	})
	vip := before.Lookup("default/web").ExternalIP
	tstest.EventuallyTrue(t, waitTimeout, "status write", func() bool { return w.Stats().StatusWrites == 1 })
	_, updatesBefore := r.last()

	o.set(true)
	// Changes made while the appliance cannot see the API server (written to the store directly).
	tr := client.Tracker()
	gvrSvc := corev1.SchemeGroupVersion.WithResource("services")
	gvrSlice := discoveryv1.SchemeGroupVersion.WithResource("endpointslices")
	if err := tr.Update(gvrSlice, newSlice("web-1", "web", "198.18.1.12"), "default"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Delete(gvrSvc, "default", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Create(gvrSvc, newService("new", corev1.ServiceTypeClusterIP, "198.19.0.12", 80, 0), "default"); err != nil {
		t.Fatal(err)
	}
	// The reflectors notice (their watches ended) and fail to relist at least twice...
	tstest.EventuallyTrue(t, waitTimeout, "failed relists during the outage", func() bool { return o.failed.Load() >= 4 })
	// ...and nothing was withdrawn meanwhile.
	u, n := r.last()
	if n != updatesBefore || u.Snapshot != before {
		t.Fatalf("state changed during the outage: %d updates, was %d", n, updatesBefore)
	}
	if got := u.Snapshot.Lookup("default/web").ExternalIP; got != vip {
		t.Fatalf("VIP %v during the outage, was %v", got, vip)
	}

	o.set(false)
	after := waitSnapshot(t, r, "resync after the outage", func(s *service.Snapshot) bool {
		return s.Lookup("default/gone") == nil && s.Lookup("default/new") != nil &&
			slices.Equal(endpointsOf(s.Lookup("default/web")), []string{"198.18.1.12:8080"})
	})
	if got := after.Lookup("default/web").ExternalIP; got != vip {
		t.Errorf("VIP moved from %v to %v across the outage", vip, got)
	}
	if s := w.Stats(); s.StatusWrites != 1 {
		t.Errorf("status written %d times, want once (the VIP did not change)", s.StatusWrites)
	}
}

func TestMinSyncIntervalSpacesUpdates(t *testing.T) {
	client := newAPI(t)
	const interval = 150 * time.Millisecond
	_, r := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) { c.MinSyncInterval = interval })
	waitSnapshot(t, r, "first state", func(*service.Snapshot) bool { return true })
	for i := range 4 {
		name := fmt.Sprintf("s%d", i)
		if _, err := client.CoreV1().Services("default").Create(t.Context(),
			newService(name, corev1.ServiceTypeClusterIP, fmt.Sprintf("198.19.0.%d", 10+i), 80, 0), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, r, name, func(s *service.Snapshot) bool { return s.Lookup("default/"+name) != nil })
	}
	r.mu.Lock()
	times := slices.Clone(r.times)
	r.mu.Unlock()
	for i := 1; i < len(times); i++ {
		// Each update starts at least MinSyncInterval after the previous one started; allow
		// half of it for differences in build time on a noisy machine.
		if gap := times[i].Sub(times[i-1]); gap < interval/2 {
			t.Errorf("updates %d and %d only %v apart, MinSyncInterval %v", i-1, i, gap, interval)
		}
	}
}

func TestRejectedUpdateIsRetriedAndWritesNoStatus(t *testing.T) {
	client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080))
	r0 := &recorder{fail: errors.New("data plane refused")}
	calls := atomic.Int64{}
	w, r := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) {
		c.OnUpdate = func(u Update) error { calls.Add(1); return r0.onUpdate(u) }
	})
	_ = r
	tstest.EventuallyTrue(t, waitTimeout, "retried updates", func() bool { return calls.Load() >= 3 })
	if n := len(statusWrites(client)); n != 0 {
		t.Fatalf("%d status writes for a refused state", n)
	}
	if w.Stats().Rejected < 2 {
		t.Errorf("stats %+v", w.Stats())
	}
	r0.setFail(nil)
	tstest.EventuallyTrue(t, waitTimeout, "accepted update", func() bool { _, n := r0.last(); return n == 1 })
	tstest.EventuallyTrue(t, waitTimeout, "status write", func() bool { return len(statusWrites(client)) == 1 })
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no client", Config{Appliance: &config.Config{}, OnUpdate: func(Update) error { return nil }}},
		{"no appliance config", Config{Client: fake.NewClientset(), OnUpdate: func(Update) error { return nil }}},
		{"no callback", Config{Client: fake.NewClientset(), Appliance: &config.Config{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Error("New accepted an incomplete config")
			}
		})
	}
}
