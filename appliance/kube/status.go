package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xdpsvc/lb/appliance/service"
)

// AnnotationOwner records which appliance cluster assigned a LoadBalancer Service's
// status.loadBalancer.ingress; its value is Config.ClusterName. It is written, with the object's
// resourceVersion, before the status itself, so that a status this cluster wrote always carries
// it.
const AnnotationOwner = "lb.xdpsvc.io/owner"

// statusConflictRetries is how many times one status write is retried with the latest object
// after a resourceVersion conflict before it counts as failed.
const statusConflictRetries = 3

// claim says who controls a LoadBalancer Service's status.
type claim int

const (
	// claimFree: nobody; no ingress and no ownership record of another cluster.
	claimFree claim = iota
	// claimOurs: the Service has this appliance's spec.loadBalancerClass, or its AnnotationOwner
	// names this cluster.
	claimOurs
	// claimForeign: another controller assigned it; this cluster leaves it alone.
	claimForeign
)

// claimOf says who controls s's status and, for claimForeign, why.
//
// spec.loadBalancerClass follows the Kubernetes semantics: a Service of this appliance's class is
// this appliance's whatever it records; an unclassed one belongs to whichever default
// implementation assigned it first, as its ownership record (or, for a controller that writes
// none, a non-empty ingress without our record) says.
func (w *Watcher) claimOf(s *corev1.Service) (claim, string) {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return claimFree, ""
	}
	if c := s.Spec.LoadBalancerClass; c != nil && *c != "" && *c == w.cfg.Appliance.Services.LoadBalancerClass {
		return claimOurs, ""
	}
	switch owner := s.Annotations[AnnotationOwner]; {
	case owner == w.cfg.ClusterName:
		return claimOurs, ""
	case owner != "":
		return claimForeign, "claimed by appliance cluster " + owner
	case len(s.Status.LoadBalancer.Ingress) > 0:
		return claimForeign, "status.loadBalancer.ingress assigned by another controller"
	}
	return claimFree, ""
}

// withoutLoadBalancer returns a copy of a LoadBalancer Service another controller owns, as the
// appliance serves it: its clusterIP and nodePorts (as a NodePort Service when every port has
// one, else as a ClusterIP Service), never an external IP.
func withoutLoadBalancer(s *corev1.Service) *corev1.Service {
	c := s.DeepCopy()
	c.Spec.Type = corev1.ServiceTypeNodePort
	for _, p := range c.Spec.Ports {
		if p.NodePort == 0 {
			c.Spec.Type = corev1.ServiceTypeClusterIP
		}
	}
	if c.Spec.Type == corev1.ServiceTypeClusterIP {
		for i := range c.Spec.Ports {
			c.Spec.Ports[i].NodePort = 0
		}
		c.Spec.ExternalTrafficPolicy = ""
		c.Spec.HealthCheckNodePort = 0
	}
	c.Spec.LoadBalancerIP = ""
	c.Spec.LoadBalancerSourceRanges = nil
	c.Spec.AllocateLoadBalancerNodePorts = nil
	c.Spec.LoadBalancerClass = nil
	delete(c.Annotations, service.AnnotationLoadBalancerIPs)
	delete(c.Annotations, service.AnnotationAddressPool)
	c.Status = corev1.ServiceStatus{}
	return c
}

// noteForeign logs each Service left to another controller once per reason, and counts them.
func (w *Watcher) noteForeign(foreign map[string]string) {
	for k, why := range foreign {
		if w.foreignLogged[k] != why {
			w.log.Warn("LoadBalancer Service left to another controller: not served as a VIP, status not written",
				"service", k, "err", why)
		}
	}
	w.foreignLogged = foreign
	w.foreign.Store(uint64(len(foreign)))
}

// statusBackoff spaces the status writes of one Service: the n-th write of a series waits
// StatusBackoff·2^(n-2) (at most StatusBackoffMax) after the previous one; a series ends when
// no write was made for 2·StatusBackoffMax. A writer that keeps changing the status thus gets at
// most 1 + log2(T/StatusBackoff + 1) writes from this node in a time T of doubling, then one per
// StatusBackoffMax.
type statusBackoff struct {
	writes int
	last   time.Time
}

// wait returns how long before another write is allowed at now (0 = now), ending a quiet series.
func (b *statusBackoff) wait(now time.Time, base, maxDelay time.Duration) time.Duration {
	if b.writes == 0 {
		return 0
	}
	if now.Sub(b.last) >= 2*maxDelay {
		b.writes = 0
		return 0
	}
	delay := maxDelay
	if b.writes <= 30 {
		delay = min(base<<(b.writes-1), maxDelay)
	}
	return max(0, b.last.Add(delay).Sub(now))
}

// writeStatuses makes status.loadBalancer.ingress of every served LoadBalancer Service this
// cluster controls say what the last accepted snapshot assigned, from the node
// Config.ShouldWriteStatus picks. It returns false if a write failed, and how long until a write
// held back by its backoff may be made (0 = none held back).
func (w *Watcher) writeStatuses(ctx context.Context, current map[string]*corev1.Service) (bool, time.Duration) {
	for k := range w.backoff {
		if current[k] == nil {
			delete(w.backoff, k)
		}
	}
	if w.last == nil {
		return true, 0
	}
	ok, next := true, time.Duration(0)
	for _, svc := range w.last.Services {
		if svc.Type != service.TypeLoadBalancer {
			continue
		}
		obj := current[svc.Key()]
		if obj == nil {
			continue
		}
		var want []corev1.LoadBalancerIngress
		if svc.ExternalIP.IsValid() {
			mode := corev1.LoadBalancerIPModeVIP
			want = []corev1.LoadBalancerIngress{{IP: svc.ExternalIP.String(), IPMode: &mode}}
		}
		if !w.needsWrite(obj, want) || !w.shouldWrite(svc.ExternalIP) {
			continue
		}
		b := w.backoff[svc.Key()]
		if b == nil {
			b = &statusBackoff{}
			w.backoff[svc.Key()] = b
		}
		now := time.Now()
		if d := b.wait(now, w.cfg.StatusBackoff, w.cfg.StatusBackoffMax); d > 0 {
			if next == 0 || d < next {
				next = d
			}
			continue
		}
		b.writes, b.last = b.writes+1, now
		vip := "<pending>"
		if svc.ExternalIP.IsValid() {
			vip = svc.ExternalIP.String()
		}
		wrote, err := w.writeStatus(ctx, obj, want)
		switch {
		case err != nil:
			w.writeErrors.Add(1)
			w.log.Warn("write status.loadBalancer.ingress", "service", svc.Key(), "vip", vip, "err", err)
			ok = false
		case wrote:
			w.writes.Add(1)
			w.log.Info("wrote status.loadBalancer.ingress", "service", svc.Key(), "vip", vip)
		}
	}
	return ok, next
}

// needsWrite reports whether obj's status (or, for an IP, its ownership record) differs from want
// in a Service this cluster may write.
func (w *Watcher) needsWrite(obj *corev1.Service, want []corev1.LoadBalancerIngress) bool {
	if obj.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if c, _ := w.claimOf(obj); c == claimForeign {
		return false
	}
	if !sameIngress(obj.Status.LoadBalancer.Ingress, want) {
		return true
	}
	return len(want) > 0 && obj.Annotations[AnnotationOwner] != w.cfg.ClusterName
}

func (w *Watcher) shouldWrite(vip netip.Addr) bool {
	return w.cfg.ShouldWriteStatus == nil || w.cfg.ShouldWriteStatus(vip)
}

// writeStatus records this cluster's ownership (for an IP) and then writes want, retrying a
// resourceVersion conflict with the latest object, whose claim and status are checked afresh.
// A conflict that brought a different status (another node or controller wrote it) is not
// overwritten at once: the next sync, which sees it, decides under the backoff. It reports
// whether it wrote; false with a nil error means there was nothing left to write now.
func (w *Watcher) writeStatus(ctx context.Context, obj *corev1.Service, want []corev1.LoadBalancerIngress) (bool, error) {
	api := w.cfg.Client.CoreV1().Services(obj.Namespace)
	cur := obj
	for attempt := 0; ; attempt++ {
		if !w.needsWrite(cur, want) {
			return false, nil
		}
		err := w.claimAndWrite(ctx, cur, want)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsConflict(err) {
			return false, err
		}
		w.conflicts.Add(1)
		if attempt == statusConflictRetries {
			return false, fmt.Errorf("%d resourceVersion conflicts in a row: %w", attempt+1, err)
		}
		rctx, cancel := context.WithTimeout(ctx, w.cfg.StatusTimeout)
		latest, err := api.Get(rctx, obj.Name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read service after a conflict: %w", err)
		}
		if !sameIngress(latest.Status.LoadBalancer.Ingress, cur.Status.LoadBalancer.Ingress) {
			w.trigger()
			return false, nil
		}
		cur = latest
	}
}

// claimAndWrite writes AnnotationOwner (when want holds an IP and cur lacks it) and then the
// status, each with the resourceVersion of the object before it: a status is never written
// without the record, and a controller that wrote in between makes the write fail as a conflict.
func (w *Watcher) claimAndWrite(ctx context.Context, cur *corev1.Service, want []corev1.LoadBalancerIngress) error {
	api := w.cfg.Client.CoreV1().Services(cur.Namespace)
	if len(want) > 0 && cur.Annotations[AnnotationOwner] != w.cfg.ClusterName {
		upd := cur.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[AnnotationOwner] = w.cfg.ClusterName
		rctx, cancel := context.WithTimeout(ctx, w.cfg.StatusTimeout)
		got, err := api.Update(rctx, upd, metav1.UpdateOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("record ownership: %w", err)
		}
		cur = got
		if sameIngress(cur.Status.LoadBalancer.Ingress, want) {
			return nil // a status this cluster controls already says want: the record was missing
		}
	}
	upd := cur.DeepCopy()
	upd.Status.LoadBalancer.Ingress = want
	rctx, cancel := context.WithTimeout(ctx, w.cfg.StatusTimeout)
	defer cancel()
	if _, err := api.UpdateStatus(rctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
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
