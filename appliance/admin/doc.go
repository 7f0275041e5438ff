// Package admin serves the appliance's admin HTTP API (README, "Admin API and metrics") and reads it back for
// `appliance get`.
//
// Endpoints (JSON unless said otherwise):
//
//	GET /healthz          200 "ok" while the node serves, 503 with the reason otherwise
//	GET /metrics          Prometheus text format, from the registry the daemon hands in
//	GET /api/v1/services  []ServiceStatus
//	GET /api/v1/endpoints []EndpointStatus
//	GET /api/v1/flows     []FlowStatus (?limit=N, default Config.MaxFlows, capped at MaxListLimit)
//	GET /api/v1/members   []MemberStatus
//	GET /api/v1/capture   pcapng stream (package capture; added by the daemon through Config.Routes)
//
// Authorization: /healthz, /metrics and the read-only lists are open on the TCP listener (for
// Prometheus and `appliance get`). Config.Routes (the capture, which streams payloads; anything
// that changes state belongs there too) are served only to authorized callers: on the Unix socket
// of Config.SocketPath (mode 0600, so file permissions decide, as Cilium's API socket does), or
// on TCP with the bearer token of Config.TokenFile (refused unless the file is 0600 or 0400;
// compared in constant time). With neither configured, they are refused (403).
//
// # Concurrency
//
// The server reads everything through the Source interface, which the daemon implements over its
// current snapshot, data plane and cluster view; handlers run on net/http's goroutines (one
// http.Server per listener, each with its Serve goroutine), so a Source must be safe for
// concurrent use. Nothing here runs on the packet path.
package admin
