package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
	"github.com/xdpsvc/lb/bench/tstest"
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

// node is an appliance running in a lab node namespace, with test-failing shorthands for the
// driver's admin API calls.
type node struct {
	*appliance.Node
	t  *testing.T
	ns *lab.NS
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
	tstest.RequireRoot(t)
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = nodes, 1, backends, clusterClients
	l := lab.New(t, spec)
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		t.Fatalf("start backends: %v", err)
	}
	return l
}

// newNode writes the config of lab node ns (named lb-<index>, joining every other lab node, with
// gossip key key when not empty) and manifests; it does not start the appliance. The appliance is
// stopped when the test ends, and its output logged when the test failed.
func newNode(t *testing.T, l *lab.Lab, ns *lab.NS, manifests, key string) *node {
	t.Helper()
	an, err := appliance.New(appliance.Config{
		Bin: applianceBinary(t), NS: ns, Name: fmt.Sprintf("lb-%d", ns.Index), Peers: l.Nodes, Dir: t.TempDir(),
		GossipKey: key, HealthTimeout: 20 * time.Second, AdminTimeout: 10 * time.Second,
	}, manifests)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{Node: an, t: t, ns: ns}
	t.Cleanup(func() {
		n.Stop()
		if p := n.Process(); p != nil && t.Failed() {
			t.Logf("appliance %s output:\n%s", n.name(), p.Output())
		}
	})
	return n
}

// startCluster runs the appliance on every node of the lab at once (they join each other) and
// waits until each is healthy. keys, when given, are the nodes' gossip keys; by default they share one.
func startCluster(t *testing.T, l *lab.Lab, manifests string, keys ...string) []*node {
	t.Helper()
	var nodes []*node
	shared, err := appliance.NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	for i, ns := range l.Nodes {
		key := shared
		if i < len(keys) {
			key = keys[i]
		}
		nodes = append(nodes, newNode(t, l, ns, manifests, key))
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Start(t.Context()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// name is the node's appliance name (node.name in its config).
func (n *node) name() string { return n.Name() }

// startNode writes the config and manifests and runs the appliance in lab node i (0-based).
func startNode(t *testing.T, l *lab.Lab, i int, manifests string) *node {
	t.Helper()
	n := newNode(t, l, l.Nodes[i], manifests, "")
	n.start()
	return n
}

// start runs the appliance (again) and waits until it is healthy.
func (n *node) start() {
	n.t.Helper()
	if err := n.Start(n.t.Context()); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) writeManifests(m string) {
	n.t.Helper()
	if err := n.WriteManifests(m); err != nil {
		n.t.Fatal(err)
	}
}

// metrics returns the appliance's /metrics text.
func (n *node) metrics() string {
	n.t.Helper()
	m, err := n.Metrics()
	if err != nil {
		n.t.Fatal(err)
	}
	return m
}

// api decodes an admin API path into out.
func (n *node) api(path string, out any) {
	n.t.Helper()
	if err := n.GetJSON(path, out); err != nil {
		n.t.Fatal(err)
	}
}

// get fetches url from namespace ns and returns the body.
func get(ns *lab.NS, url string) (string, error) { return lab.GetText(ns, url, 3*time.Second) }

// aliveMembers counts the members a node reports alive (synced, not syncing).
func aliveMembers(n *node) int {
	n.t.Helper()
	alive, err := n.AliveMembers()
	if err != nil {
		n.t.Fatal(err)
	}
	return alive
}
