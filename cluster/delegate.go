package cluster

// delegate implements memberlist.Delegate for Node. memberlist calls its
// methods from its own goroutines, several at once; each method takes n.mu
// only for short sections, never blocks and never calls back into memberlist.
type delegate Node

// NodeMeta returns this node's encoded metadata (nil if over limit). Called
// on the caller's goroutine of New (memberlist.Create), SetMeta and Leave
// (memberlist.UpdateNode).
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

// NotifyMsg takes one received gossip message (untrusted bytes that
// memberlist may reuse after the call). Called on memberlist's packet handler
// goroutine for broadcasts and on a stream connection's goroutine for SendTo;
// it must not block, since it would stall memberlist's receive loop, so user
// messages go to the bounded userMessages queue and are dropped (counted)
// when it is full. Allocation sets are merged here, under n.mu.
//
// Sizes are checked against the limit of the message's kind before anything
// is decoded or copied: memberlist accepts user messages of up to 20 MiB.
// Typed messages are queued only when their sender is an alive member.
func (d *delegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	m, err := DecodeMessage(b)
	if err != nil {
		n.counters.malformedMessages.Add(1)
		return
	}
	if m.Type == MsgAllocations {
		if len(b) > maxAllocationMessageBytes {
			n.counters.oversizedMessages.Add(1)
			return
		}
		n.mergeAllocationMessage(m.Sender, m.Payload)
		return
	}
	n.mu.Lock()
	h, ok := n.handlers[m.Type]
	r := n.members[m.Sender]
	fromMember := r != nil && r.state == StateAlive && m.Sender != n.cfg.Name
	n.mu.Unlock()
	switch {
	case !ok || h.fn == nil:
		n.counters.unknownMessages.Add(1)
	case len(b) > h.maxBytes:
		n.counters.oversizedMessages.Add(1)
	case !fromMember:
		n.counters.foreignGossip.Add(1)
	default:
		n.enqueueUserMessage(m)
	}
}

// GetBroadcasts hands memberlist the queued broadcasts that fit in limit.
// Called on memberlist's gossip goroutine and on whichever goroutine sends a
// packet that broadcasts can ride on (probes, acks); the queue has its own
// lock.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the push-pull state: this node's name and its own
// allocation set (an appliance's only; sets are accepted only from their
// origin, so nobody relays another's). Called on memberlist's push-pull
// goroutine, on a stream connection's goroutine answering another member's
// push-pull, and on the caller's goroutine of Join.
func (d *delegate) LocalState(join bool) []byte {
	n := (*Node)(d)
	var own *AllocationSet
	n.mu.Lock()
	if s, ok := n.allocations.Get(n.cfg.Name); ok && n.cfg.Meta.Role == RoleAppliance {
		own = &s
	}
	n.mu.Unlock()
	b, err := encodeState(n.cfg.Name, own)
	if err != nil {
		n.log.Warn("encode allocation state", "err", err)
		return nil
	}
	return b
}

// MergeRemoteState merges another member's push-pull state (untrusted
// bytes): its sender's own set, under the same rules as a MsgAllocations
// message. Called on the same goroutines as LocalState.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	n := (*Node)(d)
	if len(buf) == 0 {
		return
	}
	if len(buf) > maxStateBytes {
		n.counters.oversizedMessages.Add(1)
		return
	}
	st, err := DecodeState(buf)
	if err != nil {
		n.counters.malformedState.Add(1)
		return
	}
	if st.Set != nil {
		n.mergeAllocationSet(st.Sender, *st.Set)
	}
}
