package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// applianceBinary builds ./appliance once per test binary.
func applianceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "appliance-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "appliance")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/xdpsvc/lb/appliance")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build appliance: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// node is an appliance running in a lab node namespace.
type node struct {
	t       *testing.T
	lab     *lab.Lab
	ns      *lab.NS
	proc    *lab.Process
	dir     string
	cfgPath string
	svcPath string
	admin   *http.Client
	// key, when set, is the gossip key written to the node's cluster.secretKeyFile.
	key string
}

// startLab builds a lab with one appliance node, an external and an in-cluster client, and real
// backends.
func startLab(t *testing.T, backends int) *lab.Lab {
	return startLabNodes(t, 1, backends, 1)
}

// startLabNodes builds a lab with the given numbers of appliance nodes, backends (running the
// backend servers) and in-cluster clients, and one external client.
func startLabNodes(t *testing.T, nodes, backends, clusterClients int) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: skipped, the lab and AF_XDP need root")
	}
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = nodes, 1, backends, clusterClients
	l := lab.New(t, spec)
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		t.Fatalf("start backends: %v", err)
	}
	return l
}

// startCluster runs the appliance on every node of the lab at once (they join each other) and
// waits until each is healthy.
func startCluster(t *testing.T, l *lab.Lab, manifests string) []*node {
	t.Helper()
	var nodes []*node
	for _, ns := range l.Nodes {
		nodes = append(nodes, &node{t: t, lab: l, ns: ns, dir: t.TempDir()})
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.start(manifests) }()
	}
	wg.Wait()
	if t.Failed() { // a start failed in its goroutine
		t.FailNow()
	}
	return nodes
}

// name is the node's appliance name (node.name in its config).
func (n *node) name() string { return fmt.Sprintf("lb-%d", n.ns.Index) }

// startNode writes the config and manifests and runs the appliance in lab node i (0-based).
func startNode(t *testing.T, l *lab.Lab, i int, manifests string) *node {
	t.Helper()
	n := &node{t: t, lab: l, ns: l.Nodes[i], dir: t.TempDir()}
	n.start(manifests)
	return n
}

// start writes the node's config (joining every other lab node) and manifests, runs the
// appliance and waits until it is healthy.
func (n *node) start(manifests string) {
	t, l := n.t, n.lab
	t.Helper()
	bin := applianceBinary(t)
	n.cfgPath = filepath.Join(n.dir, "lb.yaml")
	n.svcPath = filepath.Join(n.dir, "services.yaml")
	name := n.name()
	keyFile := ""
	if n.key != "" {
		keyFile = "gossip.key"
		if err := os.WriteFile(filepath.Join(n.dir, keyFile), []byte(n.key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lab.ApplianceConfig(name, n.ns, l.Nodes, "", keyFile)
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n.writeManifests(manifests)
	p, err := n.ns.Start(bin, "run", "--config", n.cfgPath)
	if err != nil {
		t.Fatalf("start appliance: %v", err)
	}
	n.proc = p
	n.admin = lab.HTTPClient(n.ns)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("appliance output:\n%s", p.Output())
		}
	})
	waitFor(t, 20*time.Second, "appliance /healthz", func() error {
		select {
		case <-p.Done():
			return fmt.Errorf("appliance exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		resp, err := n.admin.Get("http://127.0.0.1:9100/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %s", resp.Status)
		}
		return nil
	})
}

func (n *node) writeManifests(m string) {
	n.t.Helper()
	tmp := n.svcPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(m), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, n.svcPath); err != nil {
		n.t.Fatal(err)
	}
}

// metrics returns the appliance's /metrics text.
func (n *node) metrics() string {
	n.t.Helper()
	resp, err := n.admin.Get("http://127.0.0.1:9100/metrics")
	if err != nil {
		n.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// api decodes an admin API path into out.
func (n *node) api(path string, out any) {
	n.t.Helper()
	resp, err := n.admin.Get("http://127.0.0.1:9100" + path)
	if err != nil {
		n.t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		n.t.Fatalf("%s: %v", path, err)
	}
}

// waitFor polls cond until it returns nil or the timeout passes (bounded; no bare sleeps).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 500*time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(delay)
	}
}

// get fetches url from namespace ns and returns the body.
func get(ns *lab.NS, url string) (string, error) {
	c := lab.HTTPClient(ns)
	c.Timeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Close = true
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// aliveMembers counts the members a node reports alive (synced, not syncing).
func aliveMembers(n *node) int {
	var ms []admin.MemberStatus
	n.api("/api/v1/members", &ms)
	alive := 0
	for _, mm := range ms {
		if mm.State == "alive" {
			alive++
		}
	}
	return alive
}
