// Package service turns an appliance config and Kubernetes manifests (v1 Service,
// discovery.k8s.io/v1 EndpointSlice, v1 Endpoints, decoded with the upstream API types) into one
// validated, allocated, immutable Snapshot that the data plane consumes, plus the State of
// allocations to persist.
//
// Allocation follows kube-apiserver: ClusterIPs from serviceCIDR (network and IPv4 broadcast
// address skipped), nodePorts from nodePortRange (unique across Services; one Service may use one
// nodePort for TCP and UDP of the same port), external IPs from the LoadBalancer pools (or
// spec.loadBalancerIP / metallb.universe.tf/loadBalancerIPs when free and in a pool; none free =
// <pending>). It is deterministic: Services are processed in namespace/name order, previous state
// first, explicit requests second, then a hash of namespace/name plus linear probing. A value never
// changes while its Service exists and needs it; a Service that no longer needs a value (type
// narrowed, deleted) releases it.
//
// In the Kubernetes API mode (NewBuilderWithOptions with BuildOptions{APIAllocated: true}, used by
// appliance/kube) kube-apiserver has already allocated ClusterIPs and nodePorts: they are taken
// from the objects as they are (only collisions and the IP family are checked) and a missing one
// is an error for its Service, never allocated here; external IPs and port IDs are still the
// appliance's.
//
// Invariants: Build is pure (no I/O) and all-or-nothing: any error returns a config.ErrorList with
// every problem as FILE:LINE: FIELD: MESSAGE and no snapshot.
//
// # Concurrency
//
// A Snapshot, its Services and a State returned by Build are never modified afterwards and may be
// read from any goroutine. A Builder
// (the incremental form) belongs to one goroutine, the reload loop. LoadManifests, LoadState and
// SaveState do file I/O and are meant for the control goroutine.
package service
