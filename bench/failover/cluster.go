package failover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
)

// The lab and the Service under test.
const (
	labNodes       = 3
	labBackends    = 2
	serviceName    = "web"
	vipAddr        = "198.19.1.1"
	httpPort       = 80
	echoPort       = 7000
	failoverMetric = "appliance_failover_duration_seconds"
	maxAttempts    = 100_000 // per kill; the time bounds end the loop long before
)

// manifests is one LoadBalancer Service with a fixed VIP over the lab's backends: HTTP for the new
// connections, TCP echo for the long-lived ones.
func manifests(eps []netip.Addr) string {
	return lab.Manifests(lab.Service{
		Name: serviceName, LoadBalancerIP: vipAddr, ClusterIP: "198.19.0.10", Endpoints: lab.ReadyEndpoints(eps),
		Ports: []lab.ServicePort{
			{Name: "http", Protocol: "TCP", Port: httpPort, TargetPort: 8080},
			{Name: "tcpecho", Protocol: "TCP", Port: echoPort, TargetPort: 7000},
		},
	})
}

// setUp builds the lab, starts the backends and the three appliances and waits for one agreed owner.
// On failure it removes what it built.
func (r *runner) setUp(ctx context.Context) (err error) {
	defer func() {
		if err != nil && r.lab != nil {
			_ = r.lab.Down()
		}
	}()
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = labNodes, 1, labBackends, 0
	r.progress("building the lab (%d appliance nodes, %d backends, 1 client)", labNodes, labBackends)
	upCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	l, err := lab.Up(upCtx, spec)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab, r.client = l, l.Clients[0]
	r.res.Lab = l.Prefix()
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	if r.dir, err = os.MkdirTemp("", "bench-failover-"); err != nil {
		return fmt.Errorf("config folder: %w", err)
	}
	m := manifests(l.BackendAddrs())
	key, err := appliance.NewGossipKey() // one cluster, one key
	if err != nil {
		return err
	}
	for _, ns := range l.Nodes {
		name := fmt.Sprintf("lb-%d", ns.Index)
		n, err := appliance.New(appliance.Config{
			Bin: r.cfg.ApplianceBin, NS: ns, Name: name, Peers: l.Nodes, Dir: filepath.Join(r.dir, name),
			GossipKey: key, HealthTimeout: r.cfg.StartTimeout,
		}, m)
		if err != nil {
			return err
		}
		r.nodes = append(r.nodes, n)
	}
	r.progress("starting %d appliances (%s)", len(r.nodes), r.cfg.ApplianceBin)
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Go(func() { errs[i] = n.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	owner, err := r.waitSteady(ctx)
	if err != nil {
		return err
	}
	r.progress("cluster up: 3 alive members, VIP %s held by %s", vipAddr, owner)
	return nil
}

// failoverHistogram reads n's appliance_failover_duration_seconds.
func failoverHistogram(n *appliance.Node) (Histogram, error) {
	text, err := n.Metrics()
	if err != nil {
		return Histogram{}, err
	}
	h, err := ParseMetric([]byte(text), failoverMetric)
	if err != nil {
		return Histogram{}, fmt.Errorf("%s /metrics: %w", n.Name(), err)
	}
	return h, nil
}

// waitSteady waits until every node is healthy, sees all nodes alive and names the same VIP holder, and a
// GET through the VIP succeeds, twice in a row 300 ms apart. It returns the holder.
func (r *runner) waitSteady(ctx context.Context) (string, error) {
	var owner string
	streak := 0
	check := func() error {
		holders := map[string]bool{}
		for _, n := range r.nodes {
			alive, err := n.AliveMembers()
			if err != nil {
				return err
			}
			if alive != len(r.nodes) {
				return fmt.Errorf("%s sees %d alive members", n.Name(), alive)
			}
			h, err := n.VIPHolder(serviceName)
			if err != nil {
				return err
			}
			holders[h] = true
			owner = h
		}
		if len(holders) != 1 || holders[""] {
			return fmt.Errorf("VIP holders disagree: %v", holders)
		}
		return r.get(ctx, time.Second)
	}
	err := lab.Poll(ctx, r.cfg.SteadyTimeout, func() error {
		if err := check(); err != nil {
			streak = 0
			return err
		}
		if streak++; streak < 2 {
			_ = lab.Sleep(ctx, 300*time.Millisecond)
			return errors.New("steady once")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("wait for three members and one VIP owner that serves: %w", err)
	}
	return owner, nil
}

// get is one HTTP GET through the VIP from the client on a new connection.
func (r *runner) get(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: r.client.DialContext, DisableKeepAlives: true}}
	if err := fetch(ctx, hc, fmt.Sprintf("http://%s:%d/", vipAddr, httpPort), timeout); err != nil {
		return fmt.Errorf("GET through the VIP: %w", err)
	}
	return nil
}
