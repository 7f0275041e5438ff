// Package demo is `bench demo` (make demo): it brings up a one-node lab, runs the appliance with the
// configs/ examples through bench/lab/appliance, shows `appliance get services`, sends real requests
// through a ClusterIP (from inside the cluster), a NodePort and a LoadBalancer VIP (from outside),
// prints which backends answered and the appliance's counters, and tears everything down.
//
// # Concurrency
//
// Run runs on the calling goroutine, one demo at a time (the lab's namespaces and the
// admin port are fixed by the configs).
package demo
