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
	// steering is every interface's steering maps (progs' in openAFXDP), and applied what they
	// hold (the last plan Sync accepted). Sync is called by the control goroutine only.
	steering []steeringTarget
	applied  steering
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
		a.steering = append(a.steering, steeringTarget{name: p.Name, maps: prog})
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

// Sync programs every interface's steering maps for plan (see steeringFor): all of them, or, on
// any error, none: the maps of every interface are put back to the previous plan's, which keeps
// serving.
func (a *afxdp) Sync(plan *dataplane.Plan) error {
	next := steeringFor(plan, a.ports, a.snatLo, a.snatHi)
	if err := applySteering(a.steering, a.applied, next); err != nil {
		return err
	}
	a.applied = next
	return nil
}

// steering is what one plan puts in every interface's steering maps.
type steering struct {
	frontends []steer.Frontend
	ranges    []steer.PortRange
	vips      []netip.Addr
}

// steeringFor is what plan puts in the steering maps: the plan's TCP/UDP frontends; ICMP echo
// and errors for ClusterIPs and held VIPs; for every node address its SNAT reply ports
// (snatLo-snatHi, TCP and UDP, one port range per address) and ICMP errors about translated
// flows; and ARP for held VIPs.
func steeringFor(plan *dataplane.Plan, ports []dataplane.Port, snatLo, snatHi uint16) steering {
	var s steering
	for _, f := range plan.Frontends() {
		s.frontends = append(s.frontends, steer.Frontend{Addr: f.Addr, Port: f.Port, Proto: f.Proto})
	}
	for _, addr := range plan.EchoAddrs() {
		s.frontends = append(s.frontends, steer.Frontend{Addr: addr, Proto: icmpFor(addr), Flags: steer.FlagEcho | steer.FlagICMPError})
	}
	seen := map[netip.Addr]bool{}
	for _, p := range ports {
		for _, pf := range p.Prefixes {
			addr := pf.Addr().Unmap()
			if seen[addr] {
				continue
			}
			seen[addr] = true
			s.frontends = append(s.frontends, steer.Frontend{Addr: addr, Proto: icmpFor(addr), Flags: steer.FlagICMPError})
			s.ranges = append(s.ranges, steer.PortRange{Addr: addr, First: snatLo, Last: snatHi})
		}
	}
	s.vips = plan.HeldVIPs()
	return s
}

// icmpFor is the ICMP protocol of addr's family (steering entries for IPv6 use ICMPv6).
func icmpFor(addr netip.Addr) uint8 {
	if addr.Unmap().Is4() {
		return packet.ProtoICMP
	}
	return steer.ProtoICMPv6
}

// steeringMaps is the part of a steering program that Sync writes (*steer.Program; tests
// fake it). Each call is all-or-nothing.
type steeringMaps interface {
	SetFrontends([]steer.Frontend) error
	SetPortRanges([]steer.PortRange) error
	SetVIPs([]netip.Addr) error
}

// steeringTarget is one interface's steering maps.
type steeringTarget struct {
	name string
	maps steeringMaps
}

// applySteering writes next into every target. Each Set call is all-or-nothing but the calls
// over several maps and interfaces are not, so on the first error every target is put back to
// prev (what they held before) and the error is returned, joined with any failure to restore.
func applySteering(targets []steeringTarget, prev, next steering) error {
	for _, t := range targets {
		if err := writeSteering(t.maps, next); err != nil {
			err = fmt.Errorf("steering on %s: %w", t.name, err)
			var rerrs []error
			for _, r := range targets {
				if rerr := writeSteering(r.maps, prev); rerr != nil {
					rerrs = append(rerrs, fmt.Errorf("restore the previous steering on %s: %w", r.name, rerr))
				}
			}
			return errors.Join(append([]error{err}, rerrs...)...)
		}
	}
	return nil
}

// writeSteering writes s into one program's maps. Port ranges go before frontends and VIPs
// after them, so that a refusal (the frontend map full) comes before the VIPs' ARP changes.
func writeSteering(m steeringMaps, s steering) error {
	if err := m.SetPortRanges(s.ranges); err != nil {
		return err
	}
	if err := m.SetFrontends(s.frontends); err != nil {
		return err
	}
	return m.SetVIPs(s.vips)
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
	a.progs, a.socks, a.steering = nil, nil, nil
	return errors.Join(errs...)
}

// Describe and Collect export the layer's metrics (see ioCollector).
func (a *afxdp) Describe(ch chan<- *prometheus.Desc) { newIOCollector(a).Describe(ch) }

// Collect implements prometheus.Collector.
func (a *afxdp) Collect(ch chan<- prometheus.Metric) { newIOCollector(a).Collect(ch) }
