package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
)

// adminAddr is the admin API address of configs/lab-node-a.yaml.
const adminAddr = "127.0.0.1:9111"

// Config says what the demo runs.
type Config struct {
	// ApplianceBin is the appliance program (make build writes bin/appliance).
	ApplianceBin string
	// ConfigsDir is the folder with lab-node-a.yaml and its manifests.
	ConfigsDir string
	// Requests is how many requests go to each Service type.
	Requests int
	// Stdout receives what the demo shows; Stderr the lab's progress.
	Stdout, Stderr io.Writer
}

// service is the part of `appliance get services -o json` the demo reads.
type service struct {
	Namespace  string   `json:"namespace"`
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	ClusterIPs []string `json:"clusterIPs"`
	ExternalIP string   `json:"externalIP"`
	Ports      []struct {
		Name     string `json:"name"`
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
		NodePort int    `json:"nodePort"`
	} `json:"ports"`
}

// probe is one Service type asked from one vantage point.
type probe struct {
	title string
	from  *lab.NS
	url   string
}

// demo is one run's live state.
type demo struct {
	cfg  Config
	lab  *lab.Lab
	node *appliance.Node
}

func (d *demo) step(format string, a ...any) { fmt.Fprintf(d.cfg.Stdout, "\n== "+format+"\n", a...) }

// Run is the whole demo; it needs root. The lab is torn down before it returns, also on error.
func Run(ctx context.Context, cfg Config) error {
	d := &demo{cfg: cfg}
	bin, err := appliance.Program(cfg.ApplianceBin)
	if err != nil {
		return err
	}
	// The appliance writes its state file next to its config: run from a copy of configs/.
	dir, err := os.MkdirTemp("", "appliance-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyDir(cfg.ConfigsDir, dir); err != nil {
		return err
	}
	// The example config names a gossip key that every user makes once (README, Security).
	d.step("making the gossip key: appliance keygen gossip.key")
	os.Remove(filepath.Join(dir, "gossip.key")) // the demo's own, never a copy of the user's
	if out, err := exec.CommandContext(ctx, bin, "keygen", filepath.Join(dir, "gossip.key")).CombinedOutput(); err != nil {
		return fmt.Errorf("appliance keygen: %w: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = d.upLab(ctx)
	if d.lab != nil {
		defer func() {
			d.step("tearing down")
			if err := d.lab.Down(); err != nil {
				fmt.Fprintf(cfg.Stderr, "lab down: %v\n", err)
			}
		}()
	}
	if err != nil {
		return err
	}
	ns := d.lab.Nodes[0]
	d.step("starting the appliance on AF_XDP: appliance run --config configs/lab-node-a.yaml")
	d.node, err = appliance.New(appliance.Config{
		Bin: bin, NS: ns, Name: ns.Name, ConfigPath: filepath.Join(dir, "lab-node-a.yaml"), AdminListen: adminAddr,
		ExtraArgs: []string{"--log-format", "text"}, HealthTimeout: 20 * time.Second,
	}, "")
	if err != nil {
		return err
	}
	if err := d.node.Start(ctx); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(d.node.Process().Output()), "\n") {
		if strings.Contains(line, "data plane open") || strings.Contains(line, "serving") {
			fmt.Fprintln(cfg.Stdout, line)
		}
	}
	probes, err := d.services(ctx, bin)
	if err != nil {
		return err
	}
	failed := d.ask(probes)
	d.showState(ctx, bin)
	d.node.Stop()
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	if len(probes) == 0 {
		return fmt.Errorf("no Service to probe in %s", cfg.ConfigsDir)
	}
	d.step("all three Service types answered")
	return nil
}

// upLab brings up one node, one external client, one in-cluster client and three backends.
func (d *demo) upLab(ctx context.Context) error {
	d.step("bringing up the lab (network namespaces, 198.18.0.0/15 only)")
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = 1, 1, 3, 1
	spec.Logf = func(format string, a ...any) { fmt.Fprintf(d.cfg.Stderr, format+"\n", a...) }
	l, err := lab.Up(ctx, spec)
	if err != nil {
		return err
	}
	d.lab = l
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	node, client, inCluster := l.Nodes[0], l.Clients[0], l.ClusterClients[0]
	fmt.Fprintf(d.cfg.Stdout, "node %s: ext0 %s, int0 %s; client %s; in-cluster client %s; backends",
		node.Name, node.External().Addr, node.Cluster().Addr, client.Addr(), inCluster.Addr())
	for _, b := range l.Backends {
		fmt.Fprintf(d.cfg.Stdout, " %s=%s", b.Short, b.Addr())
	}
	fmt.Fprintln(d.cfg.Stdout)
	return nil
}

// services shows `appliance get services` and returns a probe per Service type it lists.
func (d *demo) services(ctx context.Context, bin string) ([]probe, error) {
	ns := d.node.NS()
	d.step("appliance get services")
	out, err := ns.Run(ctx, bin, "get", "services", "--admin", adminAddr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(d.cfg.Stdout, string(out))
	js, err := ns.Run(ctx, bin, "get", "services", "--admin", adminAddr, "-o", "json")
	if err != nil {
		return nil, err
	}
	var svcs []service
	if err := json.Unmarshal(js, &svcs); err != nil {
		return nil, fmt.Errorf("decode services: %w", err)
	}
	client, inCluster := d.lab.Clients[0], d.lab.ClusterClients[0]
	var probes []probe
	for _, s := range svcs {
		if len(s.Ports) == 0 || s.Ports[0].Protocol != "TCP" || len(s.ClusterIPs) == 0 || s.ClusterIPs[0] == "" {
			continue
		}
		p := s.Ports[0]
		switch s.Type {
		case "ClusterIP":
			probes = append(probes, probe{fmt.Sprintf("ClusterIP %s/%s from in-cluster client %s", s.Namespace, s.Name, inCluster.Addr()),
				inCluster, fmt.Sprintf("http://%s:%d/", s.ClusterIPs[0], p.Port)})
		case "NodePort":
			probes = append(probes, probe{fmt.Sprintf("NodePort %s/%s from external client %s", s.Namespace, s.Name, client.Addr()),
				client, fmt.Sprintf("http://%s:%d/", ns.External().Addr.Addr(), p.NodePort)})
		case "LoadBalancer":
			if s.ExternalIP != "" {
				probes = append(probes, probe{fmt.Sprintf("LoadBalancer %s/%s VIP from external client %s", s.Namespace, s.Name, client.Addr()),
					client, fmt.Sprintf("http://%s:%d/", s.ExternalIP, p.Port)})
			}
		}
	}
	return probes, nil
}

// ask sends Requests requests per probe, shows each answer and who answered, and returns how many failed.
func (d *demo) ask(probes []probe) int {
	failed := 0
	for _, p := range probes {
		d.step("%s: GET %s x%d", p.title, p.url, d.cfg.Requests)
		seen := map[string]int{}
		for range d.cfg.Requests {
			body, err := lab.GetText(p.from, p.url, 3*time.Second)
			if err != nil {
				fmt.Fprintf(d.cfg.Stdout, "   error: %v\n", err)
				failed++
				continue
			}
			fmt.Fprintf(d.cfg.Stdout, "   %s\n", body)
			f := strings.Fields(body)
			seen[strings.Join(f[:min(2, len(f))], " ")]++
		}
		var names []string
		for k, v := range seen {
			names = append(names, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(names)
		fmt.Fprintf(d.cfg.Stdout, "   answered by: %s\n", strings.Join(names, ", "))
	}
	return failed
}

// showState shows `appliance get flows` and the appliance's non-zero counters.
func (d *demo) showState(ctx context.Context, bin string) {
	d.step("appliance get flows")
	if out, err := d.node.NS().Run(ctx, bin, "get", "flows", "--admin", adminAddr, "--limit", "10"); err == nil {
		fmt.Fprint(d.cfg.Stdout, string(out))
	}
	d.step("counters (/metrics)")
	if text, err := d.node.Metrics(); err == nil {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "appliance_") && !strings.HasSuffix(line, " 0") {
				fmt.Fprintln(d.cfg.Stdout, "  ", line)
			}
		}
	}
}

// copyDir copies the files of folder src into dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
