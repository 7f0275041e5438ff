package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/bench/tstest"
	"github.com/xdpsvc/lb/cluster"
)

func snapWith(svcs ...*service.Service) *service.Snapshot {
	return &service.Snapshot{Services: svcs}
}

// TestOverlayHealth: endpoints resolved down are served not ready and not serving; only the
// Services, ports and endpoint slices that change are copied; raw is never modified; UDP
// ports are left alone.
func TestOverlayHealth(t *testing.T) {
	e := func(addr string, port uint16, ready bool) service.Endpoint {
		return service.Endpoint{Addr: netip.MustParseAddr(addr), Port: port, Ready: ready, Serving: ready}
	}
	web := &service.Service{Namespace: "default", Name: "web", Ports: []service.Port{
		{Name: "http", Protocol: service.TCP, Port: 80, Endpoints: []service.Endpoint{e("198.18.1.21", 8080, true), e("198.18.1.22", 8080, true)}},
		{Name: "dns", Protocol: service.UDP, Port: 53, Endpoints: []service.Endpoint{e("198.18.1.21", 8080, true)}},
		{Name: "admin", Protocol: service.TCP, Port: 81, Endpoints: []service.Endpoint{e("198.18.1.22", 9000, true)}},
	}}
	other := &service.Service{Namespace: "default", Name: "other", Ports: []service.Port{
		{Name: "http", Protocol: service.TCP, Port: 80, Endpoints: []service.Endpoint{e("198.18.1.23", 8080, true)}},
	}}
	raw := snapWith(other, web)
	down := func(eps ...string) map[netip.AddrPort]bool {
		m := map[netip.AddrPort]bool{}
		for _, s := range eps {
			m[netip.MustParseAddrPort(s)] = true
		}
		return m
	}
	cases := []struct {
		name      string
		down      map[netip.AddrPort]bool
		wantSame  bool     // raw returned as is
		wantReady []string // "svc/port/index" ready after overlay, every other endpoint listed here
	}{
		{"nothing down", down(), true, nil},
		{"endpoint not in any service", down("198.18.1.99:8080"), true, nil},
		{"one TCP endpoint down, UDP same addr:port kept", down("198.18.1.21:8080"), false,
			[]string{"web/http/1", "web/dns/0", "web/admin/0", "other/http/0"}},
		{"all of web down", down("198.18.1.21:8080", "198.18.1.22:8080", "198.18.1.22:9000"), false,
			[]string{"web/dns/0", "other/http/0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := overlayHealth(raw, tc.down)
			if (got == raw) != tc.wantSame {
				t.Fatalf("same snapshot %v, want %v", got == raw, tc.wantSame)
			}
			for _, s := range raw.Services {
				for _, p := range s.Ports {
					for _, ep := range p.Endpoints {
						if !ep.Ready || !ep.Serving {
							t.Fatal("raw snapshot modified")
						}
					}
				}
			}
			if tc.wantSame {
				return
			}
			want := map[string]bool{}
			for _, w := range tc.wantReady {
				want[w] = true
			}
			for si, s := range got.Services {
				changed := false
				for pi, p := range s.Ports {
					for ei, ep := range p.Endpoints {
						k := fmt.Sprintf("%s/%s/%d", s.Name, p.Name, ei)
						if ep.Ready != want[k] || ep.Serving != want[k] {
							t.Errorf("%s: ready %v serving %v, want %v", k, ep.Ready, ep.Serving, want[k])
						}
						if !want[k] {
							changed = true
						}
					}
					if !changed && &p.Endpoints[0] != &raw.Services[si].Ports[pi].Endpoints[0] {
						t.Errorf("%s/%s: unchanged endpoints copied", s.Name, p.Name)
					}
				}
				if !changed && s != raw.Services[si] {
					t.Errorf("%s: unchanged service copied", s.Name)
				}
			}
		})
	}
}

// healthNode runs one in-process daemon with idle I/O and manifest mode.
type healthNode struct {
	name  string
	admin *admin.Client
}

func startHealthNode(t *testing.T, name string, gossipPort, peerPort int, manifest string) *healthNode {
	t.Helper()
	dir := t.TempDir()
	adminPort := freePort(t)
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// Gossip with a key, the default: config.ClusterKey refuses a key file others can read.
	if err := cluster.WriteKeyFile(filepath.Join(dir, "gossip.key"), []byte("health-test-key-0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	cfgText := fmt.Sprintf(`node: {name: %s}
interfaces: [{name: test0}]
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
cluster:
  bind: 127.0.0.1:%d
  join: [127.0.0.1:%d]
  requireQuorum: false
  secretKeyFile: gossip.key
services:
  manifests: [services.yaml]
admin:
  listen: 127.0.0.1:%d
healthChecks: {interval: 200ms, timeout: 200ms, healthyThreshold: 2, unhealthyThreshold: 2}
`, name, gossipPort, peerPort, adminPort)
	cfgPath := filepath.Join(dir, "lb.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	runTestDaemon(t, name, cfgPath, nil)
	return &healthNode{name: name, admin: &admin.Client{Base: fmt.Sprintf("127.0.0.1:%d", adminPort)}}
}

// TestHealthChecksAcrossTwoDaemons: two in-process appliances on loopback gossip; an endpoint
// on 127.0.0.1 whose listener closes is shown not ready by both within a few intervals, and
// ready again by both once it reopens. A UDP endpoint on the same address and port is never
// probed and stays ready.
func TestHealthChecksAcrossTwoDaemons(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accept := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	go accept(ln)
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 198.19.0.10
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: %[1]d}
    - {name: udp, protocol: UDP, port: 81, targetPort: %[1]d}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: %[1]d}, {name: udp, protocol: UDP, port: %[1]d}]
endpoints:
  - addresses: [127.0.0.1]
`, port)
	pa, pb := freePort(t), freePort(t)
	nodes := []*healthNode{
		startHealthNode(t, "lb-a", pa, pb, manifest),
		startHealthNode(t, "lb-b", pb, pa, manifest),
	}
	want := func(ready bool, what string) {
		t.Helper()
		tstest.Eventually(t, 10*time.Second, what, func() error {
			for _, n := range nodes {
				var eps []admin.EndpointStatus
				if err := n.admin.Get(t.Context(), "/api/v1/endpoints", &eps); err != nil {
					return err
				}
				if len(eps) != 2 {
					return fmt.Errorf("%s: endpoints %+v", n.name, eps)
				}
				for _, e := range eps {
					if e.Address != addr {
						return fmt.Errorf("%s: endpoint %+v", n.name, e)
					}
					wantReady := ready || e.Port == "udp"
					if e.Ready != wantReady || e.Serving != wantReady {
						return fmt.Errorf("%s: %s %s ready %v serving %v, want %v", n.name, e.Port, e.Address, e.Ready, e.Serving, wantReady)
					}
				}
			}
			return nil
		})
	}
	want(true, "endpoint ready while its listener is open")
	// The view is gossiped: each node holds the other's report.
	tstest.Eventually(t, 10*time.Second, "reports exchanged", func() error {
		for _, n := range nodes {
			resp, err := http.Get("http://" + n.admin.Base + "/metrics")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`(?m)^appliance_health_reports_received_total ([0-9.e+]+)$`).FindSubmatch(body)
			if m == nil || string(m[1]) == "0" {
				return fmt.Errorf("%s: no report received from the other node", n.name)
			}
		}
		return nil
	})
	ln.Close()
	start := time.Now()
	want(false, "closed listener shown not ready on both nodes")
	t.Logf("down on both nodes after %v (2 failures at 200 ms)", time.Since(start).Round(time.Millisecond))
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("reopen %s: %v", addr, err)
	}
	go accept(ln2)
	t.Cleanup(func() { ln2.Close() })
	start = time.Now()
	want(true, "reopened listener shown ready on both nodes")
	t.Logf("up on both nodes after %v (2 successes at 200 ms)", time.Since(start).Round(time.Millisecond))
}
