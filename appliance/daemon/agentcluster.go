package daemon

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpsvc/lb/cluster"
)

// The agent cluster is a memberlist apart from the appliances' (cluster.agents): backend agents
// join it with the agents' key, which is not the appliances' key, so an agent can never act as
// an appliance (rank for VIPs, count toward quorum, send flows, allocations or health
// reports). Each appliance runs one more cluster.Node in it, bound on cluster.agents.bind and
// joining cluster.agents.join (the other appliances' agent ports, so that an agent that knows
// one appliance reaches them all). That node is given no VIPs, no allocations and no message
// handlers; the daemon reads only its Backends (agents.go), and its OnMembers asks for a
// rebuild.

// startAgentCluster starts the agent cluster when cluster.agents.enabled (no-op otherwise).
func (n *node) startAgentCluster() error {
	ac := n.cfg.Cluster.Agents
	if !ac.Enabled {
		return nil
	}
	key, err := n.cfg.AgentKey()
	if err != nil {
		return err
	}
	ccfg, err := agentClusterConfig(n.cfg.Node.Name, n.cfg.Cluster.AgentBind(), ac.Join, key)
	if err != nil {
		return err
	}
	ccfg.Logger = n.opts.Logger.With("cluster", "agents")
	ccfg.OnMembers = n.agentsChanged
	node, err := cluster.New(ccfg)
	if err != nil {
		return fmt.Errorf("agent cluster: %w", err)
	}
	n.agents().node.Store(node)
	if key == nil {
		n.log.Warn("agent cluster without a key (cluster.agents.insecure): anyone who reaches it can announce endpoints for Services that grant its address",
			"bind", node.AddrPort().String())
	}
	n.log.Info("agent cluster listening", "bind", node.AddrPort().String(), "join", ac.Join)
	return nil
}

// agentClusterConfig is the appliance's node in the agent cluster: an appliance-role member
// (agents' metadata is read from it) that requires no quorum and is never given VIPs.
func agentClusterConfig(name, bind string, join []string, key []byte) (cluster.Config, error) {
	ccfg := cluster.DefaultConfig()
	ccfg.Name = name
	ap, err := netip.ParseAddrPort(bind)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("cluster.agents.bind %q: %w", bind, err)
	}
	ccfg.BindAddr = ap
	ccfg.Join = join
	ccfg.SecretKey = key
	ccfg.RequireQuorum = false
	ccfg.Meta = cluster.Meta{Role: cluster.RoleAppliance, Version: version}
	return ccfg, nil
}

// stopAgentCluster leaves the agent cluster (no-op when it was never started).
func (n *node) stopAgentCluster() {
	node := n.agents().node.Swap(nil)
	if node == nil {
		return
	}
	if err := node.Close(2 * time.Second); err != nil {
		n.log.Warn("leave agent cluster", "err", err)
	}
}
