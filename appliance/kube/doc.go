// Package kube makes a Kubernetes API server the source of the appliance's Services, the way
// kube-proxy follows it, and writes back the external IPs it assigns, the way MetalLB does.
//
// A Watcher runs client-go shared informers on v1 Services and discovery.k8s.io/v1
// EndpointSlices. Every informer event marks the state dirty; a single sync goroutine, at most
// once per MinSyncInterval (kube-proxy's minSyncPeriod), lists the informer caches, keeps the
// Services this appliance serves (spec.loadBalancerClass filter), builds a service.Snapshot in
// service.BuildOptions{APIAllocated: true} mode (ClusterIPs and nodePorts exactly as
// kube-apiserver allocated them; external IPs from the appliance's pools) and hands it to
// Config.OnUpdate. It then writes each LoadBalancer Service's external IP to
// status.loadBalancer.ingress with UpdateStatus when the API holds something else, if this
// appliance cluster controls that Service's status and this node is the one to write it.
//
// Ownership follows spec.loadBalancerClass as Kubernetes defines it: a Service of
// services.loadBalancerClass is this appliance's; a Service of another class is ignored; an
// unclassed LoadBalancer Service (served with services.serveUnclassed) belongs to the default
// implementation that assigned it first. This cluster records its assignments in the
// AnnotationOwner annotation (value Config.ClusterName), written with the object's
// resourceVersion before the status, so a status it wrote always carries the record and two
// clusters racing for a new Service cannot both win. An unclassed Service whose status holds an
// ingress without our record, or whose record names another cluster, is foreign: served for its
// clusterIP and nodePorts only (no VIP), its status never adopted or written, logged once.
//
// Invariants:
//   - OnUpdate sees only complete states: nothing before every informer cache has synced, and
//     a Service or EndpointSlice that fails validation is left out (reported in Update.Skipped)
//     instead of failing the whole state, as kube-proxy skips a bad Service.
//   - Losing the API server changes nothing: informers keep their caches, no event arrives, so
//     no new state is produced and no VIP is withdrawn. The reflectors relist with backoff; the
//     relist's differences arrive as ordinary events and the next sync applies them.
//   - An external IP already in the status of a Service this cluster controls (and in a pool) is
//     kept in preference to the local State, so appliance nodes converge on what the API
//     records. A status write is made only when the API differs, only where
//     Config.ShouldWriteStatus says so (the VIP's holder), with the object's resourceVersion; a
//     conflict is retried with the latest object, re-checked, at most statusConflictRetries
//     times.
//   - A record and status that disagree are harmless: a record without our status (the status
//     write failed) makes the next sync write it; a foreign status under our record (a
//     controller that ignores records) is rewritten, but each Service's writes are spaced by a
//     doubling backoff (Config.StatusBackoff up to StatusBackoffMax), so two writers that
//     disagree make a bounded number of writes, not a loop.
//   - OnUpdate is called only when the snapshot differs from the last accepted one (Diff not
//     empty), or for the first state.
//
// # Concurrency
//
// New and Run are called by the owner (the daemon's control goroutine); Run blocks
// until its context ends. OnUpdate runs on the Watcher's sync goroutine, one call at a time, and
// must not block for long (hand the snapshot to the control loop); so do ShouldWriteStatus and the
// status writes, which also own the per-Service backoff and the foreign-Service log. Stats and
// Resync may be called from any goroutine. Run starts the client-go informer goroutines and
// stops them before it returns.
package kube
