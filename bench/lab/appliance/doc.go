// Package appliance drives the appliance program from outside, in a lab node namespace: it writes the
// node's config (lab.ApplianceConfig) and manifests, starts `appliance run`, waits for /healthz, asks the
// admin API (VIP holder, alive members, metrics), and kills (SIGKILL), stops (SIGTERM) and restarts it.
// The e2e tests, `bench failover`, `bench compare` and `bench demo` all run the appliance through it.
//
// It never imports the appliance's packages: it speaks only the admin API's JSON and /metrics text.
//
// # Concurrency
//
// A Node's methods may be called from any goroutine; Start, Stop, Kill and Restart of one
// Node must not overlap each other (the caller orders them). Different Nodes are independent.
package appliance
