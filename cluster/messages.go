package cluster

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Typed messages: the channel other packages' gossip travels on (endpoint
// health, flow-state sync). HandleFrom (or Handle) registers a handler per MsgType; Broadcast
// gossips to everyone, SendTo sends to one member over a stream. Received
// messages wait in the bounded userMessages queue for the dispatch goroutine.

// userMessage is a received message waiting for its handler.
type userMessage struct {
	msgType MsgType
	from    string // the sender named in the envelope, an alive member when it arrived
	payload []byte // a copy the handler may keep
}

// handler is a registered message type: its callback and the largest
// message (header included) accepted for it.
type handler struct {
	fn       func(from string, payload []byte)
	maxBytes int
}

// Handle registers fn for messages of type t (t >= MsgUserMin); it is
// HandleFrom without the sender's name.
func (n *Node) Handle(t MsgType, fn func(payload []byte)) error {
	return n.HandleFrom(t, func(_ string, payload []byte) { fn(payload) })
}

// HandleFrom registers fn for messages of type t (t >= MsgUserMin),
// replacing any handler of t. fn runs on the node's dispatch goroutine with
// the sender's name and a payload it may keep. Only messages whose envelope
// names an alive member other than this node as sender reach it (counted in
// Stats.ForeignGossip otherwise), and none larger than Config.MaxMessageBytes
// or SetMessageLimit's limit. The name is the sender's claim, as trustworthy
// as the cluster key's holders (doc.go, "Trust"); fn checks the role it
// needs (IsLiveAppliance) and that the payload speaks only for from.
func (n *Node) HandleFrom(t MsgType, fn func(from string, payload []byte)) error {
	if t < MsgUserMin {
		return fmt.Errorf("cluster handle type %d: reserved (below %d)", t, MsgUserMin)
	}
	n.mu.Lock()
	h, ok := n.handlers[t]
	if !ok {
		h.maxBytes = n.cfg.MaxMessageBytes
	}
	h.fn = fn
	n.handlers[t] = h
	n.mu.Unlock()
	return nil
}

// SetMessageLimit sets the largest message of type t (header included) that
// is accepted, between the header size and Config.MessageQueueBytes; larger
// ones are dropped before they are copied (Stats.OversizedMessages). Without
// it a type's limit is Config.MaxMessageBytes. Call it before or after Handle.
func (n *Node) SetMessageLimit(t MsgType, maxBytes int) error {
	if t < MsgUserMin {
		return fmt.Errorf("cluster message limit type %d: reserved (below %d)", t, MsgUserMin)
	}
	if maxBytes <= msgHeaderBytes || maxBytes > n.cfg.MessageQueueBytes {
		return fmt.Errorf("cluster message limit type %d: %d bytes: must exceed the header and fit MessageQueueBytes %d", t, maxBytes, n.cfg.MessageQueueBytes)
	}
	n.mu.Lock()
	h := n.handlers[t]
	h.maxBytes = maxBytes
	n.handlers[t] = h
	n.mu.Unlock()
	return nil
}

// enqueueUserMessage copies payload into the dispatch queue unless the queue
// is full in count or bytes (counted drop). Any goroutine; never blocks.
func (n *Node) enqueueUserMessage(m Message) {
	size := int64(len(m.Payload))
	if n.queuedBytes.Add(size) > int64(n.cfg.MessageQueueBytes) {
		n.queuedBytes.Add(-size)
		n.counters.messagesDropped.Add(1)
		return
	}
	select {
	case n.userMessages <- userMessage{msgType: m.Type, from: m.Sender, payload: bytes.Clone(m.Payload)}:
	default:
		n.queuedBytes.Add(-size)
		n.counters.messagesDropped.Add(1)
	}
}

// Broadcast gossips a message of type t to all members (best effort,
// retransmitted a few times). A non-empty key replaces a queued broadcast
// with the same key (only the newest state of that key is sent).
func (n *Node) Broadcast(t MsgType, key string, payload []byte) error {
	if t < MsgUserMin {
		return fmt.Errorf("cluster broadcast type %d: reserved (below %d)", t, MsgUserMin)
	}
	if key != "" {
		key = fmt.Sprintf("u%d/%s", t, key)
	}
	n.queueBroadcast(EncodeMessage(t, n.cfg.Name, payload), key)
	return nil
}

// SendTo sends a message of type t reliably (over TCP) to member node.
func (n *Node) SendTo(node string, t MsgType, payload []byte) error {
	if t < MsgUserMin {
		return fmt.Errorf("cluster send type %d: reserved (below %d)", t, MsgUserMin)
	}
	// The target is built from this node's own member record, read under n.mu: the
	// *memberlist.Node values Members() returns are rewritten by memberlist (address, port,
	// metadata) under its own lock while we would read them.
	n.mu.Lock()
	r, ok := n.members[node]
	var target memberlist.Node
	if ok && r.state == StateAlive {
		target = memberlist.Node{Name: node, Addr: r.addr.Addr().AsSlice(), Port: r.addr.Port()}
	}
	n.mu.Unlock()
	if target.Name == "" {
		return fmt.Errorf("cluster send to %s: not a live member", node)
	}
	if err := n.ml.SendReliable(&target, EncodeMessage(t, n.cfg.Name, payload)); err != nil {
		return fmt.Errorf("cluster send to %s: %w", node, err)
	}
	return nil
}

// dispatchLoop is the node's dispatch goroutine: it runs the Handle
// callbacks, one message at a time, in arrival order.
func (n *Node) dispatchLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case m := <-n.userMessages:
			n.queuedBytes.Add(-int64(len(m.payload)))
			n.mu.Lock()
			fn := n.handlers[m.msgType].fn
			n.mu.Unlock()
			if fn != nil {
				fn(m.from, m.payload)
			}
		}
	}
}
