package daemon

import "github.com/xdpsvc/lb/appliance/service"

// The served state is built in two steps, on the control goroutine:
//
//  1. Build: the manifest objects (or, in API mode, the kube watcher's objects) plus
//     extraObjects — objects from other sources such as backend agents' endpoints in the gossip
//     — go through service.Builder against the persisted allocations.
//  2. Overlay: overlay adjusts the built snapshot with state that changes often and must not
//     re-run the allocator, such as probed endpoint health.
//
// A source that changes calls requestRefresh; the control loop then runs refreshView, which
// repeats step 1 (manifest mode) and step 2 and installs the result.

// extraObjects returns the objects that other sources add to the manifests. It is called from
// the control goroutine only.
func (n *node) extraObjects() []service.Object {
	return n.agentObjects() // backend agents' endpoints (agents.go)
}

// overlay returns the snapshot to serve for raw: raw itself when no overlay changes anything,
// otherwise a copy (raw is never modified). It is called from the control goroutine only.
func (n *node) overlay(raw *service.Snapshot) *service.Snapshot {
	if n.health == nil {
		return raw
	}
	return n.health.apply(raw)
}
