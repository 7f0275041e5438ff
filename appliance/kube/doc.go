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
// status.loadBalancer.ingress with UpdateStatus when the API holds something else.
//
// Invariants:
//   - OnUpdate sees only complete states: nothing before every informer cache has synced, and
//     a Service or EndpointSlice that fails validation is left out (reported in Update.Skipped)
//     instead of failing the whole state, as kube-proxy skips a bad Service.
//   - Losing the API server changes nothing: informers keep their caches, no event arrives, so
//     no new state is produced and no VIP is withdrawn. The reflectors relist with backoff; the
//     relist's differences arrive as ordinary events and the next sync applies them.
//   - An external IP already in status.loadBalancer.ingress (and in a pool) is kept in
//     preference to the local State, so appliance nodes converge on what the API records; a
//     status write is made only when the API differs, with the object's resourceVersion, so two
//     nodes writing at once resolve by optimistic concurrency.
//   - OnUpdate is called only when the snapshot differs from the last accepted one (Diff not
//     empty), or for the first state.
//
// Goroutines: New and Run are called by the owner (the daemon's control goroutine); Run blocks
// until its context ends. OnUpdate runs on the Watcher's sync goroutine, one call at a time, and
// must not block for long (hand the snapshot to the control loop). Stats may be called from any
// goroutine.
package kube
