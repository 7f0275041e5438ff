package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/steer"
	"github.com/xdpsvc/lb/appliance/xsk"
	"github.com/xdpsvc/lb/packet"
)

// afxdp is the AF_XDP I/O layer: one steering program per interface (each has its own XSKMAP,
// indexed by queue) and one AF_XDP socket per queue of each interface. Worker q owns socket q
// of every interface, so no ring is shared between goroutines.
type afxdp struct {
	log      *slog.Logger
	ports    []dataplane.Port
	progs    []*steer.Program
	modes    []steer.Mode
	socks    [][]*xsk.Socket // [port][queue]
	queues   []Queue
	snatLo   uint16
	snatHi   uint16
	describe string
}

func openAFXDP(ports []dataplane.Port, dp *dataplane.DataPlane, log *slog.Logger) (IOLayer, error) {
	ctc := dp.ConntrackConfig()
	a := &afxdp{log: log, ports: ports, snatLo: ctc.SNATPortMin, snatHi: ctc.SNATPortMax}
	ok := false
	defer func() {
		if !ok {
			_ = a.Close()
		}
	}()
	nq := -1
	for _, p := range ports {
		scfg := steer.DefaultConfig()
		scfg.Logger = log
		prog, err := steer.Load(scfg)
		if err != nil {
			return nil, explainAFXDP(p.Name, err)
		}
		a.progs = append(a.progs, prog)
		xcfg := xsk.DefaultConfig()
		xcfg.Logger = log
		socks, err := xsk.OpenInterface(p.Name, p.Ifindex, prog, xcfg)
		if err != nil {
			return nil, explainAFXDP(p.Name, err)
		}
		a.socks = append(a.socks, socks)
		if nq >= 0 && len(socks) != nq {
			return nil, fmt.Errorf("interfaces %s and %s have %d and %d queues: the appliance needs the same number on every interface (ethtool -L)",
				ports[0].Name, p.Name, nq, len(socks))
		}
		nq = len(socks)
		// Attach after the sockets are registered, so no redirect finds an empty slot.
		mode, err := prog.Attach(p.Ifindex, steer.ModeAuto)
		if err != nil {
			return nil, explainAFXDP(p.Name, err)
		}
		a.modes = append(a.modes, mode)
	}
	var desc []string
	for i, p := range ports {
		desc = append(desc, fmt.Sprintf("%s: XDP %s, AF_XDP %s, %d queues", p.Name, a.modes[i], a.socks[i][0].Mode(), len(a.socks[i])))
	}
	a.describe = strings.Join(desc, "; ")
	for q := range nq {
		var io []dataplane.FrameIO
		var qs []*xsk.Socket
		for i := range ports {
			io = append(io, a.socks[i][q])
			qs = append(qs, a.socks[i][q])
		}
		poller := xsk.NewPoller(qs...)
		a.queues = append(a.queues, Queue{IO: io, Wait: poller.Wait})
	}
	ok = true
	return a, nil
}

// explainAFXDP turns an AF_XDP or XDP failure into what is missing and how to fix it.
func explainAFXDP(iface string, err error) error {
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "EPERM"):
		hint = "run as root or grant CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_SYS_ADMIN (AmbientCapabilities in the systemd unit)"
	case strings.Contains(msg, "not supported") || strings.Contains(msg, "EOPNOTSUPP"):
		hint = "the driver or kernel lacks AF_XDP/XDP support: a kernel ≥ 5.10 with CONFIG_XDP_SOCKETS is needed; zero-copy needs driver support, copy mode works everywhere"
	case strings.Contains(msg, "no such device"):
		hint = "check interfaces[].name in the config"
	case strings.Contains(msg, "resource busy") || strings.Contains(msg, "EBUSY"):
		hint = "another AF_XDP socket is bound to this queue (another appliance running?)"
	}
	if hint != "" {
		return fmt.Errorf("AF_XDP on %s: %w (%s)", iface, err, hint)
	}
	return fmt.Errorf("AF_XDP on %s: %w", iface, err)
}

func (a *afxdp) Queues() []Queue { return a.queues }
func (a *afxdp) Modes() string   { return a.describe }

// Sync programs every interface's steering maps: the plan's TCP/UDP frontends; ICMP echo and
// errors for ClusterIPs and held VIPs; for every node address its SNAT reply ports (TCP and UDP)
// and ICMP errors about translated flows; and ARP for held VIPs.
func (a *afxdp) Sync(plan *dataplane.Plan) error {
	var set []steer.Frontend
	for _, f := range plan.Frontends() {
		set = append(set, steer.Frontend{Addr: f.Addr, Port: f.Port, Proto: f.Proto})
	}
	for _, addr := range plan.EchoAddrs() {
		set = append(set, steer.Frontend{Addr: addr, Proto: packet.ProtoICMP, Flags: steer.FlagEcho | steer.FlagICMPError})
	}
	seen := map[netip.Addr]bool{}
	for _, p := range a.ports {
		for _, pf := range p.Prefixes {
			addr := pf.Addr()
			if seen[addr] {
				continue
			}
			seen[addr] = true
			set = append(set, steer.Frontend{Addr: addr, Proto: packet.ProtoICMP, Flags: steer.FlagICMPError})
			for port := uint32(a.snatLo); port <= uint32(a.snatHi); port++ {
				set = append(set,
					steer.Frontend{Addr: addr, Port: uint16(port), Proto: packet.ProtoTCP},
					steer.Frontend{Addr: addr, Port: uint16(port), Proto: packet.ProtoUDP})
			}
		}
	}
	var errs []error
	for i, prog := range a.progs {
		if err := prog.SetFrontends(set); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.ports[i].Name, err))
		}
		if err := prog.SetVIPs(plan.HeldVIPs()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.ports[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

// Close detaches the programs first (frames pass to the kernel again), then closes the sockets.
func (a *afxdp) Close() error {
	var errs []error
	for i, prog := range a.progs {
		if i < len(a.modes) {
			if err := prog.Detach(a.ports[i].Ifindex); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, socks := range a.socks {
		for _, s := range socks {
			if err := s.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, prog := range a.progs {
		if err := prog.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	a.progs, a.socks = nil, nil
	return errors.Join(errs...)
}

// Describe and Collect export the layer's metrics (see ioCollector).
func (a *afxdp) Describe(ch chan<- *prometheus.Desc) { newIOCollector(a).Describe(ch) }

// Collect implements prometheus.Collector.
func (a *afxdp) Collect(ch chan<- prometheus.Metric) { newIOCollector(a).Collect(ch) }
