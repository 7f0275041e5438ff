package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type staticSource struct {
	healthErr error
	svcs      []ServiceStatus
	flows     []FlowStatus
}

func (s *staticSource) Healthy() error              { return s.healthErr }
func (s *staticSource) Services() []ServiceStatus   { return s.svcs }
func (s *staticSource) Endpoints() []EndpointStatus { return nil }
func (s *staticSource) Members() []MemberStatus {
	return []MemberStatus{{Name: "lb-a", Address: "198.18.0.11:7946", State: "alive"}}
}
func (s *staticSource) Flows(limit int) []FlowStatus { return s.flows[:min(limit, len(s.flows))] }

func startTest(t *testing.T, src Source) *Client {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	srv, err := Start(src, Config{Listen: "127.0.0.1:0", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return &Client{Base: srv.Addr()}
}

func TestServerRoundTrip(t *testing.T) {
	created := time.Now().Add(-90 * time.Second)
	src := &staticSource{
		svcs: []ServiceStatus{{Namespace: "default", Name: "web", Type: "LoadBalancer", ClusterIPs: []string{"198.19.0.10"},
			Pending: true, Created: created, Ports: []PortStatus{{Protocol: "TCP", Port: 80, NodePort: 30080, TargetPort: "8080"}}}},
		flows: []FlowStatus{{Protocol: "TCP"}, {Protocol: "UDP"}, {Protocol: "TCP"}},
	}
	c := startTest(t, src)
	ctx := t.Context()

	var svcs []ServiceStatus
	if err := c.Get(ctx, "/api/v1/services", &svcs); err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Name != "web" || svcs[0].Ports[0].NodePort != 30080 || !svcs[0].Pending {
		t.Fatalf("services round trip: %+v", svcs)
	}
	var flows []FlowStatus
	if err := c.Get(ctx, "/api/v1/flows?limit=2", &flows); err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("limit=2 gave %d flows", len(flows))
	}
	if err := c.Get(ctx, "/api/v1/flows?limit=x", &flows); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad limit: want a 400 error, got %v", err)
	}

	resp, err := http.Get("http://" + strings.TrimPrefix(c.Base, "http://") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), "appliance_test_total 3") {
		t.Fatalf("metrics missing counter:\n%s", buf.String())
	}

	var out bytes.Buffer
	if err := WriteServices(&out, svcs, created.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAMESPACE", "web", "LoadBalancer", "198.19.0.10", "<pending>", "80:30080/TCP", "90s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("services table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHealthzReportsUnhealthy(t *testing.T) {
	src := &staticSource{healthErr: errors.New("no AF_XDP socket bound")}
	c := startTest(t, src)
	resp, err := http.Get("http://" + c.Base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz status %d, want 503", resp.StatusCode)
	}
	src.healthErr = nil
	resp, err = http.Get("http://" + c.Base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz status %d, want 200", resp.StatusCode)
	}
}

func TestPortsColumnAndAge(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"no ports", PortsColumn(nil), "<none>"},
		{"cluster ip port", PortsColumn([]PortStatus{{Port: 53, Protocol: "UDP"}}), "53/UDP"},
		{"node port", PortsColumn([]PortStatus{{Port: 80, NodePort: 30080, Protocol: "TCP"}, {Port: 443, NodePort: 30443, Protocol: "TCP"}}), "80:30080/TCP,443:30443/TCP"},
		{"seconds", Age(now.Add(-45*time.Second), now), "45s"},
		{"minutes", Age(now.Add(-10*time.Minute), now), "10m"},
		{"hours", Age(now.Add(-5*time.Hour), now), "5h"},
		{"days", Age(now.Add(-72*time.Hour), now), "3d"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// limitSource records the limit the flows endpoint asks for.
type limitSource struct {
	staticSource
	asked atomic.Int64
}

func (s *limitSource) Flows(limit int) []FlowStatus { s.asked.Store(int64(limit)); return nil }

// TestFlowsLimitCapped: ?limit= and Config.MaxFlows are capped at MaxListLimit, so a request
// cannot make the node build an unbounded list.
func TestFlowsLimitCapped(t *testing.T) {
	src := &limitSource{}
	srv, err := Start(src, Config{Listen: "127.0.0.1:0", MaxFlows: 10 * MaxListLimit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(t.Context()) })
	c := &Client{Base: srv.Addr()}
	cases := []struct {
		name, query string
		want        int64
	}{
		{"default capped", "", MaxListLimit},
		{"small limit kept", "?limit=5", 5},
		{"huge limit capped", "?limit=1000000000", MaxListLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var flows []FlowStatus
			if err := c.Get(t.Context(), "/api/v1/flows"+tc.query, &flows); err != nil {
				t.Fatal(err)
			}
			if got := src.asked.Load(); got != tc.want {
				t.Fatalf("source asked for %d flows, want %d", got, tc.want)
			}
		})
	}
}

// TestIdleConnectionClosed: a keep-alive connection that sends nothing more is closed after
// IdleTimeout, and the server has its header, idle and write timeouts set.
func TestIdleConnectionClosed(t *testing.T) {
	srv, err := Start(&staticSource{}, Config{Listen: "127.0.0.1:0", IdleTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(t.Context()) })
	for _, hs := range srv.servers {
		if hs.ReadHeaderTimeout <= 0 || hs.IdleTimeout != 100*time.Millisecond || hs.WriteTimeout <= 0 {
			t.Fatalf("server timeouts: header %v idle %v write %v", hs.ReadHeaderTimeout, hs.IdleTimeout, hs.WriteTimeout)
		}
	}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
	}
}

// TestWriteMembersVersion: the members table has a VERSION column; a member whose metadata is
// unknown shows "-".
func TestWriteMembersVersion(t *testing.T) {
	var b strings.Builder
	err := WriteMembers(&b, []MemberStatus{
		{Name: "lb-a", Address: "198.18.0.11:7946", State: "alive", Version: "v1.4.0", VIPs: []string{"198.19.1.1"}},
		{Name: "lb-b", Address: "198.18.0.12:7946", State: "dead"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !slices.Equal(strings.Fields(lines[0]), []string{"NODE", "ADDRESS", "STATE", "VERSION", "VIPS"}) ||
		!slices.Equal(strings.Fields(lines[1]), []string{"lb-a", "198.18.0.11:7946", "alive", "v1.4.0", "198.19.1.1"}) ||
		!slices.Equal(strings.Fields(lines[2]), []string{"lb-b", "198.18.0.12:7946", "dead", "-", "<none>"}) {
		t.Errorf("members table:\n%s", b.String())
	}
}
