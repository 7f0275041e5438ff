// Package agent is the backend agent (`appliance agent`): on a backend host
// without a Kubernetes API it joins the appliances' agent cluster (a
// memberlist apart from the appliances' own, with a key of its own:
// cluster.agents on the appliances) as a backend member (cluster.RoleBackend)
// and announces its endpoints — per Service "namespace/name", its address and
// ports as EndpointSlice ports — in its node metadata, with their readiness.
// The appliances turn them into EndpointSlices (appliance/daemon, agents.go).
// It needs no AF_XDP and no root.
//
// # Trust
//
// The agent key admits a member to the agent cluster only: an agent can never
// act as an appliance. Every endpoint carries Config.Address, which is also
// the agent's memberlist address (Bind is on it, or unspecified and then
// Address is advertised): appliances take an endpoint only at the address a
// probe confirmed the agent answers at, and only for Services whose
// agents.xdpsvc.io/allowed-sources annotation grants that address.
//
// # Behaviour
//
// Readiness: every Config.CheckInterval the agent TCP-connects to each of its
// TCP ports on Config.Address; while any connect fails it announces its
// endpoints not ready (UDP ports cannot be checked this way and count as
// ready). A change is announced at once (cluster.Node.SetMeta).
//
// Stopping (Run): on the first stop signal the agent announces its endpoints
// draining (the appliances keep established flows and send new ones
// elsewhere), waits Config.DrainTimeout or a second signal, then leaves the
// cluster gracefully; the appliances drop its endpoints at once. Kill stops
// without a leave message, as a crash looks to the cluster.
//
// # Invariants
//
// The announced metadata always fits cluster.MetaMaxBytes: New refuses a
// Config whose endpoints do not fit. The agent's role never changes.
//
// # Concurrency
//
// New starts one checker goroutine. Agent methods are safe for concurrent
// use; Run blocks its caller. ParseArgs and Config.Validate are pure.
package agent
