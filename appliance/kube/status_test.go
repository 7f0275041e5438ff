package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/bench/tstest"
)

var servicesGVR = corev1.SchemeGroupVersion.WithResource("services")

// newAPI returns a fake clientset holding objs that behaves like kube-apiserver where the status
// logic depends on it (the plain fake does not): every Service write gets a new
// resourceVersion, an update carrying a stale one fails with a Conflict, an update of the status
// subresource changes only the status and an update of the Service keeps the stored status.
func newAPI(t testing.TB, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	tr := client.Tracker()
	var mu sync.Mutex
	var rv int64
	stamp := func(s *corev1.Service) { rv++; s.ResourceVersion = strconv.FormatInt(rv, 10) }
	client.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		s := a.(k8stesting.CreateAction).GetObject().(*corev1.Service).DeepCopy()
		stamp(s)
		if err := tr.Create(servicesGVR, s, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, s, nil
	})
	client.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		in := a.(k8stesting.UpdateAction).GetObject().(*corev1.Service)
		stored, err := tr.Get(servicesGVR, a.GetNamespace(), in.Name)
		if err != nil {
			return true, nil, err
		}
		cur := stored.(*corev1.Service)
		if in.ResourceVersion != "" && in.ResourceVersion != cur.ResourceVersion {
			return true, nil, apierrors.NewConflict(servicesGVR.GroupResource(), in.Name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		var out *corev1.Service
		if a.GetSubresource() == "status" {
			out = cur.DeepCopy()
			out.Status = *in.Status.DeepCopy()
		} else {
			out = in.DeepCopy()
			out.Status = cur.Status
		}
		stamp(out)
		if err := tr.Update(servicesGVR, out, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, out, nil
	})
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Service:
			if _, err := client.CoreV1().Services(v.Namespace).Create(t.Context(), v, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case *discoveryv1.EndpointSlice:
			if _, err := client.DiscoveryV1().EndpointSlices(v.Namespace).Create(t.Context(), v, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("newAPI: unsupported %T", o)
		}
	}
	client.ClearActions()
	return client
}

// logBuffer is a slog destination the test can search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// serviceWrites counts the update actions on Services (ownership records and statuses) whose
// object satisfies match.
func serviceWrites(client *fake.Clientset, status bool, match func(*corev1.Service) bool) int {
	n := 0
	for _, a := range client.Actions() {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || a.GetVerb() != "update" || a.GetResource().Resource != "services" || (a.GetSubresource() == "status") != status {
			continue
		}
		if match == nil || match(u.GetObject().(*corev1.Service)) {
			n++
		}
	}
	return n
}

func getService(t *testing.T, client *fake.Clientset, name string) *corev1.Service {
	t.Helper()
	s, err := client.CoreV1().Services("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func firstIngressIP(s *corev1.Service) string {
	if len(s.Status.LoadBalancer.Ingress) == 0 {
		return ""
	}
	return s.Status.LoadBalancer.Ingress[0].IP
}

// TestForeignStatusIsLeftAlone: a LoadBalancer Service another controller assigned is neither
// adopted nor overwritten nor served as a VIP, unless it has this appliance's
// loadBalancerClass. Before ownership records the first two cases were adopted (an IP in the
// pool) or overwritten (any other).
func TestForeignStatusIsLeftAlone(t *testing.T) {
	const class = "example.com/edge"
	hostname := func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.cloud.example"}}
	}
	tests := []struct {
		name      string
		services  string
		svc       *corev1.Service
		foreign   bool   // left alone
		wantIP    string // for a Service this appliance controls: the IP it ends up with; "" = any from the pool
		wantClaim bool   // an ownership record is written
	}{
		{name: "unclassed, status IP in the pool without our record (MetalLB with an overlapping pool)",
			svc:     newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withStatusIP("198.19.1.9")),
			foreign: true},
		{name: "unclassed, status IP outside the pools without our record",
			svc:     newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withStatusIP("198.18.5.5")),
			foreign: true},
		{name: "unclassed, hostname ingress of a cloud controller",
			svc:     newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, hostname),
			foreign: true},
		{name: "unclassed, claimed by another appliance cluster whose status is not written yet",
			svc:     newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withOwner("other")),
			foreign: true},
		{name: "our class, foreign status IP in the pool: adopted, the record added",
			services: "  loadBalancerClass: " + class + "\n",
			svc:      newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withClass(class), withStatusIP("198.19.1.9")),
			wantIP:   "198.19.1.9", wantClaim: true},
		{name: "our class, another appliance cluster's record and status outside the pools: overwritten",
			services: "  loadBalancerClass: " + class + "\n",
			svc: newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withClass(class),
				withStatusIP("198.18.5.5"), withOwner("other")),
			wantClaim: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newAPI(t, tc.svc, newSlice("web-1", "web", "198.18.1.10"))
			var logs logBuffer
			w, r := startWatcher(t, client, applianceConfig(t, tc.services), func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			snap := waitSnapshot(t, r, "the service", func(s *service.Snapshot) bool { return s.Lookup("default/web") != nil })
			got := snap.Lookup("default/web")
			if !tc.foreign {
				tstest.EventuallyTrue(t, waitTimeout, "our status and record", func() bool {
					cur := getService(t, client, "web")
					ip := firstIngressIP(cur)
					return cur.Annotations[AnnotationOwner] == class && ip == got.ExternalIP.String() &&
						(tc.wantIP == "" || ip == tc.wantIP) && netip.MustParsePrefix(pool).Contains(got.ExternalIP)
				})
				if n := serviceWrites(client, false, nil); tc.wantClaim && n != 1 {
					t.Errorf("%d ownership records written, want 1", n)
				}
				return
			}
			// Foreign: served for its clusterIP and nodePort, never as a VIP.
			if got.Type != service.TypeNodePort || got.ExternalIP.IsValid() || got.Ports[0].NodePort != 30080 {
				t.Errorf("served as %v with external IP %v, want a NodePort Service without one", got.Type, got.ExternalIP)
			}
			for f := range snap.Frontends {
				if f.Addr != netip.MustParseAddr("198.19.0.10") {
					t.Errorf("frontend %v served for a foreign Service", f)
				}
			}
			// More syncs (another Service) change nothing and log nothing more.
			if _, err := client.CoreV1().Services("default").Create(t.Context(),
				newService("other", corev1.ServiceTypeClusterIP, "198.19.0.11", 80, 0), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, r, "the second service", func(s *service.Snapshot) bool { return s.Lookup("default/other") != nil })
			tstest.EventuallyTrue(t, waitTimeout, "the sync to finish", func() bool { s := w.Stats(); return s.SyncsDone == s.Syncs })
			if n := serviceWrites(client, true, nil) + serviceWrites(client, false, nil); n != 0 {
				t.Errorf("%d writes to a Service another controller owns", n)
			}
			if s := w.Stats(); s.Foreign != 1 {
				t.Errorf("Stats.Foreign %d, want 1", s.Foreign)
			}
			if n := logs.count("left to another controller"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs.buf.String())
			}
		})
	}
}

// maxWrites is the most status writes of one Service, the first included, that statusBackoff
// allows within d of the first: the n-th waits min(base*2^(n-2), maxDelay) after the (n-1)-th.
func maxWrites(d, base, maxDelay time.Duration) int {
	n, at := 1, time.Duration(0)
	for gap := base; ; gap = min(2*gap, maxDelay) {
		if at += gap; at > d {
			return n
		}
		n++
	}
}

// foreignWriter rewrites the status of default/web to ip after every change that says
// otherwise, as a second controller that ignores ownership records does, until ctx ends.
func foreignWriter(ctx context.Context, t *testing.T, client *fake.Clientset, ip string) *atomic.Int64 {
	var writes atomic.Int64
	wi, err := client.CoreV1().Services("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer wi.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-wi.ResultChan():
				if !ok {
					return
				}
				s, ok := ev.Object.(*corev1.Service)
				if !ok || s.Name != "web" || firstIngressIP(s) == ip {
					continue
				}
				// The event's object may be stale already: write the latest, as a controller does.
				cur, err := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
				if err != nil || firstIngressIP(cur) == ip {
					continue
				}
				cur.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
				if _, err := client.CoreV1().Services("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil {
					writes.Add(1)
				}
			}
		}
	}()
	return &writes
}

// TestSecondWriterIsBounded: a second controller that rewrites the status of a Service this
// cluster owns after every write cannot make it write in a loop: over a window of a fixed
// length its writes stay within maxWrites (about 10 for the durations below), and its
// UpdateStatus calls within (statusConflictRetries+1) times that; without the backoff it wrote
// once per sync, about 50 times.
func TestSecondWriterIsBounded(t *testing.T) {
	const (
		class      = "example.com/edge"
		foreignIP  = "198.18.200.1"
		base       = 50 * time.Millisecond
		maxDelay   = 200 * time.Millisecond
		fightTime  = 1500 * time.Millisecond
		ownerOfWeb = "edge-cluster"
	)
	tests := []struct {
		name     string
		services string
		svc      *corev1.Service
	}{
		{"unclassed Service this cluster recorded", "",
			newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080)},
		{"Service of our loadBalancerClass", "  loadBalancerClass: " + class + "\n",
			newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080, withClass(class))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newAPI(t, tc.svc)
			first := time.Now() // before the first write: the bound below is generous
			w, _ := startWatcher(t, client, applianceConfig(t, tc.services), func(c *Config) {
				c.ClusterName, c.StatusBackoff, c.StatusBackoffMax = ownerOfWeb, base, maxDelay
			})
			ours := func(s *corev1.Service) bool { ip := firstIngressIP(s); return ip != "" && ip != foreignIP }
			tstest.EventuallyTrue(t, waitTimeout, "the first status write", func() bool {
				cur := getService(t, client, "web")
				return ours(cur) && cur.Annotations[AnnotationOwner] == ownerOfWeb
			})
			ctx, stop := context.WithCancel(t.Context())
			theirs := foreignWriter(ctx, t, client, foreignIP)
			time.Sleep(fightTime)
			stop()
			elapsed := time.Since(first)
			bound := maxWrites(elapsed, base, maxDelay)
			calls := serviceWrites(client, true, ours) // UpdateStatus calls, conflicts included
			s := w.Stats()
			t.Logf("%v: %d writes (%d UpdateStatus calls, %d conflicts) against %d foreign writes; bound %d",
				elapsed, s.StatusWrites, calls, s.StatusConflicts, theirs.Load(), bound)
			if s.StatusWrites > uint64(bound) {
				t.Errorf("%d status writes in %v, want at most %d", s.StatusWrites, elapsed, bound)
			}
			if calls > bound*(statusConflictRetries+1) {
				t.Errorf("%d UpdateStatus calls in %v, want at most %d", calls, elapsed, bound*(statusConflictRetries+1))
			}
			if s.StatusWrites < 2 || theirs.Load() < 1 {
				t.Errorf("no contest: %d writes of ours, %d foreign", s.StatusWrites, theirs.Load())
			}
			if n := serviceWrites(client, false, nil); n != 1 {
				t.Errorf("%d ownership records written, want 1", n)
			}
			// The second writer gone, the owner's status comes back.
			tstest.EventuallyTrue(t, waitTimeout, "our status back", func() bool { return ours(getService(t, client, "web")) })
		})
	}
}

// TestTwoApplianceClusters: two appliance clusters serving unclassed Services of one Kubernetes
// cluster agree on one owner for a new Service: one records ownership and writes the status,
// the other leaves the Service alone for good.
func TestTwoApplianceClusters(t *testing.T) {
	client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080))
	cfgB := applianceConfig(t, "")
	cfgB.Network.LoadBalancerPools[0].CIDRs = []netip.Prefix{netip.MustParsePrefix("198.19.2.0/28")}
	wa, ra := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) { c.ClusterName = "a" })
	wb, rb := startWatcher(t, client, cfgB, func(c *Config) { c.ClusterName = "b" })
	var owner string
	tstest.EventuallyTrue(t, waitTimeout, "an owner with a status", func() bool {
		cur := getService(t, client, "web")
		owner = cur.Annotations[AnnotationOwner]
		return owner != "" && firstIngressIP(cur) != ""
	})
	winner, loser, lr := wa, wb, rb
	wr := ra
	if owner == "b" {
		winner, loser, lr, wr = wb, wa, ra, rb
	}
	ip := firstIngressIP(getService(t, client, "web"))
	waitSnapshot(t, wr, "the owner serving the status IP", func(s *service.Snapshot) bool {
		w := s.Lookup("default/web")
		return w != nil && w.ExternalIP.String() == ip
	})
	waitSnapshot(t, lr, "the other cluster not serving it", func(s *service.Snapshot) bool {
		w := s.Lookup("default/web")
		return w != nil && !w.ExternalIP.IsValid() && w.Type == service.TypeNodePort
	})
	tstest.Never(t, 500*time.Millisecond, 20*time.Millisecond, "the status or its owner changed", func() bool {
		cur := getService(t, client, "web")
		return firstIngressIP(cur) != ip || cur.Annotations[AnnotationOwner] != owner
	})
	if s := winner.Stats(); s.StatusWrites != 1 {
		t.Errorf("owner %s: %d status writes, want 1", owner, s.StatusWrites)
	}
	if s := loser.Stats(); s.StatusWrites != 0 || s.Foreign != 1 {
		t.Errorf("other cluster: stats %+v, want no writes and one foreign Service", s)
	}
	if n := serviceWrites(client, true, nil); n != 1 {
		t.Errorf("%d UpdateStatus calls, want 1", n)
	}
}

// TestShouldWriteStatus: only the node ShouldWriteStatus picks writes; it is asked with the VIP,
// or the zero Addr for a pending Service, and Resync brings the write once the answer changes.
func TestShouldWriteStatus(t *testing.T) {
	t.Run("assigned", func(t *testing.T) {
		client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080))
		var mine atomic.Bool
		var asked sync.Map
		w, r := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) {
			c.ShouldWriteStatus = func(vip netip.Addr) bool { asked.Store(vip, true); return mine.Load() }
		})
		snap := waitSnapshot(t, r, "the service", func(s *service.Snapshot) bool { return s.Lookup("default/web") != nil })
		vip := snap.Lookup("default/web").ExternalIP
		tstest.EventuallyTrue(t, waitTimeout, "the hook asked for the VIP", func() bool { _, ok := asked.Load(vip); return ok })
		tstest.EventuallyTrue(t, waitTimeout, "the sync to finish", func() bool { s := w.Stats(); return s.SyncsDone == s.Syncs })
		if n := serviceWrites(client, true, nil) + serviceWrites(client, false, nil); n != 0 {
			t.Fatalf("%d writes from a node that does not hold the VIP", n)
		}
		mine.Store(true)
		w.Resync()
		tstest.EventuallyTrue(t, waitTimeout, "the status from the VIP's holder", func() bool {
			return firstIngressIP(getService(t, client, "web")) == vip.String()
		})
	})
	t.Run("pending", func(t *testing.T) {
		client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080,
			withStatusIP("198.18.5.5"), withOwner(UserAgent)))
		cfg := applianceConfig(t, "")
		cfg.Network.LoadBalancerPools = nil
		var askedZero atomic.Bool
		startWatcher(t, client, cfg, func(c *Config) {
			c.ShouldWriteStatus = func(vip netip.Addr) bool { askedZero.Store(!vip.IsValid()); return !vip.IsValid() }
		})
		tstest.EventuallyTrue(t, waitTimeout, "the stale status cleared", func() bool {
			return len(getService(t, client, "web").Status.LoadBalancer.Ingress) == 0
		})
		if !askedZero.Load() {
			t.Error("the hook was not asked with the zero Addr")
		}
	})
}

// TestStatusConflicts: a resourceVersion conflict is retried with the latest object, at most
// statusConflictRetries times per write; a write that keeps conflicting is retried later under
// the backoff, not in a loop.
func TestStatusConflicts(t *testing.T) {
	const (
		base     = 50 * time.Millisecond
		maxDelay = 200 * time.Millisecond
	)
	tests := []struct {
		name      string
		conflicts int64 // the first UpdateStatus calls that fail with a conflict
		window    time.Duration
	}{
		{"two conflicts are retried within one write", 2, 0},
		{"endless conflicts stay bounded", 1 << 30, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080))
			var calls atomic.Int64
			client.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "status" || calls.Add(1) > tc.conflicts {
					return false, nil, nil
				}
				return true, nil, apierrors.NewConflict(servicesGVR.GroupResource(), "web", errors.New("modified"))
			})
			start := time.Now() // before the first write: the bound below is generous
			w, _ := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) {
				c.StatusBackoff, c.StatusBackoffMax = base, maxDelay
			})
			if tc.window == 0 {
				tstest.EventuallyTrue(t, waitTimeout, "the status written", func() bool {
					return w.Stats().StatusWrites > 0 && firstIngressIP(getService(t, client, "web")) != ""
				})
				if s := w.Stats(); s.StatusWrites != 1 || s.StatusConflicts != 2 || s.StatusErrors != 0 {
					t.Errorf("stats %+v, want 1 write after 2 conflicts", s)
				}
				return
			}
			tstest.EventuallyTrue(t, waitTimeout, "a first failed write", func() bool { return w.Stats().StatusErrors > 0 })
			time.Sleep(tc.window)
			elapsed := time.Since(start)
			n, s := calls.Load(), w.Stats()
			bound := maxWrites(elapsed, base, maxDelay) * (statusConflictRetries + 1)
			t.Logf("%v: %d UpdateStatus calls, %d failed writes; bound %d calls", elapsed, n, s.StatusErrors, bound)
			if n > int64(bound) {
				t.Errorf("%d UpdateStatus calls in %v, want at most %d", n, elapsed, bound)
			}
			if s.StatusWrites != 0 || s.StatusErrors == 0 {
				t.Errorf("stats %+v after %d conflicting calls", s, n)
			}
		})
	}
}

// TestNodesOfOneClusterConverge: two nodes of one cluster that both write (a VIP handover) with
// different local choices end on one status IP that both serve, after at most one write each.
func TestNodesOfOneClusterConverge(t *testing.T) {
	client := newAPI(t, newService("web", corev1.ServiceTypeLoadBalancer, "198.19.0.10", 80, 30080))
	stateWith := func(ip string) *service.State {
		return &service.State{Version: service.StateVersion, Services: map[string]service.ServiceState{
			"default/web": {LoadBalancerIP: netip.MustParseAddr(ip)}}}
	}
	var recs []*recorder
	var ws []*Watcher
	for _, ip := range []string{"198.19.1.5", "198.19.1.6"} {
		w, r := startWatcher(t, client, applianceConfig(t, ""), func(c *Config) { c.InitialState = stateWith(ip) })
		recs, ws = append(recs, r), append(ws, w)
	}
	var ip string
	tstest.EventuallyTrue(t, waitTimeout, "a status", func() bool { ip = firstIngressIP(getService(t, client, "web")); return ip != "" })
	for i, r := range recs {
		waitSnapshot(t, r, fmt.Sprintf("node %d serving the status IP", i), func(s *service.Snapshot) bool {
			w := s.Lookup("default/web")
			return w != nil && w.ExternalIP.String() == ip
		})
	}
	tstest.Never(t, 300*time.Millisecond, 20*time.Millisecond, "the status changed", func() bool {
		return firstIngressIP(getService(t, client, "web")) != ip
	})
	for i, w := range ws {
		if s := w.Stats(); s.StatusWrites > 1 {
			t.Errorf("node %d: %d status writes, want at most 1", i, s.StatusWrites)
		}
	}
}
