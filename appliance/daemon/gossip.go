package daemon

import (
	"time"

	"github.com/xdpsvc/lb/cluster"
	"github.com/xdpsvc/lb/conntrack"
)

// The small views health checking (health.go) and flow sync (flowsync.go) have of the rest of
// the node, one per concern, so that each runs in a test against a fake. *cluster.Node
// implements the gossip ones, *node the refresh one and *conntrack.Table the flow table.

// memberView is who is in the cluster.
type memberView interface {
	// Members returns every member in the local view (dead and left ones until forgotten),
	// sorted by name: a copy, safe to call from any goroutine.
	Members() []cluster.MemberInfo
}

// messageRouter delivers incoming gossip messages by type.
type messageRouter interface {
	// HandleFrom registers fn for messages of type t (t >= cluster.MsgUserMin). fn runs on the
	// cluster's dispatch goroutine, one message at a time, with the sender's name (an alive
	// member other than this node, as the message envelope claims it) and a payload it may
	// keep; it must not block for long (other messages wait). fn checks the sender's role
	// (IsLiveAppliance) and that the payload speaks only for the sender. Call it before the
	// node joins, so that no early message finds no handler.
	HandleFrom(t cluster.MsgType, fn func(from string, payload []byte)) error
	// SetMessageLimit sets the largest message of type t accepted, envelope included
	// (msgLimit); larger ones are dropped before they are copied.
	SetMessageLimit(t cluster.MsgType, maxBytes int) error
}

// applianceCheck says whether a message's sender may speak for an appliance.
type applianceCheck interface {
	// IsLiveAppliance reports whether name is an alive member announcing the appliance role
	// (this node included). Safe from any goroutine, a Handle callback included.
	IsLiveAppliance(name string) bool
}

// maxEnvelopeBytes is the largest gossip message envelope (cluster's framing: version, type,
// sender length, and a sender name of at most 255 bytes).
const maxEnvelopeBytes = 3 + 255

// msgLimit is the SetMessageLimit of a message type whose payload is at most payloadBytes.
func msgLimit(payloadBytes int) int { return payloadBytes + maxEnvelopeBytes }

// messageSender sends gossip messages to the other members.
type messageSender interface {
	// Broadcast queues a best-effort gossip message to all members and returns at once; a
	// non-empty key replaces a queued message with the same key. Safe from any goroutine.
	Broadcast(t cluster.MsgType, key string, payload []byte) error
	// SendTo sends a message reliably (TCP) to one alive member and blocks until it is written
	// or fails: call it from the sender's own goroutine, never from a Handle callback.
	SendTo(member string, t cluster.MsgType, payload []byte) error
}

// selfMeta is this node's own gossiped metadata.
type selfMeta interface {
	// Meta returns this node's current metadata (a copy). Safe from any goroutine.
	Meta() cluster.Meta
	// SetMeta replaces it and gossips it, blocking up to timeout for the broadcast to go out.
	// Safe from any goroutine; not from a Handle callback.
	SetMeta(m cluster.Meta, timeout time.Duration) error
}

// healthGossip is what health checking needs from the cluster: the members, to resolve the
// reports of the live ones, the messages that carry the reports, and who may send one.
type healthGossip interface {
	memberView
	messageRouter
	messageSender
	applianceCheck
}

// flowGossip is what flow sync needs from the cluster: the peers, the flow messages and who
// may send them, and the own Syncing flag it clears once warmed up.
type flowGossip interface {
	memberView
	messageRouter
	messageSender
	applianceCheck
	selfMeta
}

// refreshRequester is what health checking needs from the plan's owner.
type refreshRequester interface {
	// requestRefresh asks the control goroutine to rebuild what is served (the overlays
	// changed); it never blocks and requests coalesce. Safe from any goroutine.
	requestRefresh(why string)
}

// flowTable is what flow sync needs from the data plane: the flow table's export and import.
// Both run concurrently with the workers (conntrack's export/import contract).
type flowTable interface {
	// AppendExportChanged appends records of the flows changed since the given time (ns),
	// continuing at cur, at most maxRecords. Called from the flow-sync sender only.
	AppendExportChanged(buf []byte, since int64, cur *conntrack.ExportCursor, maxRecords int) []byte
	// AppendExportAll appends records of every flow, continuing at cur. Sender only.
	AppendExportAll(buf []byte, cur *conntrack.ExportCursor, maxRecords int) []byte
	// Import installs records from a peer (untrusted bytes) and returns how many it took.
	// Called on the cluster's dispatch goroutine.
	Import(data []byte, now int64) (int, error)
}

var (
	_ healthGossip = (*cluster.Node)(nil)
	_ flowGossip   = (*cluster.Node)(nil)
	_ flowTable    = (*conntrack.Table)(nil)
)
