package daemon

import (
	"context"
	"fmt"

	"github.com/xdpsvc/lb/appliance/kube"
)

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
		Logger:       n.log,
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
