// Package e2e holds the end-to-end tests of the appliance: they build the `appliance` program,
// bring up the namespace lab (bench/lab), run the appliance in a node namespace on AF_XDP, and
// send real requests with Go's net/http and net.Dial from client, in-cluster and backend
// namespaces. They need root and skip with a message otherwise.
//
// # Concurrency
//
// The tests run one after another (none calls t.Parallel); each builds its own lab with a
// per-run prefix and removes it when it ends, also when it fails.
package e2e
