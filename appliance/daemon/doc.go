// Package daemon is `appliance run`: it loads the config and manifests, builds and persists the
// desired state, opens the AF_XDP data plane on the configured interfaces, serves the admin API,
// reloads on SIGHUP or a changed manifest file, and shuts down cleanly (XDP programs detached,
// sockets closed) on SIGINT/SIGTERM.
//
// Before opening anything, Run checks that AF_XDP can work here (Preflight: capabilities from
// /proc/self/status CapEff, RLIMIT_MEMLOCK against the UMEM size, kernel ≥ 5.10, interfaces
// present and up, a veth peer without XDP or GRO) and refuses with what is missing and how to
// fix it; Preflight decides from injected Readings, so its logic is tested without root. The
// admin API gets GET /api/v1/capture (package capture) over the data plane, with ?service=
// resolved by ServiceCaptureRules against the current snapshot.
//
// Goroutines: one per data-plane worker (queue index), one for the admin API server, and the
// control goroutine running Run, which alone builds snapshots, applies them, and updates the
// steering program. Nothing here runs per packet.
package daemon
