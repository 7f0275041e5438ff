// Package daemon is `appliance run`: it loads the config and manifests, builds and persists the
// desired state, opens the AF_XDP data plane on the configured interfaces, serves the admin API,
// reloads on SIGHUP or a changed manifest file, and shuts down cleanly (XDP programs detached,
// sockets closed) on SIGINT/SIGTERM.
//
// Goroutines: one per data-plane worker (queue index), one for the admin API server, and the
// control goroutine running Run, which alone builds snapshots, applies them, and updates the
// steering program. Nothing here runs per packet.
package daemon
