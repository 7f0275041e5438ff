package cluster

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Typed messages: the channel other packages' gossip travels on (endpoint
// health, flow-state sync). Handle registers a handler per MsgType; Broadcast
// gossips to everyone, SendTo sends to one member over a stream. Received
// messages wait in the bounded userMessages queue for the dispatch goroutine.

// userMessage is a received message waiting for its handler.
type userMessage struct {
	msgType MsgType
	payload []byte // a copy the handler may keep
}

// Handle registers fn for messages of type t (t >= MsgUserMin). fn runs on
// the node's dispatch goroutine with a payload it may keep.
func (n *Node) Handle(t MsgType, fn func(payload []byte)) error {
	if t < MsgUserMin {
		return fmt.Errorf("cluster handle type %d: reserved (below %d)", t, MsgUserMin)
	}
	n.mu.Lock()
	n.handlers[t] = fn
	n.mu.Unlock()
	return nil
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
	n.queueBroadcast(EncodeMessage(t, payload), key)
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
	if err := n.ml.SendReliable(&target, EncodeMessage(t, payload)); err != nil {
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
			n.mu.Lock()
			fn := n.handlers[m.msgType]
			n.mu.Unlock()
			if fn != nil {
				fn(m.payload)
			}
		}
	}
}
