// Package admin serves the appliance's admin HTTP API of DESIGN.md section 4 and reads it back for
// `appliance get`.
//
// Endpoints (JSON unless said otherwise):
//
//	GET /healthz          200 "ok" while the node serves, 503 with the reason otherwise
//	GET /metrics          Prometheus text format, from the registry the daemon hands in
//	GET /api/v1/services  []ServiceStatus
//	GET /api/v1/endpoints []EndpointStatus
//	GET /api/v1/flows     []FlowStatus (?limit=N, default 1000)
//	GET /api/v1/members   []MemberStatus
//	GET /api/v1/capture   pcapng stream (package capture; added by the daemon through Config.Routes)
//
// The server reads everything through the Source interface, which the daemon implements over its
// current snapshot, data plane and cluster view; handlers run on net/http's goroutines, so a Source
// must be safe for concurrent use. Nothing here runs on the packet path.
package admin
