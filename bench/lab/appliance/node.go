package appliance

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
)

// DefaultAdmin is the admin API address of an appliance whose Config.AdminListen is empty.
const DefaultAdmin = "127.0.0.1:9100"

// Config says how to run one appliance.
type Config struct {
	// Bin is the appliance program; New makes it absolute and checks that it exists.
	Bin string
	// NS is the lab node namespace it runs in.
	NS *lab.NS
	// Name is node.name in the config New writes (unused with ConfigPath).
	Name string
	// Peers are lab nodes the written config joins over gossip (NS itself is left out).
	Peers []*lab.NS
	// Dir holds lb.yaml, services.yaml, state.json and gossip.key (unused with ConfigPath).
	Dir string
	// ConfigPath, when set, is an existing config to run with: New writes neither config nor manifests.
	ConfigPath string
	// AdminListen is the admin API address ("" = DefaultAdmin); with ConfigPath it must match the file.
	AdminListen string
	// GossipKey is written to Dir/gossip.key (mode 0600) and named as the config's secretKeyFile;
	// "" = a new random key (NewGossipKey) for this node alone. Nodes of one cluster share one.
	GossipKey string
	// InsecureGossip writes cluster.insecure: true and no key instead (tests of that mode).
	InsecureGossip bool
	// Wrapper is argv run in front of Bin (taskset, nice).
	Wrapper []string
	// ExtraArgs follow `run --config <path>`.
	ExtraArgs []string
	// FreshState removes the state file before every start, so that each start allocates afresh.
	FreshState bool
	// HealthTimeout bounds Start's wait for /healthz (0 = 20 s).
	HealthTimeout time.Duration
	// AdminTimeout bounds each admin API request (0 = 2 s).
	AdminTimeout time.Duration
}

// Node is one appliance in a lab node namespace.
type Node struct {
	cfg   Config
	admin *http.Client

	mu   sync.Mutex // guards proc
	proc *lab.Process
}

// New checks cfg and, unless cfg.ConfigPath is set, writes the node's config and manifests into
// cfg.Dir. It does not start the appliance.
func New(cfg Config, manifests string) (*Node, error) {
	bin, err := Program(cfg.Bin)
	if err != nil {
		return nil, err
	}
	cfg.Bin = bin
	if cfg.AdminListen == "" {
		cfg.AdminListen = DefaultAdmin
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = 20 * time.Second
	}
	if cfg.AdminTimeout == 0 {
		cfg.AdminTimeout = 2 * time.Second
	}
	n := &Node{cfg: cfg, admin: lab.HTTPClient(cfg.NS)}
	n.admin.Timeout = cfg.AdminTimeout
	if cfg.ConfigPath != "" {
		return n, nil
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("config folder: %w", err)
	}
	keyFile := ""
	if !cfg.InsecureGossip {
		if cfg.GossipKey == "" {
			if cfg.GossipKey, err = NewGossipKey(); err != nil {
				return nil, err
			}
		}
		keyFile = "gossip.key"
		if err := os.WriteFile(filepath.Join(cfg.Dir, keyFile), []byte(cfg.GossipKey+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write gossip key: %w", err)
		}
	}
	n.cfg.ConfigPath = filepath.Join(cfg.Dir, "lb.yaml")
	text := lab.ApplianceConfig(cfg.Name, cfg.NS, cfg.Peers, cfg.AdminListen, keyFile)
	if err := os.WriteFile(n.cfg.ConfigPath, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("write config %s: %w", n.cfg.ConfigPath, err)
	}
	if err := n.WriteManifests(manifests); err != nil {
		return nil, err
	}
	return n, nil
}

// NewGossipKey returns a new random gossip key in the text form key files hold (base64 of 32
// bytes, as `appliance keygen` prints it).
func NewGossipKey() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k[:]), nil
}

// Program returns the absolute path of the appliance program at path, or an error when there is none.
func Program(path string) (string, error) {
	bin, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("appliance program %s: %w", path, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("appliance program: %w (run make build)", err)
	}
	return bin, nil
}

// Preflight is the check before a measuring run that starts appliances in a lab: it fails with the
// error why unless the caller is root, creates the output folder outDir, and returns the absolute path
// of the appliance program at path.
func Preflight(path, outDir, why string) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New(why)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("output folder: %w", err)
	}
	return Program(path)
}

// Name is the appliance's node name.
func (n *Node) Name() string { return n.cfg.Name }

// NS is the namespace it runs in.
func (n *Node) NS() *lab.NS { return n.cfg.NS }

// AdminAddr is its admin API address (host:port inside NS).
func (n *Node) AdminAddr() string { return n.cfg.AdminListen }

// Admin is an HTTP client whose connections are made inside NS.
func (n *Node) Admin() *http.Client { return n.admin }

// Process is the running (or last) appliance process; nil before the first Start.
func (n *Node) Process() *lab.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// WriteManifests replaces the node's services.yaml atomically (the appliance reloads it).
func (n *Node) WriteManifests(manifests string) error {
	path := filepath.Join(filepath.Dir(n.cfg.ConfigPath), "services.yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(manifests), 0o644); err != nil {
		return fmt.Errorf("write manifests %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write manifests %s: %w", path, err)
	}
	return nil
}

// Start runs the appliance and waits until its /healthz answers 200, bounded by HealthTimeout and ctx.
// On failure the process is stopped and the error carries the tail of its output.
func (n *Node) Start(ctx context.Context) error {
	if n.cfg.FreshState {
		_ = os.Remove(filepath.Join(filepath.Dir(n.cfg.ConfigPath), "state.json"))
	}
	argv := append(append([]string(nil), n.cfg.Wrapper...), n.cfg.Bin, "run", "--config", n.cfg.ConfigPath)
	p, err := n.cfg.NS.Start(append(argv, n.cfg.ExtraArgs...)...)
	if err != nil {
		return fmt.Errorf("start appliance %s: %w", n.cfg.Name, err)
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	err = lab.Poll(ctx, n.cfg.HealthTimeout, func() error {
		select {
		case <-p.Done():
			return lab.Permanent{Err: fmt.Errorf("exited: %v", p.Err())}
		default:
		}
		resp, err := n.admin.Get("http://" + n.cfg.AdminListen + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop()
		return fmt.Errorf("appliance %s /healthz: %w\n%s", n.cfg.Name, err, tail(p.Output(), 4000))
	}
	return nil
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after 3 s: lab.Process.Stop).
func (n *Node) Stop() {
	if p := n.Process(); p != nil {
		p.Stop()
	}
}

// Kill sends SIGKILL and returns at once; Process().Done() is closed when it has gone.
func (n *Node) Kill() error {
	p := n.Process()
	if p == nil {
		return errors.New("kill: not started")
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s (pid %d): %w", n.cfg.Name, p.PID, err)
	}
	return nil
}

// Restart stops the appliance (SIGTERM) and starts it again with the same config.
func (n *Node) Restart(ctx context.Context) error {
	n.Stop()
	return n.Start(ctx)
}

// GetJSON decodes the admin API path into out.
func (n *Node) GetJSON(path string, out any) error {
	resp, err := n.admin.Get("http://" + n.cfg.AdminListen + path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.cfg.Name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", n.cfg.Name, path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", n.cfg.Name, path, err)
	}
	return nil
}

// Metrics returns the appliance's /metrics text.
func (n *Node) Metrics() (string, error) {
	resp, err := n.admin.Get("http://" + n.cfg.AdminListen + "/metrics")
	if err != nil {
		return "", fmt.Errorf("%s /metrics: %w", n.cfg.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("%s /metrics: %w", n.cfg.Name, err)
	}
	return string(b), nil
}

// VIPHolder asks the node which node holds the VIP of Service name ("" when none).
func (n *Node) VIPHolder(service string) (string, error) {
	var svcs []struct {
		Name      string `json:"name"`
		VIPHolder string `json:"vipHolder"`
	}
	if err := n.GetJSON("/api/v1/services", &svcs); err != nil {
		return "", err
	}
	for _, s := range svcs {
		if s.Name == service {
			return s.VIPHolder, nil
		}
	}
	return "", fmt.Errorf("%s: no Service %s", n.cfg.Name, service)
}

// AliveMembers counts the members the node reports alive (synced, not syncing).
func (n *Node) AliveMembers() (int, error) {
	var ms []struct {
		State string `json:"state"`
	}
	if err := n.GetJSON("/api/v1/members", &ms); err != nil {
		return 0, err
	}
	alive := 0
	for _, m := range ms {
		if m.State == "alive" {
			alive++
		}
	}
	return alive, nil
}

// tail is the last n bytes of s, marked with "…" when cut.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
