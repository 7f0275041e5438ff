package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsvc/lb/cluster"
	"github.com/xdpsvc/lb/conntrack"
)

// msgFlows carries conntrack export records (conntrack.AppendExport's versioned format).
const msgFlows = cluster.MsgUserMin + 1

// msgFlowsDone (empty payload) follows the last message of a full export: the receiver, if it
// is still syncing (Meta.Syncing), now has the cluster's flows and may take VIPs.
const msgFlowsDone = cluster.MsgUserMin + 4

// msgFlowsRequest asks a peer for the full export: a node that restarted faster than the others
// noticed its death is still "synced" in their view. The receiver answers the message's sender;
// the payload (the sender's name, kept for older receivers) is ignored.
const msgFlowsRequest = cluster.MsgUserMin + 5

// syncWarmupMax bounds how long a starting node stays Syncing when no full export completes
// (peers that do not answer, a huge table over a slow link): it then takes VIPs anyway.
const syncWarmupMax = 5 * time.Second

const (
	// flowSyncInterval is how often new and changed flows are sent to the other appliances.
	flowSyncInterval = 250 * time.Millisecond
	// flowSyncMaxBytes is the target size of one message.
	flowSyncMaxBytes = 32 << 10
	// flowSyncMaxRecords bounds the records of one message: flowSyncMaxBytes of IPv4 records.
	flowSyncMaxRecords = flowSyncMaxBytes / conntrack.RecordSizeIPv4
	// flowSyncMaxMessage is the largest msgFlows payload accepted: flowSyncMaxRecords IPv6
	// records.
	flowSyncMaxMessage = flowSyncMaxRecords * conntrack.RecordSizeIPv6
	// flowSyncMaxRequest is the largest msgFlowsRequest payload accepted (a node name).
	flowSyncMaxRequest = 255
)

// flowSync sends this node's new and changed flows to every other appliance, and imports
// theirs, so that the node taking a VIP over already holds the flows' translations (SNAT port,
// backend) and established connections keep flowing. Imports are validated by conntrack
// (untrusted bytes); a malformed message is counted and dropped.
//
// Concurrency: the message handlers run on the cluster's dispatch goroutine, the sender (loop)
// and warmup on their own (start); they share only the atomics and channels below. The other
// fields are set before handle and then only read.
type flowSync struct {
	log                                   *slog.Logger
	self                                  string     // this node's name
	bytesPerSec                           int        // cluster.flowSyncBytesPerSecond; 0: sync off
	gossip                                flowGossip // set by handle, before any message can arrive
	sent, received, bad, skipped, foreign prometheus.Counter
	// lagNs is how old the oldest change not yet sent to the peers may be (the start of the
	// table walk in progress), in nanoseconds: about flowSyncInterval when the bandwidth bound
	// lets every walk finish within its tick, more when it does not (the sync backlog).
	lagNs atomic.Int64
	// ct is the flow table, set by setTable once the data plane exists; tableReady is closed
	// then. Flows that arrive before (a peer's full export right after joining) wait for it.
	ct         atomic.Pointer[flowTable]
	tableReady chan struct{}
	// done receives a peer's msgFlowsDone (for warmup).
	done chan struct{}
	// resync receives the names of peers that asked for the full export (msgFlowsRequest).
	resync chan string
}

// newFlowSync builds the flow sync of node self with its metrics (nothing runs until start).
func newFlowSync(self string, bytesPerSecond int, log *slog.Logger) (*flowSync, []prometheus.Collector) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "appliance_flow_sync_" + name, Help: help})
	}
	fs := &flowSync{
		log:         log,
		self:        self,
		bytesPerSec: bytesPerSecond,
		tableReady:  make(chan struct{}),
		done:        make(chan struct{}, 1),
		resync:      make(chan string, 64),
		sent:        c("sent_bytes_total", "Bytes of flow records sent to other appliances."),
		received:    c("imported_flows_total", "Flows imported from other appliances."),
		bad:         c("malformed_messages_total", "Flow-sync messages refused as malformed."),
		skipped:     c("send_errors_total", "Flow-sync messages that could not be sent to a member."),
		foreign:     c("foreign_messages_total", "Flow-sync messages dropped because their sender is not a live appliance."),
	}
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "appliance_flow_sync_lag_seconds",
		Help: "Age of the oldest flow change not yet sent to the other appliances (the sync backlog); about 0.25 s when the bandwidth bound keeps up.",
	}, func() float64 { return float64(fs.lagNs.Load()) / 1e9 })
	return fs, []prometheus.Collector{fs.sent, fs.received, fs.bad, fs.skipped, fs.foreign, lag}
}

// handle registers the flow-sync message handlers and their size limits. It runs right after
// the cluster node is created and before it joins, so that a peer's full export, sent as soon as
// this node joins, is not dropped for want of a handler while the data plane is still being set
// up. Every handler drops (and counts) a message whose sender is not a live appliance: only
// appliances hold flows, and an agent or a stranger must not inject any.
func (fs *flowSync) handle(gossip flowGossip) error {
	fs.gossip = gossip
	for t, payload := range map[cluster.MsgType]int{msgFlows: flowSyncMaxMessage, msgFlowsRequest: flowSyncMaxRequest, msgFlowsDone: 0} {
		if err := gossip.SetMessageLimit(t, msgLimit(payload)); err != nil {
			return err
		}
	}
	for t, fn := range map[cluster.MsgType]func(from string, p []byte){
		msgFlows: fs.importFlows, msgFlowsRequest: fs.requestFrom, msgFlowsDone: fs.doneFrom,
	} {
		if err := gossip.HandleFrom(t, fn); err != nil {
			return err
		}
	}
	return nil
}

// fromAppliance reports whether from is a live appliance, counting the message as foreign
// when it is not.
func (fs *flowSync) fromAppliance(from string) bool {
	if fs.gossip.IsLiveAppliance(from) {
		return true
	}
	fs.foreign.Inc()
	fs.log.Debug("flow sync: message from a member that is not a live appliance dropped", "from", from)
	return false
}

// importFlows handles msgFlows: a peer's flow records, imported once the table exists.
func (fs *flowSync) importFlows(from string, p []byte) {
	if !fs.fromAppliance(from) {
		return
	}
	select {
	case <-fs.tableReady:
	case <-time.After(30 * time.Second):
		fs.bad.Inc()
		fs.log.Warn("flow sync: no flow table to import into; message dropped")
		return
	}
	k, err := (*fs.ct.Load()).Import(p, time.Now().UnixNano())
	fs.received.Add(float64(k))
	if err != nil {
		fs.bad.Inc()
		fs.log.Debug("flow sync: malformed message", "from", from, "err", err)
	}
}

// requestFrom handles msgFlowsRequest: the sender gets the full export (never a member the
// payload names).
func (fs *flowSync) requestFrom(from string, _ []byte) {
	if !fs.fromAppliance(from) {
		return
	}
	select {
	case fs.resync <- from:
	default: // a burst of requests: the next one gets through
	}
}

// doneFrom handles msgFlowsDone: a peer's full export to this node is complete.
func (fs *flowSync) doneFrom(from string, _ []byte) {
	if !fs.fromAppliance(from) {
		return
	}
	select {
	case fs.done <- struct{}{}:
	default:
	}
}

// setTable hands flow sync the data plane's flow table.
func (fs *flowSync) setTable(ct flowTable) {
	fs.ct.Store(&ct)
	close(fs.tableReady)
}

// start runs the sender and the warm-up (after handle and setTable).
func (fs *flowSync) start(ctx context.Context) error {
	if fs.bytesPerSec == 0 {
		fs.log.Info("flow-state sync off (cluster.flowSyncBytesPerSecond: 0): established connections break on failover")
		return nil
	}
	go fs.warmup(ctx, fs.done)
	go fs.loop(ctx, *fs.ct.Load())
	return nil
}

// warmup clears this node's Syncing flag (set at start when it has peers to join) once a peer
// has sent it the full flow export, or when there is nobody to sync from, or after
// syncWarmupMax: until then the others keep the VIPs that rank this node first, so a VIP that
// moves (back) to a restarted node finds its connections' state already there.
func (fs *flowSync) warmup(ctx context.Context, done <-chan struct{}) {
	cl := fs.gossip
	if !cl.Meta().Syncing {
		return
	}
	start := time.Now()
	why := "timeout"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var asked time.Time
wait:
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			why = "full flow export received"
			break wait
		case <-tick.C:
			// Ask the peers for their flows too (at start and then every second): one that
			// has not noticed this node's restart would not send them on its own.
			if time.Since(asked) >= time.Second {
				asked = time.Now()
				for _, p := range fs.peers() {
					_ = cl.SendTo(p, msgFlowsRequest, []byte(fs.self))
				}
			}
			// Nobody alive to sync from a second after start (a lone node, or the first of a
			// cluster coming up): nothing to wait for.
			if time.Since(start) >= time.Second && len(fs.peers()) == 0 {
				why = "no other appliance"
				break wait
			}
			if time.Since(start) >= syncWarmupMax {
				break wait
			}
		}
	}
	m := cl.Meta()
	m.Syncing = false
	if err := cl.SetMeta(m, 2*time.Second); err != nil {
		fs.log.Warn("clear syncing flag", "err", err)
		return
	}
	fs.log.Info("flow state synced; taking VIPs", "why", why, "took", time.Since(start).Round(time.Millisecond).String())
}

func (fs *flowSync) loop(ctx context.Context, ct flowTable) {
	t := time.NewTicker(flowSyncInterval)
	defer t.Stop()
	// Each tick may send at most budget bytes to each peer (cluster.flowSyncBytesPerSecond). The
	// incremental walk (flows new or changed since the last walk began) goes first; a walk that
	// does not finish within the budget goes on at the next tick from where it stopped, and the
	// changes it has not reached wait (appliance_flow_sync_lag_seconds grows). What is left of
	// the budget goes to full exports for peers seen for the first time (a node that joined or
	// restarted gets the flows that were established before and have not changed since, so a
	// VIP that moves back to it keeps them).
	budget := max(int(float64(fs.bytesPerSec)*flowSyncInterval.Seconds()), flowSyncMaxBytes)
	since := time.Now().UnixNano()
	walkStart := since
	var cur conntrack.ExportCursor
	synced := map[string]bool{} // peers that have had (or are getting) the full export
	var full struct {
		cur conntrack.ExportCursor
		to  []string
	}
	buf := make([]byte, 0, flowSyncMaxBytes+128)
	send := func(to []string, t cluster.MsgType, b []byte) {
		for _, p := range to {
			if err := fs.gossip.SendTo(p, t, b); err != nil {
				fs.skipped.Inc()
				continue
			}
			fs.sent.Add(float64(len(b)))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers := fs.peers()
		now := time.Now().UnixNano()
		if len(peers) == 0 {
			// Nobody to tell: no walk (a lone node spends nothing on sync). A peer that appears
			// later gets the full export.
			since, walkStart, cur = now-int64(20*time.Millisecond), now, conntrack.ExportCursor{}
			clear(synced)
			full.to = nil
			fs.lagNs.Store(0)
			continue
		}
	drain:
		for {
			select {
			case name := <-fs.resync:
				delete(synced, name) // asked for the full export: it gets one below if it is a peer
			default:
				break drain
			}
		}
		live := map[string]bool{}
		for _, p := range peers {
			live[p] = true
			if !synced[p] {
				// A new target restarts a full export in progress from the top for all its
				// targets (Import skips the flows a peer already has).
				synced[p] = true
				full.to = append(full.to, p)
				full.cur = conntrack.ExportCursor{}
			}
		}
		for p := range synced {
			if !live[p] {
				delete(synced, p) // gone: a full export again when it comes back
			}
		}
		sent := 0
		for sent < budget && !cur.Done() {
			buf = ct.AppendExportChanged(buf[:0], since, &cur, flowSyncMaxRecords)
			sent += len(buf)
			if len(buf) > 0 {
				send(peers, msgFlows, buf)
			}
		}
		if cur.Done() {
			// Walk complete: the next one sends what changed since this one began, overlapping
			// one conntrack tick so that a change at the boundary is not missed.
			since = walkStart - int64(20*time.Millisecond)
			walkStart = now
			cur = conntrack.ExportCursor{}
		}
		for sent < budget && len(full.to) > 0 {
			buf = ct.AppendExportAll(buf[:0], &full.cur, flowSyncMaxRecords)
			sent += len(buf)
			if len(buf) > 0 {
				send(full.to, msgFlows, buf)
			}
			if full.cur.Done() {
				send(full.to, msgFlowsDone, nil)
				full.to = nil
			}
		}
		fs.lagNs.Store(now - since)
	}
}

// peers are the other live appliance members.
func (fs *flowSync) peers() []string {
	var out []string
	for _, m := range fs.gossip.Members() {
		if m.Name != fs.self && m.State == cluster.StateAlive && m.MetaValid && m.Meta.Role == cluster.RoleAppliance {
			out = append(out, m.Name)
		}
	}
	return out
}
