package daemon

import (
	"context"
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
	return fs, []prometheus.Collector{fs.sent, fs.received, fs.bad, fs.skipped}
}

func (fs *flowSync) start(ctx context.Context) error {
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
	since := time.Now().UnixNano()
	buf := make([]byte, 0, flowSyncMaxBytes+128)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now().UnixNano()
		peers := fs.peers()
		var cur conntrack.ExportCursor
		for !cur.Done() {
			buf = ct.AppendExportChanged(buf[:0], since, &cur, flowSyncMaxBytes/41)
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
		// Overlap one conntrack tick so that a change at the boundary is not missed.
		since = start - int64(20*time.Millisecond)
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
