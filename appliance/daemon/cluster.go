package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/cluster"
)

// version is the software version announced in the cluster metadata (cluster.Meta.Version,
// shown by `appliance get members`). `make build` stamps it with
// -X github.com/xdpsvc/lb/appliance/daemon.version=...; keep it a package-level string var.
var version = "dev"

// garpRepeats is when a gained VIP is announced again after the first burst: switches and
// hosts that missed one gratuitous ARP (a common complaint about MetalLB and kube-vip) catch a
// later one.
var garpRepeats = []time.Duration{250 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// defaultGossipPort is the port of the derived bind address (memberlist's customary port).
const defaultGossipPort = 7946

// clusterConfig is the cluster.Config the appliance config asks for: identity, bind address
// (clusterBind), join addresses, failure-detector timings, quorum, the secret key (already read
// by config.ClusterKey; nil: insecure) and the metadata announced to the other members (role,
// version, MACs and addresses of the ports, Syncing when there are peers to take flows from).
// The callbacks and the logger are left for the caller to set. It reads nothing.
func clusterConfig(cfg *config.Config, ports []dataplane.Port, secretKey []byte) (cluster.Config, error) {
	ccfg := cluster.DefaultConfig()
	ccfg.Name = cfg.Node.Name
	cc := cfg.Cluster
	bind, err := clusterBind(cc.Bind, ports)
	if err != nil {
		return cluster.Config{}, err
	}
	ccfg.BindAddr = bind
	// The cluster keeps joining these in the background (until one answers) and re-joins any
	// that is not an alive member later, which heals partitions.
	ccfg.Join = cc.Join
	ccfg.ProbeInterval, ccfg.ProbeTimeout, ccfg.SuspicionMult = cc.ProbeInterval, cc.ProbeTimeout, cc.SuspicionMult
	ccfg.GossipInterval, ccfg.PushPullInterval = cc.GossipInterval, cc.PushPullInterval
	ccfg.RequireQuorum, ccfg.ForgetDeadAfter = cc.RequireQuorum, cc.ForgetDeadAfter
	ccfg.ExpectedMembers = expectedMembers(cc, bind)
	ccfg.SecretKey = secretKey
	// With peers to join, start Syncing: no VIP is placed on this node until it has the others'
	// flows (flowsync.go's warmup clears the flag).
	ccfg.Meta = cluster.Meta{Role: cluster.RoleAppliance, Version: version, Syncing: ccfg.ExpectedMembers > 1 && cc.FlowSyncBytesPerSecond > 0}
	for _, p := range ports {
		ccfg.Meta.MACs = append(ccfg.Meta.MACs, p.MAC)
		for _, pf := range p.Prefixes {
			if p.Role != dataplane.RoleCluster {
				ccfg.Meta.ExternalIPs = append(ccfg.Meta.ExternalIPs, pf.Addr())
			}
			if p.Role != dataplane.RoleExternal {
				ccfg.Meta.ClusterIPs = append(ccfg.Meta.ClusterIPs, pf.Addr())
			}
		}
	}
	return ccfg, nil
}

// clusterBind is the address gossip listens on: cluster.bind when set, else the first address of
// the first port with role cluster (else of the first with role both), port defaultGossipPort,
// so that gossip is reachable on the cluster segment only, never on every interface. An error
// when bind is not IP:port, or when it is unset and no such port has an address.
func clusterBind(bind string, ports []dataplane.Port) (netip.AddrPort, error) {
	if bind != "" {
		ap, err := netip.ParseAddrPort(bind)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("cluster.bind %q: %w", bind, err)
		}
		return ap, nil
	}
	for _, role := range []dataplane.Role{dataplane.RoleCluster, dataplane.RoleBoth} {
		for _, p := range ports {
			if p.Role == role && len(p.Prefixes) > 0 {
				return netip.AddrPortFrom(p.Prefixes[0].Addr(), defaultGossipPort), nil
			}
		}
	}
	return netip.AddrPort{}, errors.New("cluster.bind: not set, and no interface with role cluster (or both) has an address to derive it from: " +
		"give the interface an address or set cluster.bind")
}

// startCluster joins the appliance cluster. It returns once the join list has been tried, so the
// first ownership computed already sees the members that answered.
func (n *node) startCluster() error {
	key, err := n.cfg.ClusterKey()
	if err != nil {
		return err
	}
	if key == nil {
		n.log.Warn("INSECURE: cluster gossip runs without a key (cluster.insecure: true): anyone who reaches " +
			"the gossip port can join as an appliance, take the VIPs and inject flows and health reports; " +
			"set cluster.secretKeyFile (make one with `appliance keygen FILE`) outside a lab")
	}
	ccfg, err := clusterConfig(n.cfg, n.ports, key)
	if err != nil {
		return err
	}
	ccfg.Logger = n.opts.Logger // the cluster adds its own node attribute
	ccfg.OnOwnership = func(ev cluster.OwnershipEvent) {
		n.metrics.ownershipChanges.WithLabelValues(ev.Change.String()).Inc()
		if ev.Change == cluster.Gained {
			n.kubeWatch.resync() // this node now writes the VIP's Service status
		}
		select {
		case n.events.ownership <- ev:
		default:
			// The control loop is busy; it recomputes from the node's state anyway.
			select {
			case n.events.ownership <- cluster.OwnershipEvent{}:
			default:
			}
		}
	}
	if !n.cfg.Services.FromAPI() {
		// Adopt what the cluster resolved (alloc.go); in API mode kube-apiserver allocates.
		ccfg.OnAllocations = func() { n.requestRefresh("cluster allocations changed") }
	}
	ccfg.OnFailover = func(vip netip.Addr, from string, d time.Duration) {
		n.metrics.failover.Observe(d.Seconds())
		n.log.Info("failover", "vip", vip.String(), "node", from, "took", d.String())
	}
	node, err := cluster.New(ccfg)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.cl = node
	if n.fsync != nil && n.cfg.Cluster.FlowSyncBytesPerSecond > 0 {
		// Before joining: a peer sends this node its flows as soon as it sees it.
		if err := n.fsync.handle(node); err != nil {
			return err
		}
	}
	if len(n.cfg.Cluster.Join) > 0 {
		if _, err := node.Join(n.cfg.Cluster.Join); err != nil {
			n.log.Info("no cluster member answered yet; joining in the background", "err", err)
		}
	}
	return nil
}

// expectedMembers is the quorum's membership floor: cluster.expectedMembers, or else this node
// plus every distinct join address other than its own bind address (a node that joins two
// peers is in a cluster of three; alone, it must not claim every VIP).
func expectedMembers(cc config.ClusterConfig, bind netip.AddrPort) int {
	if cc.ExpectedMembers > 0 {
		return cc.ExpectedMembers
	}
	peers := map[string]bool{}
	for _, j := range cc.Join {
		if j != bind.String() {
			peers[j] = true
		}
	}
	return len(peers) + 1
}

// clusterMetrics are the cluster's Prometheus metrics.
func (n *node) clusterMetrics() []prometheus.Collector {
	n.metrics.ownershipChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appliance_vip_ownership_changes_total", Help: "VIP ownership changes seen by this node, by kind (gained, lost, moved).",
	}, []string{"change"})
	n.metrics.failover = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "appliance_failover_duration_seconds",
		Help:    "From this node detecting a member's death to it announcing one of that member's VIPs.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5},
	})
	n.metrics.vipConflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "appliance_vip_conflicts_total",
		Help: "Another MAC seen answering ARP for a VIP this node held, by resolution (stepped_down: a member ranked above answered; kept: a member ranked below; unknown_mac: no member's MAC).",
	}, []string{"resolution"})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "appliance_vips_held", Help: "LoadBalancer VIPs this node announces.",
	}, func() float64 { return float64(len(n.dp.Plan().HeldVIPs())) })
	return append([]prometheus.Collector{n.metrics.ownershipChanges, n.metrics.failover, held}, n.agentMetrics()...)
}

// setClusterVIPs tells the cluster which VIPs exist (from the snapshot).
func (n *node) setClusterVIPs(snap *service.Snapshot) {
	var vips []netip.Addr
	for _, s := range snap.Services {
		if s.ExternalIP.IsValid() {
			vips = append(vips, s.ExternalIP)
		}
	}
	n.cl.SetVIPs(vips)
}

// ownershipChanged recompiles the plan with the VIPs this node holds now.
func (n *node) ownershipChanged() {
	if _, err := n.install(n.snapshot()); err != nil {
		n.log.Error("apply ownership change", "err", err)
	}
}

// install compiles snap into the data plane, reprograms the steering maps and announces the
// VIPs this node holds now and did not before. On error the previous plan keeps serving.
func (n *node) install(snap *service.Snapshot) (*dataplane.Plan, error) {
	old := n.dp.Plan()
	plan, err := n.dp.Apply(snap)
	if err != nil {
		return nil, err
	}
	if err := n.io.Sync(plan); err != nil {
		n.log.Error("steering program update", "err", err)
	}
	n.announceChanges(old, plan)
	return plan, nil
}

// announceChanges logs the VIPs released between two plans and announces the ones taken.
func (n *node) announceChanges(old, plan *dataplane.Plan) {
	had, has := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, v := range old.HeldVIPs() {
		had[v] = true
	}
	for _, v := range plan.HeldVIPs() {
		has[v] = true
		if !had[v] {
			n.log.Info("VIP taken", "vip", v.String())
			n.announceVIP(v)
		}
	}
	for v := range had {
		if !has[v] {
			n.log.Info("VIP released", "vip", v.String())
		}
	}
}

// announceVIP sends gratuitous ARP bursts for vip now and at garpRepeats, on every port (the
// VIP is also the floating SNAT address backends reply to on the cluster side), while this node
// still holds it.
func (n *node) announceVIP(vip netip.Addr) {
	// An ARP probe (RFC 5227) first: a node that still answers for the VIP replies, and the
	// workers report the reply as a conflict that watchConflicts resolves by rank. The node does
	// not wait for silence before serving: failover time counts.
	if n.cl.Holds(vip) {
		for _, p := range n.ports {
			if err := sendARPProbe(p, vip); err != nil {
				n.log.Warn("ARP probe", "vip", vip.String(), "iface", p.Name, "err", err)
			}
		}
	}
	send := func() {
		if !n.cl.Holds(vip) {
			return
		}
		for _, p := range n.ports {
			if err := sendGratuitousARP(p, vip); err != nil {
				n.log.Warn("gratuitous ARP", "vip", vip.String(), "iface", p.Name, "err", err)
			}
		}
	}
	send()
	for _, d := range garpRepeats {
		time.AfterFunc(d, send)
	}
}

// watchConflicts resolves the VIP conflicts the workers see (another MAC answering ARP for a
// VIP this node holds) by the cluster's rule (cluster.Node.Conflict): step down when a live
// member ranked above answers. When a live member ranked below answers, the views disagree for
// a moment and its own view will release the VIP: nothing to do but count. When a member this
// node sees dead answers (a partition: it is cut off and has not noticed its loss of quorum yet)
// or a MAC of no member does, this node announces the VIP again at once (at most once a second
// per VIP) so that hosts that learnt the other MAC come back.
func (n *node) watchConflicts(ctx context.Context) {
	lastAnnounce := map[netip.Addr]time.Time{}
	for {
		var c dataplane.VIPConflict
		select {
		case <-ctx.Done():
			return
		case c = <-n.dp.Conflicts():
		}
		res := n.cl.Conflict(c.VIP, c.MAC)
		if !res.Held {
			continue // already given up (a report from the same burst)
		}
		mac := net.HardwareAddr(c.MAC[:]).String()
		switch {
		case res.StepDown:
			n.metrics.vipConflicts.WithLabelValues("stepped_down").Inc()
			n.log.Warn("VIP conflict: a member ranked above answers; stepping down", "vip", c.VIP.String(), "member", res.Other, "mac", mac)
			continue
		case res.Other == "":
			n.metrics.vipConflicts.WithLabelValues("unknown_mac").Inc()
			n.log.Warn("VIP conflict: a MAC of no member answers for a held VIP; announcing it again", "vip", c.VIP.String(), "mac", mac)
		case res.OtherAlive:
			n.metrics.vipConflicts.WithLabelValues("kept").Inc()
			n.log.Info("VIP conflict: a live member ranked below answers; its view will release the VIP", "vip", c.VIP.String(), "member", res.Other, "mac", mac)
			continue
		default:
			n.metrics.vipConflicts.WithLabelValues("kept").Inc()
			n.log.Warn("VIP conflict: a member this node sees dead answers (partition); keeping the VIP and announcing it again", "vip", c.VIP.String(), "member", res.Other, "mac", mac)
		}
		if now := time.Now(); now.Sub(lastAnnounce[c.VIP]) >= time.Second {
			lastAnnounce[c.VIP] = now
			for _, p := range n.ports {
				if err := sendGratuitousARP(p, c.VIP); err != nil {
					n.log.Warn("gratuitous ARP", "vip", c.VIP.String(), "iface", p.Name, "err", err)
				}
			}
		}
	}
}

// members is the admin API's view of the cluster.
func (n *node) members() []admin.MemberStatus {
	var out []admin.MemberStatus
	for _, m := range n.cl.Members() {
		st := admin.MemberStatus{Name: m.Name, Address: m.Addr.String(), State: m.State.String()}
		if m.MetaValid {
			st.Version = m.Meta.Version
		}
		if m.State == cluster.StateAlive && m.MetaValid && m.Meta.Syncing {
			st.State = "syncing" // alive, taking in the others' flows; holds no VIP yet
		}
		for _, v := range m.VIPs {
			st.VIPs = append(st.VIPs, v.String())
		}
		out = append(out, st)
	}
	return out
}
