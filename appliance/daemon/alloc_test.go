package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/bench/tstest"
)

// allocNode is one daemon of TestAllocationsConverge, run in-process with idle I/O (no root).
type allocNode struct {
	dir   string
	admin *admin.Client
}

func startAllocNode(t *testing.T, name string, gossip, peer int, manifest string, state *service.State) *allocNode {
	t.Helper()
	dir := t.TempDir()
	adminPort := freePort(t)
	cfg := fmt.Sprintf(`node: {name: %s}
interfaces: [{name: test0}]
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools: [{name: default, cidrs: [198.19.1.0/28]}]
cluster:
  bind: 127.0.0.1:%d
  insecure: true
  join: [127.0.0.1:%d]
  requireQuorum: false
services:
  manifests: [services.yaml]
admin:
  listen: 127.0.0.1:%d
state:
  path: state.json
`, name, gossip, peer, adminPort)
	for f, data := range map[string]string{"lb.yaml": cfg, "services.yaml": manifest} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if state != nil {
		if err := service.SaveState(filepath.Join(dir, "state.json"), state); err != nil {
			t.Fatal(err)
		}
	}
	runTestDaemon(t, name, filepath.Join(dir, "lb.yaml"), nil)
	return &allocNode{dir: dir, admin: &admin.Client{Base: fmt.Sprintf("127.0.0.1:%d", adminPort)}}
}

// values returns a Service's ClusterIP, external IP and first nodePort as the node serves them.
func (a *allocNode) values(name string) (string, error) {
	var svcs []admin.ServiceStatus
	if err := a.admin.Get(context.Background(), "/api/v1/services", &svcs); err != nil {
		return "", err
	}
	for _, s := range svcs {
		if s.Name == name {
			return fmt.Sprintf("%v %s %d", s.ClusterIPs, s.ExternalIP, s.Ports[0].NodePort), nil
		}
	}
	return "", fmt.Errorf("no Service %s in %+v", name, svcs)
}

// TestAllocationsConverge runs two daemons whose state files disagree: lb-b allocated web's
// values earlier (older creation time) than lb-a, and lb-a gave web's ClusterIP to another
// Service, db, later. Through allocation gossip both must end up serving lb-b's values for web,
// lb-a must move db off the ClusterIP the cluster gave to web, and lb-a persists the result.
func TestAllocationsConverge(t *testing.T) {
	manifest := `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432}]
`
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	old := time.Now().Add(-time.Hour).UnixMilli()
	stateB := &service.State{Version: service.StateVersion, Services: map[string]service.ServiceState{
		"default/web": {ClusterIPs: []netip.Addr{ip("198.19.0.100")}, LoadBalancerIP: ip("198.19.1.9"),
			NodePorts: map[string]uint16{"80/TCP": 31111}, CreatedUnixMilli: old},
	}}
	stateA := &service.State{Version: service.StateVersion, Services: map[string]service.ServiceState{
		"default/web": {ClusterIPs: []netip.Addr{ip("198.19.0.200")}, LoadBalancerIP: ip("198.19.1.3"),
			NodePorts: map[string]uint16{"80/TCP": 32222}, CreatedUnixMilli: old + 60_000},
		"default/db": {ClusterIPs: []netip.Addr{ip("198.19.0.100")}, CreatedUnixMilli: old + 60_000},
	}}
	pa, pb := freePort(t), freePort(t)
	a := startAllocNode(t, "lb-a", pa, pb, manifest, stateA)
	b := startAllocNode(t, "lb-b", pb, pa, manifest, stateB)
	want := "[198.19.0.100] 198.19.1.9 31111"
	tstest.Eventually(t, 15*time.Second, "both nodes serve lb-b's (older) values for web", func() error {
		for n, node := range map[string]*allocNode{"lb-a": a, "lb-b": b} {
			got, err := node.values("web")
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s serves web as %s, want %s", n, got, want)
			}
		}
		dbA, err := a.values("db")
		if err != nil {
			return err
		}
		dbB, err := b.values("db")
		if err != nil {
			return err
		}
		if dbA != dbB {
			return fmt.Errorf("db: lb-a %s, lb-b %s", dbA, dbB)
		}
		return nil
	})
	db, _ := a.values("db")
	if db[:14] == "[198.19.0.100]" {
		t.Fatalf("db kept the ClusterIP the cluster gave to web: %s", db)
	}
	st, err := service.LoadState(filepath.Join(a.dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Services["default/web"]; got.ClusterIPs[0] != ip("198.19.0.100") || got.CreatedUnixMilli != old {
		t.Fatalf("lb-a persisted web as %+v", got)
	}
	t.Logf("web %s on both; db %s on both", want, db)
}
