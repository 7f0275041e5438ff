package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpsvc/lb/cluster"
)

// Agent is a running backend agent: a cluster member announcing endpoints.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	node *cluster.Node
	srv  *http.Server

	annMu     sync.Mutex // serialises announce: one SetMeta at a time, the newest state last
	mu        sync.Mutex
	announced cluster.EndpointState // last state SetMeta accepted (or the initial one)
	want      cluster.EndpointState // what the checks say (ready / not ready)
	draining  bool
	stopped   bool

	checks    *prometheus.CounterVec
	changes   prometheus.Counter
	readyNow  atomic.Bool
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New fills in the defaults of cfg (address, bind, name, key), checks the
// endpoints once, starts the cluster member (joining in the background) and
// the readiness checker.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Address.IsValid() {
		a, err := routeTo(cfg.Join[0])
		if err != nil {
			return nil, fmt.Errorf("agent address: %w (set --address)", err)
		}
		cfg.Address = a
	}
	if !cfg.Bind.IsValid() {
		cfg.Bind = netip.AddrPortFrom(cfg.Address, DefaultPort)
	}
	if err := cfg.Validate(); err != nil { // with the address and bind filled in
		return nil, err
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent name: %w (set --name)", err)
		}
		cfg.Name = host + "-" + cfg.Address.String()
	}
	if cfg.SecretKey == nil && cfg.SecretKeyFile != "" {
		k, err := readKey(cfg.SecretKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.SecretKey = k
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), done: make(chan struct{})}
	a.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appliance_agent_checks_total", Help: "TCP readiness checks of the agent's ports, by result (ok, fail).",
	}, []string{"result"})
	a.changes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "appliance_agent_announcements_total", Help: "Endpoint state changes announced to the cluster.",
	})
	a.want = a.check()
	a.announced = a.want
	a.readyNow.Store(a.want == cluster.EndpointReady)

	cc := cluster.DefaultConfig()
	cc.Name = cfg.Name
	cc.BindAddr = cfg.Bind
	if cfg.Bind.Addr().IsUnspecified() {
		// The appliances take endpoints only at the address the agent answers probes at.
		cc.AdvertiseAddr = netip.AddrPortFrom(cfg.Address, cfg.Bind.Port())
	}
	cc.Join = cfg.Join
	cc.SecretKey = cfg.SecretKey
	cc.Meta = cfg.meta(a.want)
	cc.Logger = cfg.Logger
	cc.RequireQuorum = false
	if cfg.Cluster != nil {
		cfg.Cluster(&cc)
	}
	node, err := cluster.New(cc)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Name, err)
	}
	a.node = node
	if cfg.Admin != "" {
		if err := a.startAdmin(); err != nil {
			_ = node.Shutdown()
			return nil, err
		}
	}
	a.log.Info("backend agent started", "address", cfg.Address.String(), "bind", node.AddrPort().String(),
		"join", cfg.Join, "services", len(cfg.Services), "state", a.want.String())
	a.wg.Add(1)
	go a.checkLoop()
	return a, nil
}

// Name returns the agent's member name.
func (a *Agent) Name() string { return a.cfg.Name }

// Address returns the announced endpoint address.
func (a *Agent) Address() netip.Addr { return a.cfg.Address }

// Node returns the agent's cluster member (for tests and status).
func (a *Agent) Node() *cluster.Node { return a.node }

// State returns the endpoint state last announced.
func (a *Agent) State() cluster.EndpointState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.announced
}

// routeTo returns the local address the kernel would use to reach hostport
// (a connected UDP socket sends nothing).
func routeTo(hostport string) (netip.Addr, error) {
	c, err := net.Dial("udp", hostport)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", hostport, err)
	}
	defer c.Close()
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return ap.Addr().Unmap(), nil
}

// check runs one round of readiness checks: ready when every TCP port
// accepts a connection on the endpoint address.
func (a *Agent) check() cluster.EndpointState {
	seen := map[uint16]bool{}
	state := cluster.EndpointReady
	for _, s := range a.cfg.Services {
		for _, p := range s.Ports {
			if p.Protocol != cluster.ProtocolTCP || seen[p.Port] {
				continue
			}
			seen[p.Port] = true
			addr := net.JoinHostPort(a.cfg.Address.String(), strconv.Itoa(int(p.Port)))
			c, err := net.DialTimeout("tcp", addr, a.cfg.CheckTimeout)
			if err != nil {
				a.checks.WithLabelValues("fail").Inc()
				state = cluster.EndpointNotReady
				continue
			}
			_ = c.Close()
			a.checks.WithLabelValues("ok").Inc()
		}
	}
	return state
}

func (a *Agent) checkLoop() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
		}
		st := a.check()
		a.readyNow.Store(st == cluster.EndpointReady)
		a.mu.Lock()
		a.want = st
		a.mu.Unlock()
		a.announce()
	}
}

// announce sends the current state if it differs from the one announced.
func (a *Agent) announce() {
	a.annMu.Lock()
	defer a.annMu.Unlock()
	a.mu.Lock()
	st := a.want
	if a.draining {
		st = cluster.EndpointDraining
	}
	if a.stopped || st == a.announced {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	if err := a.node.SetMeta(a.cfg.meta(st), a.cfg.AnnounceTimeout); err != nil {
		// Retried on the next check.
		a.log.Warn("announce endpoint state", "state", st.String(), "err", err)
		return
	}
	a.changes.Inc()
	a.mu.Lock()
	prev := a.announced
	a.announced = st
	a.mu.Unlock()
	a.log.Info("endpoint state", "state", st.String(), "previous", prev.String())
}

// Drain announces the endpoints draining: established flows keep going, new
// ones go to other endpoints. It cannot be undone.
func (a *Agent) Drain() {
	a.mu.Lock()
	a.draining = true
	a.mu.Unlock()
	a.announce()
}

// Leave stops the checks, leaves the cluster gracefully (the appliances drop
// the endpoints at once) and shuts down. Safe to call twice.
func (a *Agent) Leave() error {
	return a.stop(true)
}

// Kill stops without a leave message: to the cluster it looks like a crash.
func (a *Agent) Kill() error {
	return a.stop(false)
}

func (a *Agent) stop(leave bool) error {
	var err error
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
		close(a.done)
		a.wg.Wait()
		if leave {
			err = a.node.Close(a.cfg.AnnounceTimeout)
		} else {
			err = a.node.Shutdown()
		}
		if a.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = a.srv.Shutdown(ctx)
		}
		a.log.Info("backend agent stopped", "left", leave)
	})
	return err
}

// Run serves until the first value on stop (a SIGTERM or SIGINT), then
// drains for DrainTimeout or until a second value, then leaves. A closed
// stop channel counts as both.
func (a *Agent) Run(stop <-chan struct{}) error {
	select {
	case <-stop:
	case <-a.done:
		return errors.New("agent stopped")
	}
	a.log.Info("draining", "timeout", a.cfg.DrainTimeout.String())
	a.Drain()
	t := time.NewTimer(a.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
		a.log.Info("second signal: leaving now")
	}
	return a.Leave()
}

func (a *Agent) startAdmin() error {
	reg := prometheus.NewRegistry()
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "appliance_agent_ready", Help: "1 while every readiness check passes.",
	}, func() float64 {
		if a.readyNow.Load() {
			return 1
		}
		return 0
	})
	reg.MustRegister(a.checks, a.changes, ready)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s %s\n", a.cfg.Name, a.State())
	})
	ln, err := net.Listen("tcp", a.cfg.Admin)
	if err != nil {
		return fmt.Errorf("--admin %s: %w", a.cfg.Admin, err)
	}
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	return nil
}
