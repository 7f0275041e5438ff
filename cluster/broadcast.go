package cluster

import "github.com/hashicorp/memberlist"

// queueBroadcast queues msg for gossip, replacing a queued broadcast with the
// same non-empty key, and prunes the oldest broadcasts beyond
// MaxQueuedBroadcasts (counted). Any goroutine.
func (n *Node) queueBroadcast(msg []byte, key string) {
	n.queue.QueueBroadcast(&broadcast{msg: msg, key: key})
	if q := n.queue.NumQueued(); q > n.cfg.MaxQueuedBroadcasts {
		n.queue.Prune(n.cfg.MaxQueuedBroadcasts)
		n.counters.broadcastsPruned.Add(uint64(q - n.cfg.MaxQueuedBroadcasts))
	}
}

// broadcast is a queued gossip message; a non-empty key replaces older
// broadcasts with the same key. It implements memberlist.Broadcast.
type broadcast struct {
	msg []byte
	key string
}

// Invalidates reports whether b replaces the queued other (same non-empty key).
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && b.key != "" && o.key == b.key
}

// Message returns the encoded message.
func (b *broadcast) Message() []byte { return b.msg }

// Finished is called when the broadcast is sent or replaced; nothing waits on it.
func (b *broadcast) Finished() {}
