package lab

import (
	"fmt"
	"strings"
)

// ApplianceConfig returns the config file of an appliance named name in lab node ns: ext0
// external and int0 cluster with the lab's address plan (ARCHITECTURE.md, "The lab": clusterCIDRs
// 198.18.1.0/24, serviceCIDR 198.19.0.0/24, one LoadBalancer pool 198.19.1.0/28), gossip on ns's
// external address joining every other node of nodes on port 7946, manifests in services.yaml and
// state in state.json beside the config, the admin API on adminListen ("" = 127.0.0.1:9100) and
// encrypted gossip with the key in secretKeyFile ("" = cluster.insecure: true, plaintext on purpose).
// Gossip runs on the external segment so that the partition test can cut a node off by its ext0.
func ApplianceConfig(name string, ns *NS, nodes []*NS, adminListen, secretKeyFile string) string {
	if adminListen == "" {
		adminListen = "127.0.0.1:9100"
	}
	var join []string
	for _, other := range nodes {
		if other != ns {
			join = append(join, other.External().Addr.Addr().String()+":7946")
		}
	}
	key := "\n  insecure: true"
	if secretKeyFile != "" {
		key = "\n  secretKeyFile: " + secretKeyFile
	}
	return fmt.Sprintf(`node:
  name: %s
interfaces:
  - name: %s
    role: external
  - name: %s
    role: cluster
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools:
    - name: default
      cidrs: [198.19.1.0/28]
cluster:
  bind: %s:7946
  join: [%s]%s
services:
  manifests: [services.yaml]
admin:
  listen: %s
state:
  path: state.json
`, name, NodeExternalIface, NodeClusterIface, ns.External().Addr.Addr(), strings.Join(join, ", "), key, adminListen)
}
