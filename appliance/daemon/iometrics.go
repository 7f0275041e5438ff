package daemon

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/appliance/steer"
)

// ioCollector exports the AF_XDP layer: the XDP and AF_XDP modes in use, the steering program's
// per-reason counters, and per-queue ring statistics and UMEM frame accounting.
type ioCollector struct {
	a *afxdp

	mode, steerFrames, xskStat, xskFrames *prometheus.Desc
}

func newIOCollector(a *afxdp) *ioCollector {
	return &ioCollector{
		a: a,
		mode: prometheus.NewDesc("appliance_xdp_mode_info", "XDP attach mode and AF_XDP bind mode in use per interface (value 1).",
			[]string{"iface", "xdp_mode", "xsk_mode"}, nil),
		steerFrames: prometheus.NewDesc("appliance_steering_frames_total", "Frames the XDP steering program redirected to AF_XDP or passed to the kernel, by reason.",
			[]string{"iface", "reason"}, nil),
		xskStat: prometheus.NewDesc("appliance_xsk_ring_events_total", "AF_XDP socket ring statistics per queue (XDP_STATISTICS and the socket's own counters).",
			[]string{"iface", "queue", "event"}, nil),
		xskFrames: prometheus.NewDesc("appliance_xsk_umem_frames", "UMEM frames per queue by where they are (free, fill, held, tx), as of the worker's last batch.",
			[]string{"iface", "queue", "state"}, nil),
	}
}

func (c *ioCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.mode
	ch <- c.steerFrames
	ch <- c.xskStat
	ch <- c.xskFrames
}

func (c *ioCollector) Collect(ch chan<- prometheus.Metric) {
	for i, p := range c.a.ports {
		if i >= len(c.a.progs) || i >= len(c.a.socks) || len(c.a.socks[i]) == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.mode, prometheus.GaugeValue, 1, p.Name, c.a.modes[i].String(), c.a.socks[i][0].Mode())
		if cnt, err := c.a.progs[i].Counters(); err == nil {
			for r := steer.Reason(0); r < steer.NumReasons; r++ {
				ch <- prometheus.MustNewConstMetric(c.steerFrames, prometheus.CounterValue, float64(cnt[r]), p.Name, r.String())
			}
		}
		for q, s := range c.a.socks[i] {
			qs := strconv.Itoa(q)
			st, _ := s.Stats()
			for _, e := range []struct {
				name string
				v    uint64
			}{
				{"rx_dropped", st.RxDropped}, {"rx_invalid_descs", st.RxInvalidDescs}, {"tx_invalid_descs", st.TxInvalidDescs},
				{"rx_ring_full", st.RxRingFull}, {"rx_fill_ring_empty_descs", st.RxFillRingEmptyDescs},
				{"tx_ring_empty_descs", st.TxRingEmptyDescs}, {"rx_frames", st.RxFrames}, {"tx_frames", st.TxFrames},
				{"tx_copies", st.TxCopies}, {"tx_dropped", st.TxDropped}, {"bad_frames", st.BadFrames},
				{"kicks", st.Kicks}, {"kick_errors", st.KickErrors},
			} {
				ch <- prometheus.MustNewConstMetric(c.xskStat, prometheus.CounterValue, float64(e.v), p.Name, qs, e.name)
			}
			a := s.PublishedAccounting()
			for _, f := range []struct {
				name string
				v    int
			}{{"free", a.Free}, {"fill", a.Fill}, {"held", a.Held}, {"tx", a.TX}} {
				ch <- prometheus.MustNewConstMetric(c.xskFrames, prometheus.GaugeValue, float64(f.v), p.Name, qs, f.name)
			}
		}
	}
}
