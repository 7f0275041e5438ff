package daemon

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/health"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/cluster"
)

// msgHealth carries this node's health.Report (health.AppendReport's versioned format).
// cluster.MsgUserMin+1 is flow sync (flowsync.go).
const msgHealth = cluster.MsgUserMin + 3

const (
	// healthResendInterval is how often the own report is sent again even when unchanged, so
	// that late joiners and members that missed a message converge.
	healthResendInterval = 3 * time.Second
	// healthMembersInterval is how often membership is re-read: a dead member's report stops
	// counting within about this long after the cluster declares it dead.
	healthMembersInterval = 250 * time.Millisecond
	// healthBroadcastMaxBytes is the largest report sent as a gossip broadcast (it must fit in
	// one memberlist UDP packet with room for other broadcasts: about 140 IPv4 endpoints down);
	// a larger one goes to each live appliance over TCP (cluster.Node.SendTo).
	healthBroadcastMaxBytes = 1000
)

// healthCheck probes the TCP endpoints of the served Services (health.Prober), gossips this
// node's report to the other appliances, resolves all reports with health.Resolve, and serves
// the endpoints resolved down as not ready (overlay). With healthChecks.enabled false it does
// nothing and overlay serves the snapshot as built.
//
// Concurrency: the prober and the gossip loop run on their own goroutines (start); receive runs
// on the cluster's dispatch goroutine; apply runs on the control goroutine; dial on the
// prober's. mu guards the view and the resolved down set, routeMu the route cache; the other
// fields are set before start and then only read.
type healthCheck struct {
	log     *slog.Logger
	refresh refreshRequester // asked to rebuild what is served when the down set changes
	gossip  healthGossip     // set by start, before the handler and the goroutines
	ports   []dataplane.Port // the appliance's interfaces (dial probes only through them)
	self    string
	enabled bool
	prober  *health.Prober
	dialer  net.Dialer
	kick    chan struct{} // own verdicts or the reports changed: resolve again

	mu   sync.Mutex
	view *health.View
	down map[netip.AddrPort]bool // resolved view; replaced, never modified in place
	gen  uint64                  // generation of the own report
	own  []netip.AddrPort        // own down set last published

	malformed, sendErrors, received prometheus.Counter
	refused                         *prometheus.CounterVec // by reason: Accept's refusals, stale ones aside

	// routes caches onOwnInterface's answer per address for routeCacheFor (probes run every
	// interval for every endpoint; one netlink route lookup each would dominate their cost).
	routeMu sync.Mutex
	routes  map[netip.Addr]routeVerdict
}

// routeVerdict is a cached onOwnInterface answer.
type routeVerdict struct {
	own     bool
	expires time.Time
}

// routeCacheFor bounds how long a route decision is reused (routes rarely change; a changed one
// is noticed within this time).
const routeCacheFor = 30 * time.Second

// newHealthCheck builds the health checking of node self from c (nothing runs until start).
func newHealthCheck(c config.HealthChecksConfig, self string, ports []dataplane.Port, refresh refreshRequester, log *slog.Logger) (*healthCheck, error) {
	h := &healthCheck{log: log, refresh: refresh, ports: ports, self: self, enabled: c.Enabled, kick: make(chan struct{}, 1),
		view: health.NewView(), down: map[netip.AddrPort]bool{}, gen: uint64(time.Now().UnixNano()),
		dialer: net.Dialer{Timeout: c.Timeout},
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_health_reports_malformed_total",
			Help: "Endpoint health reports from other appliances refused as malformed."}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_health_report_send_errors_total",
			Help: "Endpoint health reports that could not be sent to a member."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_health_reports_received_total",
			Help: "Newer endpoint health reports accepted from other appliances."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "appliance_health_reports_refused_total",
			Help: "Endpoint health reports refused, by reason: foreign (the sender is not a live appliance, or speaks for another), " +
				"future (generation too far ahead), view_full (too many origins held)."}, []string{"reason"}),
	}
	for _, r := range []string{refusedForeign, refusedFuture, refusedViewFull} {
		h.refused.WithLabelValues(r) // exported at 0 from the start
	}
	pc := health.DefaultConfig()
	pc.Interval, pc.Timeout = c.Interval, c.Timeout
	pc.HealthyThreshold, pc.UnhealthyThreshold = c.HealthyThreshold, c.UnhealthyThreshold
	pc.Dial = h.dial
	pc.OnChange = h.signal
	pc.Logger = log
	p, err := health.NewProber(pc)
	if err != nil {
		return nil, err
	}
	h.prober = p
	return h, nil
}

// collectors are the health metrics.
func (h *healthCheck) collectors() []prometheus.Collector {
	probes := func(result string, v func(health.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "appliance_health_probes_total",
			Help:        "Endpoint health probes (TCP connects) by result: ok, fail, or skipped (no data-plane path to the endpoint).",
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(v(h.prober.Stats())) })
	}
	down := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "appliance_endpoints_down",
		Help: "TCP endpoints served as not ready because the cluster's resolved health view says down."},
		func() float64 {
			h.mu.Lock()
			defer h.mu.Unlock()
			return float64(len(h.down))
		})
	return []prometheus.Collector{
		probes("ok", func(s health.Stats) uint64 { return s.OK }),
		probes("fail", func(s health.Stats) uint64 { return s.Failed }),
		probes("skipped", func(s health.Stats) uint64 { return s.Skipped }),
		down, h.malformed, h.sendErrors, h.received, h.refused,
	}
}

// start registers the report handler with gossip and runs the prober and the gossip loop on
// goroutines counted in wg, until ctx ends.
func (h *healthCheck) start(ctx context.Context, gossip healthGossip, wg *sync.WaitGroup) error {
	if !h.enabled {
		return nil
	}
	h.gossip = gossip
	if err := gossip.SetMessageLimit(msgHealth, msgLimit(health.MaxReportBytes)); err != nil {
		return err
	}
	if err := gossip.HandleFrom(msgHealth, h.receive); err != nil {
		return err
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		h.prober.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		h.loop(ctx)
	}()
	return nil
}

func (h *healthCheck) signal() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Reasons of appliance_health_reports_refused_total.
const (
	refusedForeign  = "foreign"
	refusedFuture   = "future"
	refusedViewFull = "view_full"
)

// receive handles a report (untrusted bytes) that member from sent, on the cluster's dispatch
// goroutine: health.View.Accept takes it only from a live appliance speaking for itself, with a
// plausible generation. A stale report (an older copy still in flight) is dropped uncounted.
func (h *healthCheck) receive(from string, p []byte) {
	r, err := health.DecodeReport(p)
	if err != nil {
		h.malformed.Inc()
		h.log.Debug("endpoint health: malformed report", "from", from, "err", err)
		return
	}
	live := h.gossip.IsLiveAppliance(from)
	h.mu.Lock()
	err = h.view.Accept(from, live, r, time.Now())
	h.mu.Unlock()
	switch {
	case err == nil:
		h.received.Inc()
		h.signal()
	case errors.Is(err, health.ErrReportStale):
	case errors.Is(err, health.ErrReportForeign):
		h.refused.WithLabelValues(refusedForeign).Inc()
		h.log.Debug("endpoint health: report refused", "from", from, "err", err)
	case errors.Is(err, health.ErrReportFuture):
		h.refused.WithLabelValues(refusedFuture).Inc()
		h.log.Debug("endpoint health: report refused", "from", from, "err", err)
	case errors.Is(err, health.ErrViewFull):
		h.refused.WithLabelValues(refusedViewFull).Inc()
		h.log.Debug("endpoint health: report refused", "from", from, "err", err)
	}
}

func (h *healthCheck) loop(ctx context.Context) {
	resend := time.NewTicker(healthResendInterval)
	defer resend.Stop()
	members := time.NewTicker(healthMembersInterval)
	defer members.Stop()
	h.update(true)
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		case <-members.C:
		case <-resend.C:
			force = true
		}
		h.update(force)
	}
}

// update publishes the own report when it changed (or when force), forgets the reports of
// every origin that is not a live appliance member (died, left, never one), resolves the view
// and asks for a refresh when the resolved down set changed.
func (h *healthCheck) update(force bool) {
	alive := h.appliances()
	own := h.prober.Down()
	h.mu.Lock()
	if !slices.Equal(own, h.own) {
		h.gen++
		h.own = own
		force = true
	}
	rep := health.Report{Origin: h.self, Generation: h.gen, Down: own}
	h.view.Merge(rep)
	h.view.Retain(alive)
	down := h.view.Resolve(alive)
	changed := !maps.Equal(down, h.down)
	if changed {
		h.down = down
	}
	h.mu.Unlock()
	if force {
		h.send(rep, alive)
	}
	if changed {
		h.log.Info("endpoint health view changed", "down", len(down))
		h.refresh.requestRefresh("endpoint health changed")
	}
}

// appliances returns the live appliance members, this node included.
func (h *healthCheck) appliances() []string {
	alive := []string{h.self}
	for _, m := range h.gossip.Members() {
		if m.Name != h.self && m.State == cluster.StateAlive && m.MetaValid && m.Meta.Role == cluster.RoleAppliance {
			alive = append(alive, m.Name)
		}
	}
	return alive
}

func (h *healthCheck) send(rep health.Report, alive []string) {
	if len(alive) < 2 {
		return
	}
	b, err := health.AppendReport(nil, rep)
	if err != nil {
		h.log.Error("endpoint health: encode report", "err", err)
		return
	}
	if len(b) <= healthBroadcastMaxBytes {
		// Gossip (a newer report replaces a queued older one); the periodic resend covers loss.
		if err := h.gossip.Broadcast(msgHealth, "report", b); err != nil {
			h.sendErrors.Inc()
		}
		return
	}
	for _, m := range alive {
		if m == h.self {
			continue
		}
		if err := h.gossip.SendTo(m, msgHealth, b); err != nil {
			h.sendErrors.Inc()
			h.log.Debug("endpoint health: send report", "member", m, "err", err)
		}
	}
}

// dial is the prober's probe: a TCP connect from the node's own stack, only to endpoints the
// kernel reaches through one of the appliance's own interfaces (the path the data plane uses)
// or on loopback. Anything else is skipped, so a probe never leaves through another interface
// (a management port, a default route).
func (h *healthCheck) dial(ctx context.Context, ep netip.AddrPort) error {
	if !ep.Addr().IsLoopback() && !h.onOwnInterface(ep.Addr()) {
		return health.ErrSkip
	}
	c, err := h.dialer.DialContext(ctx, "tcp", ep.String())
	if err != nil {
		return err
	}
	return c.Close()
}

// onOwnInterface reports whether the kernel routes a to one of the appliance's interfaces
// (cached for routeCacheFor).
func (h *healthCheck) onOwnInterface(a netip.Addr) bool {
	now := time.Now()
	h.routeMu.Lock()
	v, ok := h.routes[a]
	h.routeMu.Unlock()
	if ok && now.Before(v.expires) {
		return v.own
	}
	own := false
	if routes, err := netlink.RouteGet(net.IP(a.AsSlice())); err == nil {
	found:
		for _, r := range routes {
			for _, p := range h.ports {
				if p.Ifindex == r.LinkIndex {
					own = true
					break found
				}
			}
		}
	}
	h.routeMu.Lock()
	if h.routes == nil || len(h.routes) > 1<<16 {
		h.routes = map[netip.Addr]routeVerdict{} // bounded: endpoints come and go
	}
	h.routes[a] = routeVerdict{own: own, expires: now.Add(routeCacheFor)}
	h.routeMu.Unlock()
	return own
}

// setTargets gives the prober every distinct TCP endpoint of raw's load-balanced Services.
func (h *healthCheck) setTargets(raw *service.Snapshot) {
	seen := map[netip.AddrPort]bool{}
	var eps []netip.AddrPort
	for _, s := range raw.Services {
		if !s.LoadBalanced() {
			continue
		}
		for _, p := range s.Ports {
			if p.Protocol != service.TCP {
				continue
			}
			for _, e := range p.Endpoints {
				ep := netip.AddrPortFrom(e.Addr, e.Port)
				if !seen[ep] {
					seen[ep] = true
					eps = append(eps, ep)
				}
			}
		}
	}
	if h.prober.SetTargets(eps) {
		h.signal()
	}
}

// apply returns raw with the endpoints resolved down served as Ready=false, Serving=false:
// raw itself when nothing changes, else a copy of the Snapshot that shares every Service,
// Port and Endpoints slice it does not change (raw is never modified).
func (h *healthCheck) apply(raw *service.Snapshot) *service.Snapshot {
	if !h.enabled || raw == nil {
		return raw
	}
	h.setTargets(raw)
	h.mu.Lock()
	down := h.down
	h.mu.Unlock()
	return overlayHealth(raw, down)
}

// overlayHealth is apply's pure part.
func overlayHealth(raw *service.Snapshot, down map[netip.AddrPort]bool) *service.Snapshot {
	if len(down) == 0 {
		return raw
	}
	var out *service.Snapshot
	for si, s := range raw.Services {
		var ns *service.Service
		for pi := range s.Ports {
			p := &s.Ports[pi]
			if p.Protocol != service.TCP {
				continue
			}
			var eps []service.Endpoint
			for ei, e := range p.Endpoints {
				if !down[netip.AddrPortFrom(e.Addr, e.Port)] || (!e.Ready && !e.Serving) {
					continue
				}
				if eps == nil {
					eps = slices.Clone(p.Endpoints)
				}
				eps[ei].Ready, eps[ei].Serving = false, false
			}
			if eps == nil {
				continue
			}
			if ns == nil {
				c := *s
				c.Ports = slices.Clone(s.Ports)
				ns = &c
			}
			ns.Ports[pi].Endpoints = eps
		}
		if ns == nil {
			continue
		}
		if out == nil {
			c := *raw
			c.Services = slices.Clone(raw.Services)
			out = &c
		}
		out.Services[si] = ns
	}
	if out == nil {
		return raw
	}
	return out
}
