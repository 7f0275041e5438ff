package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/xdpsvc/lb/appliance/kube"
	"github.com/xdpsvc/lb/cluster"
)

// kubeResyncer lets the cluster's callbacks ask the Kubernetes watcher for a sync (a VIP gained,
// the members changed: who writes which status changed). Safe from any goroutine; a no-op before
// startKube and in manifest mode.
type kubeResyncer struct {
	w atomic.Pointer[kube.Watcher]
}

func (k *kubeResyncer) resync() {
	if w := k.w.Load(); w != nil {
		w.Resync()
	}
}

// kubeUpdate is one desired state from the Kubernetes API, applied by the control loop, which
// answers on done (an error makes the watcher retry and skip its status write-back).
type kubeUpdate struct {
	u    kube.Update
	done chan error
}

// startKube follows Services and EndpointSlices through the Kubernetes API (services.kubeconfig
// or services.inCluster) instead of manifest files. Until the first update the node serves
// nothing new; while the API is away the last state keeps serving.
func (n *node) startKube(ctx context.Context) error {
	client := n.opts.KubeClient
	if client == nil {
		var err error
		if client, err = kube.NewClient(n.cfg.Services); err != nil {
			return err
		}
	}
	w, err := kube.New(kube.Config{
		Client:       client,
		Appliance:    n.cfg,
		InitialState: n.control.state,
		WriteStatus:  true,
		// One node writes each status: the VIP's holder, and for a pending Service (no VIP) the
		// first live appliance by name. The others would fight over it with stale views.
		ShouldWriteStatus: n.writesStatus,
		ClusterName:       n.cfg.Services.ClusterName,
		Logger:            n.log,
		OnUpdate: func(u kube.Update) error {
			req := kubeUpdate{u: u, done: make(chan error, 1)}
			select {
			case n.events.kubeUpdates <- req:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case err := <-req.done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("kubernetes source: %w", err)
	}
	n.kubeWatch.w.Store(w)
	go func() {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("kubernetes watch stopped; the last state keeps serving", "err", err)
		}
	}()
	return nil
}

// applyKube applies an update from the API on the control goroutine.
func (n *node) applyKube(req kubeUpdate) {
	for _, e := range req.u.Skipped {
		n.log.Warn("kubernetes object skipped", "err", e.Error())
	}
	req.done <- n.applySnapshot(req.u.Snapshot, req.u.State, "kubernetes API")
}

// writesStatus is kube.Config.ShouldWriteStatus: this node writes the status of the Service
// whose VIP it holds, and, for the zero Addr (a pending Service), only when it is the first live
// appliance member by name. Runs on the watcher's sync goroutine.
func (n *node) writesStatus(vip netip.Addr) bool {
	if vip.IsValid() {
		return n.cl.Holds(vip)
	}
	return firstLiveAppliance(n.cl.Members(), n.cfg.Node.Name)
}

// firstLiveAppliance reports whether self sorts first among the live appliance members (itself
// counted live: a node that does not see itself alive is leaving).
func firstLiveAppliance(members []cluster.MemberInfo, self string) bool {
	for _, m := range members {
		live := m.Name == self || m.State == cluster.StateAlive && m.MetaValid && m.Meta.Role == cluster.RoleAppliance
		if live && m.Name < self {
			return false
		}
	}
	return true
}
