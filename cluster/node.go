package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

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
	MessagesDropped   uint64        // user messages dropped because the handler queue was full
	BroadcastsPruned  uint64        // outgoing broadcasts dropped by the queue bound
	JoinAttempts      uint64        // join attempts made by the background joiner
}

type memberRec struct {
	addr      netip.AddrPort
	state     MemberState
	meta      Meta
	metaValid bool
	since     time.Time
	metaRaw   string // the metadata bytes last seen, to notice changes
}

type inMsg struct {
	t       MsgType
	payload []byte
}

// Node is one member of the cluster: memberlist plus VIP ownership and
// allocation gossip. Create it with New; its methods are safe for concurrent
// use. Callbacks from Config run on the node's event goroutine.
type Node struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	meta  []byte
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue

	mu          sync.Mutex
	members     map[string]*memberRec
	owner       *VIPOwner
	vips        []netip.Addr
	vipsDirty   bool
	allocs      *AllocationStore
	localGen    uint64
	resolved    map[string]Allocation
	handlers    map[MsgType]func([]byte)
	lossAt      map[string]time.Time
	lastFailNs  atomic.Int64
	maxFailNs   atomic.Int64
	counters    struct{ malMeta, malMsg, malState, unknown, stale, dropped, pruned, joins, failovers atomic.Uint64 }
	leaving     bool
	memberDirty bool                 // a member joined, changed state or metadata since OnMembers last ran
	yields      map[netip.Addr]yield // VIPs given up after a conflict (conflict.go)
	conflictEv  chan OwnershipEvent  // ownership changes from conflicts, for the event goroutine
	kick        chan struct{}
	leaveReq    chan chan struct{}
	allocKick   chan struct{}
	msgs        chan inMsg
	done        chan struct{}
	wg          sync.WaitGroup
	shutdownOne sync.Once
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
		members: map[string]*memberRec{},
		owner: NewVIPOwner(OwnerConfig{Self: cfg.Name, RequireQuorum: cfg.RequireQuorum, ForgetDeadAfter: cfg.ForgetDeadAfter,
			ExpectedMembers: cfg.ExpectedMembers}),
		allocs:     NewAllocationStore(),
		resolved:   map[string]Allocation{},
		handlers:   map[MsgType]func([]byte){},
		lossAt:     map[string]time.Time{},
		kick:       make(chan struct{}, 1),
		leaveReq:   make(chan chan struct{}),
		allocKick:  make(chan struct{}, 1),
		yields:     map[netip.Addr]yield{},
		conflictEv: make(chan OwnershipEvent, 64),
		msgs:       make(chan inMsg, cfg.MessageQueueLen),
		done:       make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.log = n.log.With("node", cfg.Name)
	n.localGen = uint64(n.now().UnixNano())

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
	mc.Events = (*events)(n)
	mc.LogOutput = nil
	mc.Logger = log.New(slogWriter{n.log}, "", 0)

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
	n.signal(n.kick)
	return n, nil
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

func (n *Node) joinLoop(addrs []string) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.JoinRetryInterval)
	defer t.Stop()
	for {
		n.counters.joins.Add(1)
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
		// From the node's own records: the *Node values memberlist's Members returns are
		// rewritten in place by its alive handling (a member's metadata update), a data race.
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
		if len(missing) == 0 {
			continue
		}
		if c, err := n.ml.Join(missing); err == nil && c > 0 {
			n.counters.joins.Add(1)
			n.log.Info("rejoined members", "addrs", missing)
		}
	}
}

// Leave hands over gracefully: this node first gives up its VIPs (Lost
// events, delivered before Leave goes on), then announces Meta.Leaving so the
// others move its VIPs at once without failure detection, then leaves
// memberlist. Each step waits up to timeout.
func (n *Node) Leave(timeout time.Duration) error {
	ack := make(chan struct{})
	select {
	case n.leaveReq <- ack:
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
	n.shutdownOne.Do(func() {
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
	lerr := n.Leave(timeout)
	serr := n.Shutdown()
	if lerr != nil {
		return lerr
	}
	return serr
}

// SetVIPs sets the VIPs to place across the appliances. Ownership changes
// follow on the event goroutine (OnOwnership).
func (n *Node) SetVIPs(vips []netip.Addr) {
	n.mu.Lock()
	n.vips = append([]netip.Addr(nil), vips...)
	n.vipsDirty = true
	n.mu.Unlock()
	n.signal(n.kick)
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

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	changes := n.owner.OwnerChanges()
	n.mu.Unlock()
	return Stats{
		OwnershipChanges:  changes,
		Failovers:         n.counters.failovers.Load(),
		LastFailover:      time.Duration(n.lastFailNs.Load()),
		MaxFailover:       time.Duration(n.maxFailNs.Load()),
		MalformedMeta:     n.counters.malMeta.Load(),
		MalformedMessages: n.counters.malMsg.Load(),
		MalformedState:    n.counters.malState.Load(),
		UnknownMessages:   n.counters.unknown.Load(),
		StaleAllocations:  n.counters.stale.Load(),
		MessagesDropped:   n.counters.dropped.Load(),
		BroadcastsPruned:  n.counters.pruned.Load(),
		JoinAttempts:      n.counters.joins.Load(),
	}
}

// SetAllocations replaces the allocations this node proposes and gossips
// them. Items must have unique, non-empty Service keys.
func (n *Node) SetAllocations(items []Allocation) error {
	norm, ok := normaliseItems(items)
	if !ok {
		return fmt.Errorf("cluster set allocations: duplicate service")
	}
	n.mu.Lock()
	n.localGen++
	set := AllocationSet{Origin: n.cfg.Name, Generation: n.localGen, Items: norm}
	enc, err := EncodeAllocationSet(set)
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("cluster set allocations: %w", err)
	}
	n.allocs.Merge(set)
	changed := n.resolveLocked()
	n.mu.Unlock()
	n.queueBroadcast(EncodeMessage(MsgAllocations, enc), "alloc")
	if changed {
		n.signal(n.allocKick)
	}
	return nil
}

// Allocations returns the resolved allocations (see AllocationStore for the
// rule), keyed by Service.
func (n *Node) Allocations() map[string]Allocation {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]Allocation, len(n.resolved))
	for k, a := range n.resolved {
		a.NodePorts = append([]uint16(nil), a.NodePorts...)
		out[k] = a
	}
	return out
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

func (n *Node) queueBroadcast(msg []byte, key string) {
	n.queue.QueueBroadcast(&broadcast{msg: msg, key: key})
	if q := n.queue.NumQueued(); q > n.cfg.MaxQueuedBroadcasts {
		n.queue.Prune(n.cfg.MaxQueuedBroadcasts)
		n.counters.pruned.Add(uint64(q - n.cfg.MaxQueuedBroadcasts))
	}
}

// resolveLocked recomputes the resolved allocations; reports a change.
func (n *Node) resolveLocked() bool {
	r := n.allocs.Resolve()
	if maps.EqualFunc(r, n.resolved, allocEqual) {
		return false
	}
	n.resolved = r
	return true
}

func allocEqual(a, b Allocation) bool {
	if a.Service != b.Service || a.ClusterIP != b.ClusterIP || a.ExternalIP != b.ExternalIP ||
		a.CreatedUnixMilli != b.CreatedUnixMilli || len(a.NodePorts) != len(b.NodePorts) {
		return false
	}
	for i := range a.NodePorts {
		if a.NodePorts[i] != b.NodePorts[i] {
			return false
		}
	}
	return true
}

func (n *Node) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// eventLoop is the one goroutine that runs the ownership state machine and
// the OnOwnership/OnAllocations callbacks.
func (n *Node) eventLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.kick:
			n.reconcile()
			n.notifyMembers()
		case <-tick.C:
			n.reconcile()
			n.notifyMembers()
		case ack := <-n.leaveReq:
			n.mu.Lock()
			n.leaving = true
			n.mu.Unlock()
			n.reconcile()
			close(ack)
		case <-n.allocKick:
			if n.cfg.OnAllocations != nil {
				n.cfg.OnAllocations()
			}
		case e := <-n.conflictEv:
			n.log.Info("vip ownership", "vip", e.VIP, "change", e.Change.String(), "owner", e.Owner, "previous", e.Previous, "cause", "conflict")
			if n.cfg.OnOwnership != nil {
				n.cfg.OnOwnership(e)
			}
		}
	}
}

func (n *Node) reconcile() {
	now := n.now()
	n.mu.Lock()
	var evs []OwnershipEvent
	if n.vipsDirty && !n.leaving {
		evs = append(evs, n.owner.SetVIPs(n.vips)...)
		n.vipsDirty = false
	}
	type failover struct {
		vip  netip.Addr
		from string
		d    time.Duration
	}
	var fos []failover
	var alive, left []string
	for name, r := range n.members {
		switch {
		case r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance && !r.meta.Leaving:
			alive = append(alive, name)
		case r.state == StateLeft || (r.metaValid && r.meta.Leaving):
			left = append(left, name)
		}
		if r.state != StateAlive && n.cfg.ForgetDeadAfter > 0 && now.Sub(r.since) >= n.cfg.ForgetDeadAfter {
			delete(n.members, name)
			delete(n.lossAt, name)
			if n.allocs.Forget(name) && n.resolveLocked() {
				n.signal(n.allocKick)
			}
		}
	}
	// Members still taking in the cluster's state (Meta.Syncing, this node's own flag included)
	// count toward the quorum but hold nothing yet.
	var syncing []string
	for _, name := range alive {
		if r := n.members[name]; r != nil && r.meta.Syncing {
			syncing = append(syncing, name)
		}
	}
	if n.cfg.Meta.Syncing {
		syncing = append(syncing, n.cfg.Name)
	}
	n.owner.SetExcluded(syncing)
	switch {
	case n.leaving && len(n.owner.Held()) > 0:
		evs = append(evs, n.owner.SetVIPs(nil)...)
	case !n.leaving && n.cfg.Meta.Role == RoleAppliance:
		evs = append(evs, n.owner.Update(now, alive, left)...)
	}
	// A conflict's yield ends as soon as the member it yielded to is no longer alive, or this
	// node's view hands it the VIP anew (the member died, the views changed): otherwise a node
	// that stepped aside for a returning member would keep off the VIP for the rest of
	// ConflictYield after that member died again.
	if len(n.yields) > 0 {
		aliveSet := make(map[string]bool, len(alive))
		for _, name := range alive {
			aliveSet[name] = true
		}
		gained := map[netip.Addr]bool{}
		for _, e := range evs {
			if e.Change == Gained {
				gained[e.VIP] = true
				delete(n.yields, e.VIP)
			}
		}
		for vip, y := range n.yields {
			if aliveSet[y.other] {
				continue
			}
			delete(n.yields, vip)
			if n.owner.Holds(vip) && !gained[vip] {
				// Held all along in the view, hidden by the yield: announce it now.
				_, standby := n.owner.Owner(vip)
				evs = append(evs, OwnershipEvent{VIP: vip, Owner: n.cfg.Name, Standby: standby, Previous: y.other, Change: Gained})
			}
		}
	}
	// A batch from SetVIPs then Update may mention a VIP twice; both are real transitions.
	for _, e := range evs {
		if e.Change != Gained || e.Previous == "" {
			continue
		}
		if at, ok := n.lossAt[e.Previous]; ok {
			d := now.Sub(at)
			n.counters.failovers.Add(1)
			n.lastFailNs.Store(int64(d))
			if int64(d) > n.maxFailNs.Load() {
				n.maxFailNs.Store(int64(d))
			}
			fos = append(fos, failover{e.VIP, e.Previous, d})
		}
	}
	n.mu.Unlock()
	if n.cfg.OnFailover != nil {
		for _, f := range fos {
			n.cfg.OnFailover(f.vip, f.from, f.d)
		}
	}
	for _, e := range evs {
		lvl := slog.LevelDebug
		if e.Change != Moved {
			lvl = slog.LevelInfo
		}
		n.log.Log(context.Background(), lvl, "vip ownership", "vip", e.VIP, "change", e.Change.String(), "owner", e.Owner, "standby", e.Standby, "previous", e.Previous)
		if n.cfg.OnOwnership != nil {
			n.cfg.OnOwnership(e)
		}
	}
}

func (n *Node) dispatchLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case m := <-n.msgs:
			n.mu.Lock()
			fn := n.handlers[m.t]
			n.mu.Unlock()
			if fn != nil {
				fn(m.payload)
			}
		}
	}
}

// setMember records a memberlist event; called under memberlist's lock, so
// it only touches n.mu and signals the event loop.
func (n *Node) setMember(node *memberlist.Node, state MemberState) {
	now := n.now()
	addr, _ := netip.AddrFromSlice(node.Addr)
	meta, err := DecodeMeta(node.Meta)
	if err != nil {
		n.counters.malMeta.Add(1)
		n.log.Debug("member metadata", "member", node.Name, "err", err)
	}
	n.mu.Lock()
	r := n.members[node.Name]
	if r == nil {
		r = &memberRec{}
		n.members[node.Name] = r
	}
	// memberlist's Node.State is not maintained for delegates, so a graceful
	// leave is recognised by the Leaving flag the node announced first.
	if state == StateDead && r.metaValid && r.meta.Leaving {
		state = StateLeft
	}
	if r.state != state {
		r.since = now
		n.memberDirty = true
	}
	if state == StateDead && r.state == StateAlive && r.metaValid && r.meta.Role == RoleAppliance && !r.meta.Leaving {
		n.lossAt[node.Name] = now
	}
	if state == StateAlive {
		delete(n.lossAt, node.Name)
	}
	r.state = state
	r.addr = netip.AddrPortFrom(addr.Unmap(), node.Port)
	if state == StateAlive {
		r.meta, r.metaValid = meta, err == nil
		if r.metaRaw != string(node.Meta) {
			r.metaRaw = string(node.Meta)
			n.memberDirty = true
		}
	}
	n.mu.Unlock()
	n.signal(n.kick)
}

func (n *Node) mergeAllocationSet(b []byte) {
	s, err := DecodeAllocationSet(b)
	if err != nil {
		n.counters.malMsg.Add(1)
		return
	}
	n.mergeSet(s)
}

func (n *Node) mergeSet(s AllocationSet) {
	if s.Origin == n.cfg.Name { // this node is the authority on its own set
		return
	}
	n.mu.Lock()
	if !n.allocs.Merge(s) {
		n.mu.Unlock()
		n.counters.stale.Add(1)
		return
	}
	changed := n.resolveLocked()
	n.mu.Unlock()
	if changed {
		n.signal(n.allocKick)
	}
}

// delegate implements memberlist.Delegate for Node.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	t, payload, err := DecodeMessage(b)
	if err != nil {
		n.counters.malMsg.Add(1)
		return
	}
	if t == MsgAllocations {
		n.mergeAllocationSet(payload)
		return
	}
	n.mu.Lock()
	_, ok := n.handlers[t]
	n.mu.Unlock()
	if !ok {
		n.counters.unknown.Add(1)
		return
	}
	select {
	case n.msgs <- inMsg{t: t, payload: bytes.Clone(payload)}:
	default:
		n.counters.dropped.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	sets := n.allocs.Sets()
	n.mu.Unlock()
	b, err := encodeState(sets)
	if err != nil {
		n.log.Warn("encode allocation state", "err", err)
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	n := (*Node)(d)
	if len(buf) == 0 {
		return
	}
	sets, err := DecodeState(buf)
	if err != nil {
		n.counters.malState.Add(1)
		return
	}
	for _, s := range sets {
		n.mergeSet(s)
	}
}

// events implements memberlist.EventDelegate for Node.
type events Node

func (e *events) NotifyJoin(m *memberlist.Node)   { (*Node)(e).setMember(m, StateAlive) }
func (e *events) NotifyUpdate(m *memberlist.Node) { (*Node)(e).setMember(m, StateAlive) }
func (e *events) NotifyLeave(m *memberlist.Node)  { (*Node)(e).setMember(m, StateDead) }

// broadcast is a queued gossip message; a non-empty key replaces older
// broadcasts with the same key.
type broadcast struct {
	msg []byte
	key string
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && b.key != "" && o.key == b.key
}
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// slogWriter routes memberlist's log lines into slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(bytes.TrimRight(p, "\n")), "component", "memberlist")
	return len(p), nil
}
