package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/admin"
)

// autoManifests leaves every value to the appliance: clusterIP, nodePorts and external IP.
const autoManifests = `apiVersion: v1
kind: Service
metadata: {name: auto-lb, namespace: default}
spec:
  type: LoadBalancer
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}, {name: dns, protocol: UDP, port: 53, targetPort: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: auto-np, namespace: default}
spec:
  type: NodePort
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: auto-cip, namespace: other}
spec:
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
`

// allocations renders a node's allocations as one comparable string.
func allocations(n *node) string {
	var svcs []admin.ServiceStatus
	n.api("/api/v1/services", &svcs)
	var lines []string
	for _, s := range svcs {
		l := fmt.Sprintf("%s/%s %s %v ext=%s", s.Namespace, s.Name, s.Type, s.ClusterIPs, s.ExternalIP)
		for _, p := range s.Ports {
			l += fmt.Sprintf(" %d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestRestartsKeepAllocations runs three appliance nodes on the same manifests with every value
// auto-allocated, checks that all three agree, then restarts the nodes one by one and checks
// that no ClusterIP, NodePort or external IP changed.
func TestRestartsKeepAllocations(t *testing.T) {
	l := startLabNodes(t, 3, 1, 0)
	nodes := startCluster(t, l, autoManifests)
	want := allocations(nodes[0])
	if !strings.Contains(want, "ext=198.19.1.") || !strings.Contains(want, "auto-np") {
		t.Fatalf("allocations look wrong:\n%s", want)
	}
	for _, n := range nodes[1:] {
		if got := allocations(n); got != want {
			t.Fatalf("%s allocated differently:\n%s\nwant (%s):\n%s", n.ns.Name, got, nodes[0].ns.Name, want)
		}
	}
	for _, n := range nodes {
		n.Stop()
		n.start()
		for _, m := range nodes {
			if got := allocations(m); got != want {
				t.Fatalf("after restarting %s, %s shows:\n%s\nwant:\n%s", n.ns.Name, m.ns.Name, got, want)
			}
		}
	}
	t.Logf("allocations kept across three restarts:\n%s", want)
}
