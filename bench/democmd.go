package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
)

// demoCommand brings up a one-node lab, runs the appliance with the configs/ examples, shows
// `appliance get services`, sends real requests through a ClusterIP (from inside the cluster),
// a NodePort and a LoadBalancer VIP (from outside), prints which backends answered and the
// appliance's counters, and tears everything down.
func demoCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("appliance", "bin/appliance", "the appliance program to run")
	configs := fs.String("configs", "configs", "folder with lab-node-a.yaml and its manifests")
	requests := fs.Int("requests", 6, "requests per Service type")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runDemo(*bin, *configs, *requests, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	return 0
}

type demoService struct {
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

func runDemo(bin, configs string, requests int, stdout, stderr io.Writer) error {
	step := func(format string, a ...any) { fmt.Fprintf(stdout, "\n== "+format+"\n", a...) }
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("appliance program: %w (run make build)", err)
	}
	// The appliance writes its state file next to its config: run from a copy of configs/.
	dir, err := os.MkdirTemp("", "appliance-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyDir(configs, dir); err != nil {
		return err
	}

	step("bringing up the lab (network namespaces, 198.18.0.0/15 only)")
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = 1, 1, 3, 1
	spec.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		step("tearing down")
		if err := l.Down(); err != nil {
			fmt.Fprintf(stderr, "lab down: %v\n", err)
		}
	}()
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	node, client, inCluster := l.Nodes[0], l.Clients[0], l.ClusterClients[0]
	fmt.Fprintf(stdout, "node %s: ext0 %s, int0 %s; client %s; in-cluster client %s; backends",
		node.Name, node.External().Addr, node.Cluster().Addr, client.Addr(), inCluster.Addr())
	for _, b := range l.Backends {
		fmt.Fprintf(stdout, " %s=%s", b.Short, b.Addr())
	}
	fmt.Fprintln(stdout)

	step("starting the appliance on AF_XDP: appliance run --config configs/lab-node-a.yaml")
	proc, err := node.Start(bin, "run", "--config", filepath.Join(dir, "lab-node-a.yaml"), "--log-format", "text")
	if err != nil {
		return err
	}
	admin := "127.0.0.1:9111"
	hc := lab.HTTPClient(node)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-proc.Done():
			return fmt.Errorf("appliance exited: %v\n%s", proc.Err(), proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("appliance not healthy after 20s:\n%s", proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(proc.Output()), "\n") {
		if strings.Contains(line, "data plane open") || strings.Contains(line, "serving") {
			fmt.Fprintln(stdout, line)
		}
	}

	step("appliance get services")
	out, err := node.Run(ctx, bin, "get", "services", "--admin", admin)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, string(out))
	js, err := node.Run(ctx, bin, "get", "services", "--admin", admin, "-o", "json")
	if err != nil {
		return err
	}
	var svcs []demoService
	if err := json.Unmarshal(js, &svcs); err != nil {
		return fmt.Errorf("decode services: %w", err)
	}

	type probe struct {
		title string
		from  *lab.NS
		url   string
	}
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
				client, fmt.Sprintf("http://%s:%d/", node.External().Addr.Addr(), p.NodePort)})
		case "LoadBalancer":
			if s.ExternalIP != "" {
				probes = append(probes, probe{fmt.Sprintf("LoadBalancer %s/%s VIP from external client %s", s.Namespace, s.Name, client.Addr()),
					client, fmt.Sprintf("http://%s:%d/", s.ExternalIP, p.Port)})
			}
		}
	}
	failed := 0
	for _, p := range probes {
		step("%s: GET %s x%d", p.title, p.url, requests)
		seen := map[string]int{}
		for range requests {
			body, err := demoGet(p.from, p.url)
			if err != nil {
				fmt.Fprintf(stdout, "   error: %v\n", err)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "   %s\n", body)
			seen[strings.Join(strings.Fields(body)[:min(2, len(strings.Fields(body)))], " ")]++
		}
		var names []string
		for k, v := range seen {
			names = append(names, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(names)
		fmt.Fprintf(stdout, "   answered by: %s\n", strings.Join(names, ", "))
	}

	step("appliance get flows")
	if out, err := node.Run(ctx, bin, "get", "flows", "--admin", admin, "--limit", "10"); err == nil {
		fmt.Fprint(stdout, string(out))
	}
	step("counters (/metrics)")
	if resp, err := hc.Get("http://" + admin + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "appliance_") && !strings.HasSuffix(line, " 0") {
				fmt.Fprintln(stdout, "  ", line)
			}
		}
	}
	proc.Stop()
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	if len(probes) == 0 {
		return fmt.Errorf("no Service to probe in %s", configs)
	}
	step("all three Service types answered")
	return nil
}

func demoGet(ns *lab.NS, url string) (string, error) {
	c := lab.HTTPClient(ns)
	c.Timeout = 3 * time.Second
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Close = true
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

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
