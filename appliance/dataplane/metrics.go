package dataplane

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

// Totals are the data plane's counters summed over workers.
type Totals struct {
	RX, TX, TXCopies, Batches       uint64
	NewFlows, ARPReplies, Echo      uint64
	Resets, Unreachables, ICMPXlate uint64
	Drops                           [NumReasons]uint64
}

// PortTotals are one Service port's counters summed over workers.
type PortTotals struct {
	Packets, Bytes, NewFlows uint64
}

func (dp *DataPlane) snapshotWorkers() []*Worker {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return append([]*Worker(nil), dp.workers...)
}

// Totals sums every worker's counters.
func (dp *DataPlane) Totals() Totals {
	var t Totals
	for _, w := range dp.snapshotWorkers() {
		c := w.c
		t.RX += c.rx.Load()
		t.TX += c.tx.Load()
		t.TXCopies += c.txCopies.Load()
		t.Batches += c.batches.Load()
		t.NewFlows += c.newFlows.Load()
		t.ARPReplies += c.arpReplies.Load()
		t.Echo += c.echoReplies.Load()
		t.Resets += c.resets.Load()
		t.Unreachables += c.unreachables.Load()
		t.ICMPXlate += c.icmpTranslated.Load()
		for i := range c.drops {
			t.Drops[i] += c.drops[i].Load()
		}
	}
	return t
}

// PortTotals sums the counters of one Service port over workers.
func (dp *DataPlane) PortTotals(id service.PortID) PortTotals {
	var t PortTotals
	for _, w := range dp.snapshotWorkers() {
		if int(id) < len(w.c.ports) {
			pc := &w.c.ports[id]
			t.Packets += pc.packets.Load()
			t.Bytes += pc.bytes.Load()
			t.NewFlows += pc.newFlows.Load()
		}
	}
	return t
}

// ActiveFlows counts live flows per Service port by walking the flow table (control path).
func (dp *DataPlane) ActiveFlows() map[service.PortID]uint64 {
	out := make(map[service.PortID]uint64)
	dp.ct.Range(time.Now().UnixNano(), func(f *conntrack.Flow) bool {
		if f.ExpiresIn > 0 {
			out[service.PortID(f.ServiceID)]++
		}
		return true
	})
	return out
}

// FlowView is one flow for the admin API.
type FlowView struct {
	Proto                           string
	Client, Frontend, Backend, SNAT string
	Service, State                  string
	ExpiresIn                       time.Duration
}

// Flows lists up to limit live flows (control path: walks the table).
func (dp *DataPlane) Flows(limit int) []FlowView {
	plan := dp.plan.Load()
	var out []FlowView
	dp.ct.Range(time.Now().UnixNano(), func(f *conntrack.Flow) bool {
		if len(out) >= limit {
			return false
		}
		if f.ExpiresIn <= 0 {
			return true
		}
		v := FlowView{
			Proto:     protoName(f.Orig.Proto),
			Client:    hostPort(&f.Orig, true),
			Frontend:  hostPort(&f.Orig, false),
			Backend:   hostPort(&f.Reply, true),
			State:     f.State.String(),
			ExpiresIn: f.ExpiresIn,
		}
		if f.Flags&conntrack.FlagNoSNAT == 0 {
			v.SNAT = hostPort(&f.Reply, false)
		}
		if idx, ok := plan.byID[service.PortID(f.ServiceID)]; ok {
			v.Service = plan.ports[idx].name
		}
		out = append(out, v)
		return true
	})
	return out
}

func hostPort(k *packet.FlowKey, src bool) string {
	addr, port := k.DstAddr, k.DstPort
	if src {
		addr, port = k.SrcAddr, k.SrcPort
	}
	var a netip.Addr
	if k.Family == packet.FamilyIPv6 {
		a = netip.AddrFrom16(addr)
	} else {
		a = netip.AddrFrom4([4]byte(addr[:4]))
	}
	return netip.AddrPortFrom(a, port).String()
}

// Collector exports the data plane's counters in Prometheus format. Names follow Prometheus
// conventions (appliance_ prefix, _total for counters, base units).
type Collector struct {
	dp *DataPlane

	rx, tx, txCopies, newFlows, replies, drops *prometheus.Desc
	svcPackets, svcBytes, svcNew, svcActive    *prometheus.Desc
	ctEntries, ctCapacity, ctEvents            *prometheus.Desc
}

// NewCollector returns a collector over dp.
func NewCollector(dp *DataPlane) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("appliance_"+name, help, labels, nil)
	}
	return &Collector{
		dp:         dp,
		rx:         d("received_packets_total", "Frames taken from AF_XDP RX rings."),
		tx:         d("transmitted_packets_total", "Frames queued on AF_XDP TX rings."),
		txCopies:   d("transmitted_copied_packets_total", "Frames copied into another interface's UMEM to leave there."),
		newFlows:   d("new_flows_total", "Flows inserted into the connection-tracking table."),
		replies:    d("local_replies_total", "Frames the appliance answered itself, by kind.", "kind"),
		drops:      d("dropped_packets_total", "Frames dropped (or answered instead of forwarded), by reason.", "reason"),
		svcPackets: d("service_packets_total", "Packets forwarded for a Service port, both directions.", "namespace", "service", "port"),
		svcBytes:   d("service_bytes_total", "Bytes forwarded for a Service port, both directions.", "namespace", "service", "port"),
		svcNew:     d("service_new_flows_total", "Flows opened to a Service port.", "namespace", "service", "port"),
		svcActive:  d("service_active_flows", "Live flows of a Service port.", "namespace", "service", "port"),
		ctEntries:  d("conntrack_entries", "Live flows in the connection-tracking table."),
		ctCapacity: d("conntrack_capacity_bytes", "Memory allocated for the connection-tracking table."),
		ctEvents:   d("conntrack_events_total", "Connection-tracking table events, by kind.", "event"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rx, c.tx, c.txCopies, c.newFlows, c.replies, c.drops, c.svcPackets,
		c.svcBytes, c.svcNew, c.svcActive, c.ctEntries, c.ctCapacity, c.ctEvents} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	t := c.dp.Totals()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.rx, t.RX)
	counter(c.tx, t.TX)
	counter(c.txCopies, t.TXCopies)
	counter(c.newFlows, t.NewFlows)
	counter(c.replies, t.ARPReplies, "arp")
	counter(c.replies, t.Echo, "icmp_echo")
	counter(c.replies, t.Resets, "tcp_reset")
	counter(c.replies, t.Unreachables, "icmp_port_unreachable")
	counter(c.replies, t.ICMPXlate, "icmp_error_translated")
	for r := Reason(1); r < NumReasons; r++ {
		counter(c.drops, t.Drops[r], r.String())
	}
	active := c.dp.ActiveFlows()
	plan := c.dp.plan.Load()
	for _, svc := range plan.Snapshot.Services {
		for _, p := range svc.Ports {
			if _, ok := plan.byID[p.ID]; !ok {
				continue
			}
			port := p.Name
			if port == "" {
				port = strconv.Itoa(int(p.Port)) + "/" + p.Protocol.String()
			}
			pt := c.dp.PortTotals(p.ID)
			counter(c.svcPackets, pt.Packets, svc.Namespace, svc.Name, port)
			counter(c.svcBytes, pt.Bytes, svc.Namespace, svc.Name, port)
			counter(c.svcNew, pt.NewFlows, svc.Namespace, svc.Name, port)
			gauge(c.svcActive, float64(active[p.ID]), svc.Namespace, svc.Name, port)
		}
	}
	st := c.dp.ct.Stats()
	gauge(c.ctEntries, float64(st.Live))
	gauge(c.ctCapacity, float64(c.dp.ct.MemoryBytes()))
	for _, e := range []struct {
		name string
		v    uint64
	}{{"inserted", st.Inserted}, {"full", st.Full}, {"no_port", st.NoPort}, {"clash", st.Clash},
		{"invalid", st.Invalid}, {"evicted", st.Evicted}, {"expired", st.Expired},
		{"snat_reclaimed", st.SNATReclaimed}} {
		counter(c.ctEvents, e.v, e.name)
	}
}
