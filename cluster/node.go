package cluster

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file holds the Node's lifecycle (New, Join, Leave, Shutdown) and its
// queries. The memberlist delegates are in delegate.go and event_delegate.go,
// the ownership state machine's driver in reconcile.go, allocation gossip in
// allocation_gossip.go, the typed message channel in messages.go and the
// broadcast queue in broadcast.go.

// MemberState is a member's state in the local view.
type MemberState uint8

const (
	// StateAlive: answering probes (memberlist v0.7.0 does not expose its
	// "suspect" state to delegates, so a suspect member shows as alive).
	StateAlive MemberState = iota + 1
	// StateDead: declared dead by the failure detector (crash, partition).
	StateDead
	// StateLeft: left gracefully (it announced Meta.Leaving before going).
	StateLeft
)

func (s MemberState) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// MemberInfo is one member as the local node sees it.
type MemberInfo struct {
	Name      string         // node name
	Addr      netip.AddrPort // memberlist address
	State     MemberState    // alive, dead or left
	Meta      Meta           // decoded metadata (zero if MetaValid is false)
	MetaValid bool           // false when the member's metadata did not decode
	Since     time.Time      // when State was last entered in the local view
	VIPs      []netip.Addr   // VIPs it holds in the local view
}

// Stats are the node's counters since creation.
type Stats struct {
	OwnershipChanges  uint64        // VIP owner changes in the local view
	Failovers         uint64        // VIPs this node took over from a dead member
	LastFailover      time.Duration // member death detected -> VIP taken, last one
	MaxFailover       time.Duration // the same, largest seen
	MalformedMeta     uint64        // member metadata that did not decode
	MalformedMessages uint64        // gossip messages that did not decode
	MalformedState    uint64        // push-pull states that did not decode
	UnknownMessages   uint64        // well-formed messages of a type nobody handles
	StaleAllocations  uint64        // allocation sets older than the one held
	MessagesDropped   uint64        // user messages dropped because the handler queue was full (count or bytes)
	OversizedMessages uint64        // messages and push-pull states over their kind's size limit, dropped unread
	ForeignGossip     uint64        // sets and typed messages refused: sender not an alive member (an appliance, for sets) or not the set's origin
	FutureGenerations uint64        // allocation sets refused: generation more than MaxGenerationLead ahead
	MembersRefused    uint64        // member events dropped because the local view was full (maxMembers)
	BroadcastsPruned  uint64        // outgoing broadcasts dropped by the queue bound
	JoinAttempts      uint64        // join attempts made by the background joiner
}

// nodeCounters are the atomics behind Stats (all but OwnershipChanges, which
// VIPOwner counts under Node.mu). Any goroutine adds to them without a lock.
type nodeCounters struct {
	malformedMeta          atomic.Uint64 // Stats.MalformedMeta
	malformedMessages      atomic.Uint64 // Stats.MalformedMessages
	malformedState         atomic.Uint64 // Stats.MalformedState
	unknownMessages        atomic.Uint64 // Stats.UnknownMessages
	allocationSetsRejected atomic.Uint64 // Stats.StaleAllocations
	messagesDropped        atomic.Uint64 // Stats.MessagesDropped
	oversizedMessages      atomic.Uint64 // Stats.OversizedMessages
	foreignGossip          atomic.Uint64 // Stats.ForeignGossip
	futureGenerations      atomic.Uint64 // Stats.FutureGenerations
	membersRefused         atomic.Uint64 // Stats.MembersRefused
	broadcastsPruned       atomic.Uint64 // Stats.BroadcastsPruned
	joinAttempts           atomic.Uint64 // Stats.JoinAttempts
	failovers              atomic.Uint64 // Stats.Failovers
	lastFailoverNanos      atomic.Int64  // Stats.LastFailover
	maxFailoverNanos       atomic.Int64  // Stats.MaxFailover (written by the event goroutine only)
}

// memberRecord is one member in the local view, kept from memberlist's
// events (memberlist's own *Node values are rewritten in place under its
// lock, so the node never reads them outside the event delegate).
type memberRecord struct {
	addr      netip.AddrPort
	state     MemberState
	meta      Meta
	metaValid bool
	since     time.Time
	metaRaw   string         // the metadata bytes last seen, to notice changes
	restarted bool           // came back alive after dead or left: its next allocation set starts a new incarnation
	probed    netip.AddrPort // the address a direct probe of this node last got its ack from (agent.go)
}

// Node is one member of the cluster: memberlist plus VIP ownership and
// allocation gossip. Create it with New; its methods are safe for concurrent
// use. Callbacks from Config run on the node's event goroutine.
type Node struct {
	cfg   Config                           // cfg.Meta is guarded by mu (SetMeta); the rest is read-only after New
	log   *slog.Logger                     // with the node's name
	now   func() time.Time                 // cfg.Now or time.Now
	ml    *memberlist.Memberlist           // set once in New
	queue *memberlist.TransmitLimitedQueue // outgoing broadcasts; has its own lock

	// mu guards every field below up to the channels. It is held only for
	// short, non-blocking sections: never across a callback, a memberlist
	// call or a channel send that can block.
	mu              sync.Mutex
	meta            []byte                   // this node's encoded metadata (NodeMeta)
	members         map[string]*memberRecord // the local view, by member name
	owner           *VIPOwner                // the ownership state machine
	vips            []netip.Addr             // the VIPs to place (SetVIPs)
	vipsChanged     bool                     // vips changed since the last reconcile
	allocations     *AllocationStore         // every origin's latest allocation set
	localGeneration uint64                   // the generation of this node's own set
	resolved        map[string]Allocation    // allocations resolved from the store
	handlers        map[MsgType]handler      // user message handlers (Handle) and their size limits
	deathDetectedAt map[string]time.Time     // when an alive appliance was seen dead, for failover times
	leaving         bool                     // Leave began: hold nothing from now on
	membersChanged  bool                     // a member joined, changed state or metadata since OnMembers last ran
	yields          map[netip.Addr]yield     // VIPs given up after a conflict (conflict.go)
	greet           map[string]bool          // members that became alive since the event goroutine last sent them this node's set

	counters nodeCounters

	reconcileKick      chan struct{}       // wakes the event goroutine to reconcile (coalescing)
	allocationsChanged chan struct{}       // wakes the event goroutine to call OnAllocations (coalescing)
	conflictEvents     chan OwnershipEvent // ownership changes from conflicts, for the event goroutine
	leaveRequests      chan chan struct{}  // Leave asks the event goroutine to give up every VIP
	userMessages       chan userMessage    // received user messages, for the dispatch goroutine
	queuedBytes        atomic.Int64        // payload bytes in userMessages (bounded by MessageQueueBytes)
	done               chan struct{}       // closed by Shutdown
	wg                 sync.WaitGroup      // the node's goroutines
	shutdownOnce       sync.Once
}

// New validates cfg, starts memberlist (listening at once) and the node's
// goroutines, and joins cfg.Join in the background.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	meta, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("cluster node %s: %w", cfg.Name, err)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		meta:    meta,
		members: map[string]*memberRecord{},
		owner: NewVIPOwner(OwnerConfig{Self: cfg.Name, RequireQuorum: cfg.RequireQuorum, ForgetDeadAfter: cfg.ForgetDeadAfter,
			ExpectedMembers: cfg.ExpectedMembers}),
		allocations:        NewAllocationStore(),
		resolved:           map[string]Allocation{},
		handlers:           map[MsgType]handler{},
		deathDetectedAt:    map[string]time.Time{},
		yields:             map[netip.Addr]yield{},
		greet:              map[string]bool{},
		reconcileKick:      make(chan struct{}, 1),
		allocationsChanged: make(chan struct{}, 1),
		conflictEvents:     make(chan OwnershipEvent, 64),
		leaveRequests:      make(chan chan struct{}),
		userMessages:       make(chan userMessage, cfg.MessageQueueLen),
		done:               make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.log = n.log.With("node", cfg.Name)
	n.localGeneration = uint64(n.now().UnixNano())

	mc := n.memberlistConfig()
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster node %s: start memberlist on %s: %w", cfg.Name, cfg.BindAddr, err)
	}
	n.ml = ml
	n.queue = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: mc.RetransmitMult}

	n.wg.Add(2)
	go n.eventLoop()
	go n.dispatchLoop()
	if len(cfg.Join) > 0 {
		n.wg.Add(1)
		go n.joinLoop(cfg.Join)
	}
	n.signal(n.reconcileKick)
	return n, nil
}

// memberlistConfig translates n.cfg into memberlist's LAN configuration with
// n's delegates.
func (n *Node) memberlistConfig() *memberlist.Config {
	cfg := n.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		mc.BindAddr = cfg.BindAddr.Addr().String()
		mc.BindPort = int(cfg.BindAddr.Port())
	}
	if cfg.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = cfg.AdvertiseAddr.Addr().String()
		mc.AdvertisePort = int(cfg.AdvertiseAddr.Port())
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.TCPTimeout = cfg.TCPTimeout
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = bytes.Clone(cfg.SecretKey)
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	mc.Delegate = (*delegate)(n)
	mc.Events = (*eventDelegate)(n)
	mc.Ping = (*pingDelegate)(n)
	mc.LogOutput = nil
	mc.Logger = log.New(slogWriter{n.log}, "", 0)
	return mc
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// AddrPort returns the address and port memberlist advertises.
func (n *Node) AddrPort() netip.AddrPort {
	ln := n.ml.LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	return netip.AddrPortFrom(a.Unmap(), ln.Port)
}

// Join contacts the given "host:port" members at once and returns how many
// answered; an error when none did (for example: wrong or missing key).
func (n *Node) Join(addrs []string) (int, error) {
	c, err := n.ml.Join(addrs)
	if c == 0 {
		if err == nil {
			err = fmt.Errorf("no member answered")
		}
		return 0, fmt.Errorf("cluster join %v: %w", addrs, err)
	}
	return c, nil
}

// joinLoop is the background joiner New starts for Config.Join: it retries
// every JoinRetryInterval until one member answers, then heals partitions
// (rejoinLoop) until Shutdown.
func (n *Node) joinLoop(addrs []string) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.JoinRetryInterval)
	defer t.Stop()
	for {
		n.counters.joinAttempts.Add(1)
		c, err := n.Join(addrs)
		if err == nil {
			n.log.Info("joined cluster", "members", c)
			n.rejoinLoop(addrs)
			return
		}
		n.log.Warn("join cluster, will retry", "err", err, "retry", n.cfg.JoinRetryInterval)
		select {
		case <-n.done:
			return
		case <-t.C:
		}
	}
}

// rejoinLoop heals partitions: memberlist never contacts a member it has declared dead again, so
// after a partition each side would stay alone. Every RejoinInterval it joins the configured
// addresses that are not alive members; a healed link thus merges the two sides within about
// one interval, and the ownership rule then leaves one owner per VIP.
func (n *Node) rejoinLoop(addrs []string) {
	if n.cfg.RejoinInterval <= 0 {
		return
	}
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		missing := n.addressesNotAlive(addrs)
		if len(missing) == 0 {
			continue
		}
		if c, err := n.ml.Join(missing); err == nil && c > 0 {
			n.counters.joinAttempts.Add(1)
			n.log.Info("rejoined members", "addrs", missing)
		}
	}
}

// addressesNotAlive returns those of addrs that no alive member has. It reads
// the node's own records: the *Node values memberlist's Members returns are
// rewritten in place by its alive handling (a member's metadata update), a
// data race.
func (n *Node) addressesNotAlive(addrs []string) []string {
	alive := map[string]bool{}
	n.mu.Lock()
	for _, r := range n.members {
		if r.state == StateAlive {
			alive[r.addr.String()] = true
		}
	}
	n.mu.Unlock()
	var missing []string
	for _, a := range addrs {
		if !alive[a] {
			missing = append(missing, a)
		}
	}
	return missing
}

// Leave hands over gracefully: this node first gives up its VIPs (Lost
// events, delivered before Leave goes on), then announces Meta.Leaving so the
// others move its VIPs at once without failure detection, then leaves
// memberlist. Each step waits up to timeout.
func (n *Node) Leave(timeout time.Duration) error {
	ack := make(chan struct{})
	select {
	case n.leaveRequests <- ack:
		<-ack
	case <-n.done:
		return fmt.Errorf("cluster leave %s: node shut down", n.cfg.Name)
	}
	n.mu.Lock()
	meta := n.cfg.Meta // SetMeta may have changed it
	n.mu.Unlock()
	meta.Leaving = true
	enc, err := EncodeMeta(meta)
	if err != nil {
		return fmt.Errorf("cluster leave %s: %w", n.cfg.Name, err)
	}
	n.mu.Lock()
	n.meta = enc
	n.mu.Unlock()
	if err := n.ml.UpdateNode(timeout); err != nil {
		n.log.Warn("announce leaving", "err", err)
	}
	if err := n.ml.Leave(timeout); err != nil {
		return fmt.Errorf("cluster leave %s: %w", n.cfg.Name, err)
	}
	return nil
}

// Shutdown stops memberlist and the node's goroutines without a leave
// message: to the others it looks like a crash. Safe to call twice.
func (n *Node) Shutdown() error {
	var err error
	n.shutdownOnce.Do(func() {
		close(n.done)
		err = n.ml.Shutdown()
		n.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("cluster shutdown %s: %w", n.cfg.Name, err)
	}
	return nil
}

// Close leaves gracefully (waiting up to timeout) and shuts down.
func (n *Node) Close(timeout time.Duration) error {
	leaveErr := n.Leave(timeout)
	shutdownErr := n.Shutdown()
	if leaveErr != nil {
		return leaveErr
	}
	return shutdownErr
}

// SetVIPs sets the VIPs to place across the appliances. Ownership changes
// follow on the event goroutine (OnOwnership).
func (n *Node) SetVIPs(vips []netip.Addr) {
	n.mu.Lock()
	n.vips = append([]netip.Addr(nil), vips...)
	n.vipsChanged = true
	n.mu.Unlock()
	n.signal(n.reconcileKick)
}

// Holds reports whether this node holds vip now.
func (n *Node) Holds(vip netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg.Meta.Role == RoleAppliance && n.owner.Holds(vip) && !n.yieldingLocked(vip)
}

// Owner returns owner and standby of vip in this node's view.
func (n *Node) Owner(vip netip.Addr) (owner, standby string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owner.Owner(vip)
}

// Held returns the VIPs this node holds, sorted.
func (n *Node) Held() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cfg.Meta.Role != RoleAppliance {
		return nil
	}
	held := n.owner.Held()
	out := held[:0:0]
	for _, v := range held {
		if !n.yieldingLocked(v) {
			out = append(out, v)
		}
	}
	return out
}

// HasQuorum reports whether this node sees a majority of the last known
// appliance membership (always true without RequireQuorum).
func (n *Node) HasQuorum() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owner.HasQuorum()
}

// Members returns every member in the local view (dead and left ones until
// forgotten), sorted by name.
func (n *Node) Members() []MemberInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]MemberInfo, 0, len(n.members))
	for name, r := range n.members {
		mi := MemberInfo{Name: name, Addr: r.addr, State: r.state, Meta: r.meta, MetaValid: r.metaValid, Since: r.since}
		mi.VIPs = n.owner.HeldBy(name)
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsLiveAppliance reports whether name is a member this node sees alive,
// with valid metadata and the appliance role (this node included when it is
// an appliance). Handlers of typed messages use it to check the sender.
func (n *Node) IsLiveAppliance(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name == n.cfg.Name {
		return n.cfg.Meta.Role == RoleAppliance
	}
	r := n.members[name]
	return r != nil && r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance
}

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	changes := n.owner.OwnerChanges()
	n.mu.Unlock()
	c := &n.counters
	return Stats{
		OwnershipChanges:  changes,
		Failovers:         c.failovers.Load(),
		LastFailover:      time.Duration(c.lastFailoverNanos.Load()),
		MaxFailover:       time.Duration(c.maxFailoverNanos.Load()),
		MalformedMeta:     c.malformedMeta.Load(),
		MalformedMessages: c.malformedMessages.Load(),
		MalformedState:    c.malformedState.Load(),
		UnknownMessages:   c.unknownMessages.Load(),
		StaleAllocations:  c.allocationSetsRejected.Load(),
		MessagesDropped:   c.messagesDropped.Load(),
		OversizedMessages: c.oversizedMessages.Load(),
		ForeignGossip:     c.foreignGossip.Load(),
		FutureGenerations: c.futureGenerations.Load(),
		MembersRefused:    c.membersRefused.Load(),
		BroadcastsPruned:  c.broadcastsPruned.Load(),
		JoinAttempts:      c.joinAttempts.Load(),
	}
}

// signal wakes the goroutine waiting on ch without blocking: a wake-up
// already pending covers this one.
func (n *Node) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// slogWriter routes memberlist's log lines into slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(bytes.TrimRight(p, "\n")), "component", "memberlist")
	return len(p), nil
}
