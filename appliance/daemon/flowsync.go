package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/cluster"
	"github.com/xdpsvc/lb/conntrack"
)

// msgFlows carries conntrack export records (conntrack.AppendExport's versioned format).
const msgFlows = cluster.MsgUserMin + 1

const (
	// flowSyncInterval is how often new and changed flows are sent to the other appliances.
	flowSyncInterval = 250 * time.Millisecond
	// flowSyncMaxBytes bounds one message (records are 41 or 89 bytes).
	flowSyncMaxBytes = 32 << 10
)

// flowSync sends this node's new and changed flows to every other appliance, and imports
// theirs, so that the node taking a VIP over already holds the flows' translations (SNAT port,
// backend) and established connections keep flowing. Imports are validated by conntrack
// (untrusted bytes); a malformed message is counted and dropped.
type flowSync struct {
	n                            *node
	sent, received, bad, skipped prometheus.Counter
	// lagNs is how old the oldest change not yet sent to the peers may be (the start of the
	// table walk in progress), in nanoseconds: about flowSyncInterval when the bandwidth bound
	// lets every walk finish within its tick, more when it does not (the sync backlog).
	lagNs atomic.Int64
}

func (n *node) flowSyncMetrics() (*flowSync, []prometheus.Collector) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_flow_sync_" + name, Help: help})
	}
	fs := &flowSync{
		n:        n,
		sent:     c("sent_bytes_total", "Bytes of flow records sent to other appliances."),
		received: c("imported_flows_total", "Flows imported from other appliances."),
		bad:      c("malformed_messages_total", "Flow-sync messages refused as malformed."),
		skipped:  c("send_errors_total", "Flow-sync messages that could not be sent to a member."),
	}
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "appliance_flow_sync_lag_seconds",
		Help: "Age of the oldest flow change not yet sent to the other appliances (the sync backlog); about 0.25 s when the bandwidth bound keeps up.",
	}, func() float64 { return float64(fs.lagNs.Load()) / 1e9 })
	return fs, []prometheus.Collector{fs.sent, fs.received, fs.bad, fs.skipped, lag}
}

func (fs *flowSync) start(ctx context.Context) error {
	if fs.n.cfg.Cluster.FlowSyncBytesPerSecond == 0 {
		fs.n.log.Info("flow-state sync off (cluster.flowSyncBytesPerSecond: 0): established connections break on failover")
		return nil
	}
	ct := fs.n.dp.Conntrack()
	if err := fs.n.cl.Handle(msgFlows, func(p []byte) {
		k, err := ct.Import(p, time.Now().UnixNano())
		fs.received.Add(float64(k))
		if err != nil {
			fs.bad.Inc()
			fs.n.log.Debug("flow sync: malformed message", "err", err)
		}
	}); err != nil {
		return err
	}
	go fs.loop(ctx, ct)
	return nil
}

func (fs *flowSync) loop(ctx context.Context, ct *conntrack.Table) {
	t := time.NewTicker(flowSyncInterval)
	defer t.Stop()
	// Each tick may send at most budget bytes to each peer (cluster.flowSyncBytesPerSecond); a
	// table walk that does not finish within it goes on at the next tick from where it stopped,
	// and the changes it has not reached wait (appliance_flow_sync_lag_seconds grows).
	budget := max(int(float64(fs.n.cfg.Cluster.FlowSyncBytesPerSecond)*flowSyncInterval.Seconds()), flowSyncMaxBytes)
	since := time.Now().UnixNano()
	walkStart := since
	var cur conntrack.ExportCursor
	buf := make([]byte, 0, flowSyncMaxBytes+128)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers := fs.peers()
		for sent := 0; !cur.Done() && sent < budget; {
			buf = ct.AppendExportChanged(buf[:0], since, &cur, flowSyncMaxBytes/41)
			sent += len(buf)
			if len(buf) == 0 || len(peers) == 0 {
				continue
			}
			for _, p := range peers {
				if err := fs.n.cl.SendTo(p, msgFlows, buf); err != nil {
					fs.skipped.Inc()
					continue
				}
				fs.sent.Add(float64(len(buf)))
			}
		}
		now := time.Now().UnixNano()
		if cur.Done() {
			// Walk complete: the next one sends what changed since this one began, overlapping
			// one conntrack tick so that a change at the boundary is not missed.
			since = walkStart - int64(20*time.Millisecond)
			walkStart = now
			cur = conntrack.ExportCursor{}
		}
		fs.lagNs.Store(now - since)
	}
}

// peers are the other live appliance members.
func (fs *flowSync) peers() []string {
	var out []string
	for _, m := range fs.n.cl.Members() {
		if m.Name != fs.n.cfg.Node.Name && m.State == cluster.StateAlive && m.MetaValid && m.Meta.Role == cluster.RoleAppliance {
			out = append(out, m.Name)
		}
	}
	return out
}
