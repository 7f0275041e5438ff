package agent

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
	"github.com/xdpsvc/lb/cluster"
)

func TestParseArgs(t *testing.T) {
	tcp := func(name string, port uint16) cluster.AgentPort {
		return cluster.AgentPort{Name: name, Port: port, Protocol: cluster.ProtocolTCP}
	}
	tests := []struct {
		name    string
		args    string
		want    []Service
		wantErr string
	}{
		{name: "one unnamed port", args: "--join 198.18.1.11:7946 --service default/web --port 8080",
			want: []Service{{Key: "default/web", Ports: []cluster.AgentPort{tcp("", 8080)}}}},
		{name: "named ports and udp", args: "--join 198.18.1.11:7946,198.18.1.12:7946 --service ns/dns --port dns=53/udp,dns=53 --port metrics=9153",
			want: []Service{{Key: "ns/dns", Ports: []cluster.AgentPort{{Name: "dns", Port: 53, Protocol: cluster.ProtocolUDP}, tcp("dns", 53), tcp("metrics", 9153)}}}},
		{name: "two services", args: "--join a:1 --service a/x --port 80 --service b/y --port http=8080",
			want: []Service{{Key: "a/x", Ports: []cluster.AgentPort{tcp("", 80)}}, {Key: "b/y", Ports: []cluster.AgentPort{tcp("http", 8080)}}}},
		{name: "no join", args: "--service a/x --port 80", wantErr: "--join"},
		{name: "bad join", args: "--join 198.18.1.11 --service a/x --port 80", wantErr: "--join"},
		{name: "no service", args: "--join a:1", wantErr: "--service"},
		{name: "port before service", args: "--join a:1 --port 80 --service a/x", wantErr: "--port before any --service"},
		{name: "service without port", args: "--join a:1 --service a/x --service b/y --port 80", wantErr: "no --port"},
		{name: "bad service key", args: "--join a:1 --service web --port 80", wantErr: "namespace/name"},
		{name: "upper-case service", args: "--join a:1 --service A/x --port 80", wantErr: "namespace/name"},
		{name: "service twice", args: "--join a:1 --service a/x --port 80 --service a/x --port 81", wantErr: "twice"},
		{name: "port zero", args: "--join a:1 --service a/x --port 0", wantErr: "1-65535"},
		{name: "port too big", args: "--join a:1 --service a/x --port 70000", wantErr: "1-65535"},
		{name: "bad port name", args: "--join a:1 --service a/x --port Web=80", wantErr: "DNS label"},
		{name: "bad protocol", args: "--join a:1 --service a/x --port 80/sctp", wantErr: "tcp or udp"},
		{name: "unnamed among several", args: "--join a:1 --service a/x --port 80,https=443", wantErr: "needs a name"},
		{name: "same port twice", args: "--join a:1 --service a/x --port h=80,h=81", wantErr: "twice"},
		{name: "bad address", args: "--join a:1 --service a/x --port 80 --address 198.18.1", wantErr: "--address"},
		{name: "multicast address", args: "--join a:1 --service a/x --port 80 --address 224.0.0.1", wantErr: "unicast"},
		{name: "bad bind", args: "--join a:1 --service a/x --port 80 --bind 198.18.1.2", wantErr: "--bind"},
		{name: "bind on another address", args: "--join a:1 --service a/x --port 80 --address 198.18.1.2 --bind 198.18.1.3:7947", wantErr: "own memberlist address"},
		{name: "bad interval", args: "--join a:1 --service a/x --port 80 --check-interval 0s", wantErr: "--check-interval"},
		{name: "stray argument", args: "--join a:1 --service a/x --port 80 extra", wantErr: "unexpected argument"},
		{name: "too big for metadata", args: "--join a:1 " + strings.Repeat("--service "+strings.Repeat("n", 60)+"/s", 1) +
			" --port " + func() string {
			var p []string
			for i := range 32 {
				p = append(p, "p"+strings.Repeat("x", 12)+string(rune('a'+i%26))+string(rune('a'+i/26))+"="+"1000"+string(rune('0'+i%10)))
			}
			return strings.Join(p, ",")
		}(), wantErr: "do not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseArgs(strings.Fields(tc.args), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Services, tc.want) {
				t.Fatalf("services %+v, want %+v", c.Services, tc.want)
			}
		})
	}
}

func TestParseArgsDefaultsAndKey(t *testing.T) {
	c, err := ParseArgs(strings.Fields("--join 127.0.0.1:7946 --service a/x --port 80 --address 127.0.0.1 --bind 127.0.0.1:7999 --name n1 --drain-timeout 3s --check-interval 200ms"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "n1" || c.Address != netip.MustParseAddr("127.0.0.1") || c.Bind.Port() != 7999 ||
		c.DrainTimeout != 3*time.Second || c.CheckInterval != 200*time.Millisecond {
		t.Fatalf("config %+v", c)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.SecretKeyFile = bad
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "want 16, 24 or 32") {
		t.Fatalf("bad key: err = %v", err)
	}
}

// lab is one appliance-role cluster node on loopback with fast timings.
func startAppliance(t *testing.T, key []byte) *cluster.Node {
	t.Helper()
	c := cluster.DefaultConfig()
	c.Name = "lb-a"
	c.BindAddr = netip.MustParseAddrPort("127.0.0.1:0")
	c.SecretKey = key
	n, err := cluster.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	return n
}

func startAgent(t *testing.T, app *cluster.Node, name string, port int, key []byte) *Agent {
	t.Helper()
	c := DefaultConfig()
	c.Name = name
	c.Join = []string{app.AddrPort().String()}
	c.Address = netip.MustParseAddr("127.0.0.1")
	c.Bind = netip.MustParseAddrPort("127.0.0.1:0")
	c.Services = []Service{{Key: "default/web", Ports: []cluster.AgentPort{{Port: uint16(port), Protocol: cluster.ProtocolTCP}}},
		{Key: "default/dns", Ports: []cluster.AgentPort{{Name: "dns", Port: 53, Protocol: cluster.ProtocolUDP}}}}
	c.CheckInterval = 50 * time.Millisecond
	c.DrainTimeout = 300 * time.Millisecond
	c.SecretKey = key
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Kill() })
	return a
}

func stateAt(app *cluster.Node, agent string) (map[string]cluster.EndpointState, bool) {
	for _, b := range app.Backends() {
		if b.Name == agent {
			out := map[string]cluster.EndpointState{}
			for _, e := range b.Endpoints {
				out[e.Service] = e.State
			}
			return out, true
		}
	}
	return nil, false
}

// TestAgentInCluster: endpoints appear at the appliance, readiness follows the local listener,
// Run drains on the first stop and leaves after the drain timeout; a killed agent's endpoints
// go once it is declared dead.
func TestAgentInCluster(t *testing.T) {
	key := []byte("0123456789abcdef")
	app := startAppliance(t, key)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	a := startAgent(t, app, "backend-1", port, key)
	want := func(st cluster.EndpointState) func() bool {
		return func() bool {
			m, ok := stateAt(app, "backend-1")
			return ok && m["default/web"] == st && m["default/dns"] == st
		}
	}
	tstest.EventuallyTrue(t, 10*time.Second, "endpoints ready at the appliance", want(cluster.EndpointReady))
	for _, b := range app.Backends() {
		if e := b.Endpoints[1]; e.Addr != netip.MustParseAddr("127.0.0.1") || e.Ports[0].Port != uint16(port) {
			t.Fatalf("announced %+v", e)
		}
	}

	ln.Close()
	tstest.EventuallyTrue(t, 5*time.Second, "not ready once the listener closed", want(cluster.EndpointNotReady))

	ln2, err := net.Listen("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	tstest.EventuallyTrue(t, 5*time.Second, "ready again", want(cluster.EndpointReady))

	stop := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() { done <- a.Run(stop) }()
	stop <- struct{}{}
	tstest.EventuallyTrue(t, 5*time.Second, "draining on stop", want(cluster.EndpointDraining))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not leave after the drain timeout")
	}
	tstest.EventuallyTrue(t, 3*time.Second, "gone after leaving", func() bool { _, ok := stateAt(app, "backend-1"); return !ok })
	for _, m := range app.Members() {
		if m.Name == "backend-1" && m.State != cluster.StateLeft {
			t.Fatalf("backend-1 is %v, want left", m.State)
		}
	}

	// A killed agent (no leave) disappears once declared dead.
	b := startAgent(t, app, "backend-2", port, key)
	tstest.EventuallyTrue(t, 10*time.Second, "second agent seen", func() bool { _, ok := stateAt(app, "backend-2"); return ok })
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "killed agent gone", func() bool { _, ok := stateAt(app, "backend-2"); return !ok })
}

func TestAgentWrongKeyIsRefused(t *testing.T) {
	app := startAppliance(t, []byte("0123456789abcdef"))
	a := startAgent(t, app, "intruder", 1, []byte("fedcba9876543210"))
	tstest.Never(t, time.Second, 50*time.Millisecond, "agent with the wrong key joined", func() bool {
		_, ok := stateAt(app, a.Name())
		return ok
	})
}
