package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/tstest"
)

func TestSpecNormalize(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{name: "default", spec: DefaultSpec()},
		{name: "minimal", spec: Spec{Nodes: 1}},
		{name: "largest", spec: Spec{Nodes: 9, Clients: 100, Backends: 29, ClusterClients: 50, Queues: 16, GatewayNode: 9}},
		{name: "no nodes", spec: Spec{}, wantErr: "nodes: 0"},
		{name: "too many backends", spec: Spec{Nodes: 1, Backends: 30}, wantErr: "backends: 30"},
		{name: "gateway beyond nodes", spec: Spec{Nodes: 2, GatewayNode: 3}, wantErr: "gateway node: 3"},
		{name: "bad prefix", spec: Spec{Nodes: 1, Prefix: "Lab-1"}, wantErr: "prefix"},
		{name: "long prefix", spec: Spec{Nodes: 1, Prefix: "abcdefghi"}, wantErr: "prefix"},
		{name: "too many queues", spec: Spec{Nodes: 1, Queues: 17}, wantErr: "queues: 17"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.normalize()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("normalize error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestPlan checks the address plan of the largest lab: addresses unique and in their segments, names short.
func TestPlan(t *testing.T) {
	spec, err := Spec{Prefix: "labx1234", Nodes: 9, Clients: 100, Backends: 29, ClusterClients: 50}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	l := plan(spec)
	seenAddr, seenMAC, seenPort := map[string]string{}, map[string]string{}, map[string]string{}
	for _, n := range l.All() {
		if err := checkNSName(spec.Prefix, n.Name); err != nil {
			t.Errorf("namespace name: %v", err)
		}
		for _, i := range n.Ifaces {
			where := n.Name + "/" + i.Name
			seg := ExternalSegment
			if i.Bridge == ClusterBridge {
				seg = ClusterSegment
			}
			if !seg.Contains(i.Addr.Addr()) || i.Addr.Bits() != 24 {
				t.Errorf("%s: address %s not in %s", where, i.Addr, seg)
			}
			for _, name := range []string{i.Name, i.SwitchPort} {
				if len(name) > 15 {
					t.Errorf("%s: interface name %q longer than 15", where, name)
				}
			}
			for _, u := range []struct {
				seen map[string]string
				key  string
			}{{seenAddr, i.Addr.Addr().String()}, {seenMAC, i.MAC.String()}, {seenPort, i.SwitchPort}} {
				if prev, dup := u.seen[u.key]; dup {
					t.Errorf("%s: %s also used by %s", where, u.key, prev)
				}
				u.seen[u.key] = where
			}
			if _, dup := seenMAC[i.SwitchPortMAC.String()]; dup {
				t.Errorf("%s: switch port MAC %s reused", where, i.SwitchPortMAC)
			}
			seenMAC[i.SwitchPortMAC.String()] = where + " port"
		}
	}
	if got := l.Nodes[0].External().Addr.String(); got != "198.18.0.11/24" {
		t.Errorf("n1 external = %s, want 198.18.0.11/24", got)
	}
	if got := l.Backends[0].Addr().String(); got != "198.18.1.21" {
		t.Errorf("b1 = %s, want 198.18.1.21", got)
	}
	if got := l.ClusterClients[0].Addr().String(); got != "198.18.1.50" {
		t.Errorf("k1 = %s, want 198.18.1.50", got)
	}
	if got := l.Clients[0].Addr().String(); got != "198.18.0.100" {
		t.Errorf("c1 = %s, want 198.18.0.100", got)
	}
}

// nsExists reports whether a named namespace exists.
func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// namespacesWithPrefix lists `ip netns list` entries of a lab.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			found = append(found, f[0])
		}
	}
	return found
}

func TestLabConnectivity(t *testing.T) {
	l := New(t, Spec{Nodes: 2, Clients: 1, Backends: 2, ClusterClients: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	n1, c1, k1 := l.Nodes[0], l.Clients[0], l.ClusterClients[0]

	t.Run("client reaches node external address", func(t *testing.T) {
		ln, err := n1.Listen("tcp4", n1.External().Addr.Addr().String()+":7946")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		c, err := Dial(c1, "tcp4", "198.18.0.11:7946")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.RemoteAddr().String(); got != "198.18.0.11:7946" {
			t.Errorf("remote = %s", got)
		}
		if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "198.18.0.100" {
			t.Errorf("client address = %s, want 198.18.0.100", got)
		}
		roundTrip(t, c, "ping\n", "ping\n")
	})

	servers, err := l.StartBackends(backend.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("backend HTTP from in-cluster client", func(t *testing.T) {
		hc := HTTPClient(k1)
		for i, b := range l.Backends {
			resp, err := hc.Get("http://" + b.Addr().String() + ":8080/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := "backend " + b.Short + " " + b.Addr().String() + ":8080\n"
			if string(body) != want {
				t.Errorf("GET / on %s = %q, want %q", b.Name, body, want)
			}
			if servers[i].Stats().HTTPRequests == 0 {
				t.Errorf("%s counted no request", b.Short)
			}
		}
		resp, err := hc.Get("http://198.18.1.22:8080/whoami")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var who backend.WhoAmI
		if err := json.NewDecoder(resp.Body).Decode(&who); err != nil {
			t.Fatal(err)
		}
		if who.Backend != "b2" || !strings.HasPrefix(who.Remote, "198.18.1.50:") {
			t.Errorf("whoami = %+v, want backend b2 seeing 198.18.1.50", who)
		}
	})
	t.Run("UDP echo", func(t *testing.T) {
		c, err := Dial(k1, "udp4", "198.18.1.22:9000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, "hello", "b2 hello")
	})
	t.Run("TCP echo", func(t *testing.T) {
		c, err := Dial(k1, "tcp4", "198.18.1.21:7000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, "one", "one")
		roundTrip(t, c, "two", "two")
	})
	t.Run("routes", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			ns        *NS
			dst, want string
		}{
			{"client reaches VIP pool on-link", c1, "198.19.1.5", "198.19.1.5 dev eth0 "},
			{"backend default via gateway", l.Backends[0], "203.0.113.1", "via 198.18.1.11 dev eth0"},
			{"in-cluster client service CIDR via gateway", k1, "198.19.0.10", "via 198.18.1.11 dev eth0"},
			{"backend reaches SNAT address on-link", l.Backends[0], "198.18.1.12", "198.18.1.12 dev eth0 "},
		} {
			out, err := tc.ns.Run(ctx, "ip", "route", "get", tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s: ip route get %s = %q, want %q", tc.name, tc.dst, out, tc.want)
			}
		}
	})
	t.Run("node sysctls and offloads", func(t *testing.T) { checkNodeSettings(t, ctx, l) })
}

// roundTrip writes msg and expects want back within 5 s.
func roundTrip(t *testing.T, c net.Conn, msg, want string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(want)+64)
	n, err := io.ReadAtLeast(c, buf, len(want))
	if err != nil && !(errors.Is(err, io.ErrShortBuffer)) {
		if n == 0 {
			t.Fatalf("read reply to %q: %v", msg, err)
		}
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("reply to %q = %q, want %q", msg, got, want)
	}
}

func TestStream(t *testing.T) {
	l := New(t, Spec{Nodes: 1, Backends: 1, ClusterClients: 1})
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := newStreamRequest("http://198.18.1.21:8080/stream", pr)
	resp, err := HTTPClient(l.ClusterClients[0]).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "backend b1 stream\n" {
		t.Fatalf("stream greeting = %q, %v", line, err)
	}
	for _, msg := range []string{"first\n", "second\n"} {
		io.WriteString(pw, msg)
		got, err := r.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("stream echo = %q, %v; want %q", got, err, msg)
		}
	}
}

func TestProcessesStoppedOnDown(t *testing.T) {
	tstest.RequireRoot(t)
	l, err := Up(t.Context(), Spec{Nodes: 1, Backends: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	p, err := l.Backends[0].Start("sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	// A program started behind the lab's back in one of its namespaces is removed too.
	stray := exec.Command("ip", "netns", "exec", l.Nodes[0].Name, "sleep", "30")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan struct{})
	go func() { stray.Wait(); close(strayDone) }()
	st, err := ReadState(l.Spec.StateDir, l.Prefix())
	if err != nil || len(st.Processes) != 1 || st.Processes[0].PID != p.PID {
		t.Fatalf("state = %+v, %v; want process %d recorded", st, err, p.PID)
	}
	start := time.Now()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("started process still running after Down")
	}
	select {
	case <-strayDone:
	case <-time.After(5 * time.Second):
		t.Error("stray process in the node namespace still running after Down")
		stray.Process.Kill()
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Down took %v", d)
	}
	if got := namespacesWithPrefix(t, l.Prefix()); len(got) != 0 {
		t.Errorf("namespaces left after Down: %v", got)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// failingTB is a testing.TB whose test fails midway: it collects Cleanup functions and ends the goroutine on
// Fatal, like the testing package does.
type failingTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (f *failingTB) Helper()             {}
func (f *failingTB) Logf(string, ...any) {}
func (f *failingTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *failingTB) Errorf(string, ...any) { f.mu.Lock(); f.failed = true; f.mu.Unlock() }
func (f *failingTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func TestDownAfterFailedTest(t *testing.T) {
	tstest.RequireRoot(t)
	ftb := &failingTB{TB: t}
	var prefix string
	done := make(chan struct{})
	go func() {
		defer close(done)
		l := New(ftb, Spec{Nodes: 2, Clients: 1, Backends: 1, ClusterClients: 1})
		prefix = l.Prefix()
		if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
			return
		}
		if _, err := l.Backends[0].Start("sleep", "30"); err != nil {
			return
		}
		ftb.Fatalf("simulated failure midway")
	}()
	<-done
	if prefix == "" || !ftb.failed {
		t.Fatalf("simulated test did not reach its failure (prefix %q)", prefix)
	}
	if got := namespacesWithPrefix(t, prefix); len(got) != 6 {
		t.Fatalf("before cleanup: %d namespaces %v, want 6", len(got), got)
	}
	for i := len(ftb.cleanups) - 1; i >= 0; i-- {
		ftb.cleanups[i]()
	}
	if got := namespacesWithPrefix(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after cleanup of a failed test: %v", got)
	}
	if _, err := os.Stat(statePath(DefaultStateDir, prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

func TestUpFailureCleansUp(t *testing.T) {
	tstest.RequireRoot(t)
	spec := Spec{Nodes: 2, Backends: 2, failAfterNamespaces: 3}
	spec.Prefix = RandomPrefix()
	_, err := Up(t.Context(), spec)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Up = %v, want the injected failure", err)
	}
	if got := namespacesWithPrefix(t, spec.Prefix); len(got) != 0 {
		t.Errorf("namespaces left after a failed Up: %v", got)
	}
	if _, err := os.Stat(statePath(DefaultStateDir, spec.Prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

func TestTwoLabsDoNotCollide(t *testing.T) {
	tstest.RequireRoot(t)
	var labs [2]*Lab
	var wg sync.WaitGroup
	var errs [2]error
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labs[i], errs[i] = Up(t.Context(), Spec{Nodes: 1, Clients: 1})
		}()
	}
	wg.Wait()
	for i, l := range labs {
		if l != nil {
			t.Cleanup(func() { l.Down() })
		}
		if errs[i] != nil {
			t.Fatalf("lab %d: %v", i, errs[i])
		}
	}
	if labs[0].Prefix() == labs[1].Prefix() {
		t.Fatalf("both labs got prefix %s", labs[0].Prefix())
	}
	// Same addresses in both labs, but a listener in lab 0 is not reachable from lab 1.
	ln, err := labs[0].Nodes[0].Listen("tcp4", "198.18.0.11:5000")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c, err := Dial(labs[0].Clients[0], "tcp4", "198.18.0.11:5000")
	if err != nil {
		t.Fatalf("lab 0 client to lab 0 node: %v", err)
	}
	c.Close()
	if c, err := Dial(labs[1].Clients[0], "tcp4", "198.18.0.11:5000"); err == nil {
		c.Close()
		t.Fatal("lab 1 client reached lab 0's listener")
	}
	if err := labs[0].Down(); err != nil {
		t.Fatal(err)
	}
	if got := namespacesWithPrefix(t, labs[1].Prefix()); len(got) != 3 {
		t.Errorf("lab 1 after lab 0 went down: %v, want 3 namespaces", got)
	}
}

func TestSweep(t *testing.T) {
	tstest.RequireRoot(t)
	dir := t.TempDir()
	dead, err := Up(t.Context(), Spec{Nodes: 1, Backends: 1, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Down() })
	live, err := Up(t.Context(), Spec{Nodes: 1, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Down() })
	persistent, err := Up(t.Context(), Spec{Nodes: 1, StateDir: dir, Persistent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { persistent.Down() })

	// Make "dead" look like the lab of a crashed run: its owner is a process that has exited.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(dir, dead.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	st.OwnerPID, st.OwnerStartTicks = exited.Process.Pid, 1
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	res, err := Sweep(dir)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	removed := map[string]bool{}
	for _, r := range res {
		removed[r.Prefix] = r.Removed
	}
	want := map[string]bool{dead.Prefix(): true, live.Prefix(): false, persistent.Prefix(): false}
	for p, w := range want {
		if removed[p] != w {
			t.Errorf("sweep of %s: removed = %v, want %v (%+v)", p, removed[p], w, res)
		}
	}
	if got := namespacesWithPrefix(t, dead.Prefix()); len(got) != 0 {
		t.Errorf("dead run's namespaces left: %v", got)
	}
	for _, l := range []*Lab{live, persistent} {
		if got := namespacesWithPrefix(t, l.Prefix()); len(got) != 2 {
			t.Errorf("live lab %s lost namespaces: %v", l.Prefix(), got)
		}
	}
}

func TestQueues(t *testing.T) {
	l := New(t, Spec{Nodes: 1, Clients: 1, Queues: 4})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, want string
		ns         *NS
		iface      string
	}{
		{"node external", "numtxqueues 4 numrxqueues 4", l.Nodes[0], NodeExternalIface},
		{"node cluster", "numtxqueues 4 numrxqueues 4", l.Nodes[0], NodeClusterIface},
		{"switch end of node", "numtxqueues 4 numrxqueues 4", l.Switch, l.Nodes[0].External().SwitchPort},
		{"client stays single-queue", "numtxqueues 1 numrxqueues 1", l.Clients[0], HostIface},
	} {
		out, err := tc.ns.Run(ctx, "ip", "-d", "link", "show", tc.iface)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %s lacks %q", tc.name, out, tc.want)
		}
	}
}

// checkNodeSettings checks what the lab sets on node 1 and its switch port: ip_forward and rp_filter
// off, offloads off, GRO on at the switch end, one queue and the planned MAC.
func checkNodeSettings(t *testing.T, ctx context.Context, l *Lab) {
	t.Helper()
	n1, c1 := l.Nodes[0], l.Clients[0]
	out, err := n1.Run(ctx, "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/ext0/rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, ",") != "0,0" {
		t.Errorf("ip_forward, rp_filter = %v, want 0,0", got)
	}
	out, err = c1.Run(ctx, "ethtool", "-k", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tx-checksumming: off", "tcp-segmentation-offload: off", "generic-segmentation-offload: off"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("c1 eth0 offloads: missing %q", f)
		}
	}
	out, err = l.Switch.Run(ctx, "ethtool", "-k", n1.External().SwitchPort)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "generic-receive-offload: on") {
		t.Errorf("switch port %s: GRO not on", n1.External().SwitchPort)
	}
	out, err = n1.Run(ctx, "ip", "-d", "link", "show", "ext0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "numtxqueues 1 numrxqueues 1") || !strings.Contains(string(out), n1.External().MAC.String()) {
		t.Errorf("ext0 = %s, want 1 queue and MAC %s", out, n1.External().MAC)
	}
}
