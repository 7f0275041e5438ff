package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/tstest"
)

// manifests serves the lab's backends through all three Service types; an endpoint ending in "!" is
// not ready.
func manifests(endpoints ...string) string {
	web := lab.Service{
		Name: "web", LoadBalancerIP: "198.19.1.1", ClusterIP: "198.19.0.10",
		Ports: []lab.ServicePort{
			{Name: "http", Protocol: "TCP", Port: 80, TargetPort: 8080, NodePort: 30080},
			{Name: "echo", Protocol: "UDP", Port: 9000, TargetPort: 9000, NodePort: 30900},
			{Name: "tcpecho", Protocol: "TCP", Port: 7000, TargetPort: 7000, NodePort: 30700},
		},
	}
	for _, e := range endpoints {
		addr, notReady := strings.CutSuffix(e, "!")
		web.Endpoints = append(web.Endpoints, lab.Endpoint{Addr: addr, NotReady: notReady})
	}
	empty := lab.Service{Name: "empty", LoadBalancerIP: "198.19.1.2",
		Ports: []lab.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: 8080}}}
	return lab.Manifests(web, empty)
}

func backendName(body string) string {
	// "backend b1 198.18.1.21:8080"
	f := strings.Fields(body)
	if len(f) >= 2 && f[0] == "backend" {
		return f[1]
	}
	return ""
}

func TestServiceTypesAnswerFromTheirVantagePoints(t *testing.T) {
	l := startLab(t, 3)
	n := startNode(t, l, 0, manifests("198.18.1.21", "198.18.1.22", "198.18.1.23"))
	client, inCluster := l.Clients[0], l.ClusterClients[0]

	cases := []struct {
		name string
		from *lab.NS
		url  string
	}{
		{"loadBalancer VIP from an external client", client, "http://198.19.1.1/"},
		{"nodePort on the external node address from an external client", client, "http://198.18.0.11:30080/"},
		{"nodePort on the cluster-side node address from inside the cluster", inCluster, "http://198.18.1.11:30080/"},
		{"clusterIP from inside the cluster", inCluster, "http://198.19.0.10/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body string
			tstest.Eventually(t, 10*time.Second, tc.url, func() error {
				var err error
				body, err = get(tc.from, tc.url)
				return err
			})
			if backendName(body) == "" {
				t.Fatalf("%s answered %q, want a backend's name", tc.url, body)
			}
		})
	}

	t.Run("udp echo through the VIP", func(t *testing.T) {
		c, err := lab.Dial(client, "udp", "198.19.1.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 256)
		tstest.Eventually(t, 5*time.Second, "udp echo", func() error {
			if _, err := c.Write([]byte("hello")); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := c.Read(buf)
			if err != nil {
				return err
			}
			if !strings.HasSuffix(string(buf[:k]), "hello") {
				return fmt.Errorf("echo %q", buf[:k])
			}
			return nil
		})
	})

	t.Run("clusterIP is unreachable from an external client", func(t *testing.T) {
		if _, err := client.Run(t.Context(), "ip", "route", "add", "198.19.0.0/24", "via", "198.18.0.11"); err != nil {
			t.Fatal(err)
		}
		if body, err := get(client, "http://198.19.0.10/"); err == nil {
			t.Fatalf("external client reached the ClusterIP: %q", body)
		}
		if !strings.Contains(n.metrics(), `appliance_dropped_packets_total{reason="clusterip_outside_cluster"}`) {
			t.Fatal("no clusterip_outside_cluster drop counted")
		}
	})

	t.Run("a service without endpoints rejects with a RST", func(t *testing.T) {
		start := time.Now()
		_, err := get(client, "http://198.19.1.2/")
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("want connection refused, got %v", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("reject took %v: it timed out instead of a RST", time.Since(start))
		}
	})

	t.Run("traffic for no service reaches the kernel", func(t *testing.T) { checkKernelGetsUnclaimed(t, n, client) })

	t.Run("appliance get services shows the allocations", func(t *testing.T) {
		var svcs []admin.ServiceStatus
		n.api("/api/v1/services", &svcs)
		found := false
		for _, s := range svcs {
			if s.Name == "web" {
				found = true
				if s.ExternalIP != "198.19.1.1" || s.VIPHolder == "" || len(s.Ports[0].ReadyEndpoints) != 3 {
					t.Fatalf("web service status %+v", s)
				}
				if s.Ports[0].NewFlows == 0 {
					t.Fatalf("web http port counted no flows: %+v", s.Ports[0])
				}
			}
		}
		if !found {
			t.Fatal("web missing from /api/v1/services")
		}
	})
}

func TestConnectionsSpreadAndUnreadyEndpointGetsNone(t *testing.T) {
	l := startLab(t, 3)
	startNode(t, l, 0, manifests("198.18.1.21", "198.18.1.22", "198.18.1.23!"))
	client := l.Clients[0]
	tstest.Eventually(t, 10*time.Second, "VIP", func() error { _, err := get(client, "http://198.19.1.1/"); return err })

	const conns = 90
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	var failures int
	for range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := get(client, "http://198.19.1.1/")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures++
				return
			}
			count[backendName(body)]++
		}()
	}
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d of %d requests failed", failures, conns)
	}
	if count["b3"] != 0 {
		t.Fatalf("unready endpoint b3 got %d connections", count["b3"])
	}
	if count["b1"] < conns/4 || count["b2"] < conns/4 {
		t.Fatalf("connections per backend %v: want both ready backends well used", count)
	}
}

func TestReloadRemovingABackendKeepsOtherFlows(t *testing.T) {
	l := startLab(t, 2)
	n := startNode(t, l, 0, manifests("198.18.1.21", "198.18.1.22"))
	client := l.Clients[0]
	tstest.Eventually(t, 10*time.Second, "VIP", func() error { _, err := get(client, "http://198.19.1.1/"); return err })

	// Long-lived TCP echo connections, until each backend holds some.
	type conn struct {
		c       net.Conn
		backend string
	}
	var held []conn
	per := map[string]int{}
	for i := 0; i < 40 && (per["198.18.1.21"] < 2 || per["198.18.1.22"] < 2); i++ {
		c, err := lab.Dial(client, "tcp", "198.19.1.1:7000")
		if err != nil {
			t.Fatal(err)
		}
		var flows []admin.FlowStatus
		n.api("/api/v1/flows", &flows)
		local := c.LocalAddr().String()
		for _, f := range flows {
			if f.Client == local {
				b := strings.Split(f.Backend, ":")[0]
				held = append(held, conn{c, b})
				per[b]++
			}
		}
	}
	if per["198.18.1.21"] == 0 || per["198.18.1.22"] == 0 {
		t.Fatalf("could not open flows to both backends: %v", per)
	}
	n.writeManifests(manifests("198.18.1.21"))
	tstest.Eventually(t, 10*time.Second, "reload", func() error {
		var svcs []admin.ServiceStatus
		n.api("/api/v1/services", &svcs)
		for _, s := range svcs {
			if s.Name == "web" && len(s.Ports[0].ReadyEndpoints) == 1 {
				return nil
			}
		}
		return fmt.Errorf("not reloaded yet")
	})
	buf := make([]byte, 64)
	for _, h := range held {
		_ = h.c.SetDeadline(time.Now().Add(2 * time.Second))
		_, werr := h.c.Write([]byte("ping\n"))
		k, rerr := h.c.Read(buf)
		ok := werr == nil && rerr == nil && strings.Contains(string(buf[:k]), "ping")
		switch {
		case h.backend == "198.18.1.21" && !ok:
			t.Errorf("flow to the remaining backend broke: write %v read %v", werr, rerr)
		case h.backend == "198.18.1.22" && ok:
			t.Errorf("flow to the removed backend still answered")
		}
		h.c.Close()
	}
}

// checkKernelGetsUnclaimed checks that a connection to a node address and port no Service claims
// reaches the node's kernel (a listener there answers).
func checkKernelGetsUnclaimed(t *testing.T, n *node, client *lab.NS) {
	t.Helper()
	ln, err := n.ns.Listen("tcp", "198.18.0.11:22222")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("kernel\n"))
			c.Close()
		}
	}()
	c, err := lab.Dial(client, "tcp", "198.18.0.11:22222")
	if err != nil {
		t.Fatalf("kernel listener on the node unreachable: %v", err)
	}
	buf := make([]byte, 16)
	k, _ := c.Read(buf)
	c.Close()
	if string(buf[:k]) != "kernel\n" {
		t.Fatalf("got %q", buf[:k])
	}
}
