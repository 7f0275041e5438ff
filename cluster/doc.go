// Package cluster is the appliance's gossip layer, built on
// hashicorp/memberlist: node membership, computed VIP ownership, and gossip
// of allocations plus a typed message channel for other state (endpoint
// health, flow-state sync).
//
// # Membership
//
// New starts a Node: memberlist with timings tuned for a LAN (DefaultConfig's
// ProbeInterval, ProbeTimeout, SuspicionMult and GossipInterval: a crashed
// member is declared dead in well under a second), joining Config.Join in the
// background with retry. With Config.SecretKey (16, 24 or
// 32 bytes) all gossip is AES-GCM encrypted and GossipVerifyIncoming/Outgoing
// are on: a node without the key cannot join, and its packets are dropped by
// memberlist before any of this package's code sees them.
//
// Every member gossips Meta (role appliance/backend agent, software version,
// external and cluster addresses, a leaving flag) in a versioned compact
// encoding of at most MetaMaxBytes. Metadata of others is untrusted: it is
// decoded defensively, and a member whose metadata does not decode is counted
// (Stats.MalformedMeta) and never ranked for VIPs. The local view holds at
// most maxMembers names (every map keyed by a member name hangs off it): past
// that a new name replaces the longest-gone member or is refused
// (Stats.MembersRefused).
//
// memberlist v0.7.0 does not tell delegates a member's state (the Node.State
// it hands over is stale), so MemberInfo.State is alive, dead or left as
// derived from join/leave events: a graceful leave is recognised because
// Node.Leave first sets Meta.Leaving; "suspect" is not observable and shows
// as alive.
//
// # VIP ownership
//
// Ownership is computed, not elected. Every appliance ranks the live
// appliance members for each VIP with Rank, rendezvous (highest random
// weight) hashing of (VIP, node name): the first holds the VIP, the second is
// its standby. VIPs spread evenly, and when a member goes only the VIPs it
// held move, each to its standby. VIPOwner is that rule as a pure state
// machine over member-set inputs (no clock, no I/O); Node feeds it from
// memberlist's join/leave/update events and reports changes as
// OwnershipEvents (Gained: announce it; Lost: stop answering at once; Moved:
// someone else's change). ShouldStepDown is the same rule applied to a
// conflict seen on the wire ("another MAC answers for my VIP"): Node.Conflict
// maps the MAC to a member through Meta.MACs and steps down for ConflictYield
// only when that member is alive in the local view and ranks above (see
// conflict.go; a member seen dead is the partition case and does not count).
//
// On Node.Leave the node gives up all its VIPs first (Lost events delivered
// before Leave continues), then announces Meta.Leaving so the others take the
// VIPs at once, then leaves memberlist.
//
// # Partitions
//
// With RequireQuorum (the default) a node claims VIPs only while it sees a
// strict majority of the last known appliance membership: every appliance it
// has seen alive, minus those that left gracefully, minus those dead for
// longer than ForgetDeadAfter, but never fewer than ExpectedMembers (so a node
// that never saw the others, e.g. started with the wrong key, claims nothing). In a partition the majority side (if there is
// one) re-ranks among itself and takes the VIPs of the members it lost; every
// node of the minority side gives up all its VIPs as soon as it declares the
// others dead. So apart from the detection window (under a second) at most
// one node answers for a VIP. When the sides heal, memberlist's gossip merges
// the views; every node ranks the same full set again and each VIP has
// exactly one owner. If no side has a majority (an even split) nobody holds
// VIPs until the partition heals or ForgetDeadAfter passes.
//
// Consequences to know: with two appliances, losing one leaves the other
// without quorum until ForgetDeadAfter (use RequireQuorum=false for a pair
// and accept split brain on a partition); a partition that lasts longer than
// ForgetDeadAfter lets each side forget the other and claim (split brain),
// so ForgetDeadAfter should exceed the longest partition to ride out. Without
// RequireQuorum every side holds VIPs by ranking its own members.
//
// # Allocation gossip
//
// Each appliance proposes its allocations (Service key -> ClusterIP, external
// IP, NodePorts, creation time) as an AllocationSet with a generation that
// only increases (it starts from the clock at New, in nanoseconds since the
// Unix epoch, and grows by one per change, so a restart supersedes the old
// set). A set travels only from its origin: as a broadcast (a newer set
// replaces a queued older one), in memberlist's periodic push-pull state
// exchange (each node's state is its own set), and sent straight to every
// appliance seen to become alive (so a late joiner converges at once). Every
// node resolves all sets with the rule documented on AllocationStore: the
// earliest created proposal wins, ties to the lowest node name; a value
// already taken by an earlier winner is cleared in the later one (to be
// allocated again). The result depends only on the sets held, not the order
// they arrived.
//
// A received set is accepted only when its origin is the sender named in the
// envelope and that sender is an alive appliance member; its generation must
// be newer than the set held and at most Config.MaxGenerationLead ahead of
// the receiver's clock (so a wild generation cannot lock the origin's later
// sets out). A member seen to die or leave and come back is a new
// incarnation: its next set is accepted whatever its generation (a clock
// that went back across the restart). The store holds sets of members only,
// and the member view is bounded (maxMembers), so it stays bounded.
//
// # Messages
//
// A gossip message is [WireVersion][type][sender][payload]. Types below
// MsgUserMin are this package's; Node.HandleFrom (or Handle, without the
// sender) / Broadcast / SendTo give other packages typed messages on the same
// channel. Every message's size is checked against its kind's limit before it
// is decoded or copied (allocation sets, Config.MaxMessageBytes or
// SetMessageLimit per typed message, the push-pull state); typed messages
// whose sender is not an alive member are dropped; the rest wait in a queue
// bounded in count and bytes for their handler, and are dropped when it is
// full. Everything dropped is counted in Stats: bad gossip never panics and
// never changes the serving state.
//
// # Trust
//
// The cluster key (Config.SecretKey) keeps outsiders out; among key holders,
// the sender a message names is its own claim, which memberlist cannot check
// (NotifyMsg gives no sender). The rules above therefore stop a key holder
// from forging another's allocations or reports only as far as key holders
// are appliances, which is why backend agents never hold the appliances' key:
// they join a separate memberlist, the agent cluster, with a key of their own,
// where each appliance runs a Node given no VIPs, no allocations and no
// handlers and read only through Backends (agent.go). A member's address is
// its own claim too; Backends lists an agent only once a direct probe got an
// ack from its address (pingDelegate), so Addr is where it answers. Typed
// message handlers check the sender's role themselves (IsLiveAppliance) and
// that a payload speaks only for its sender.
//
// # Files
//
// As in hashicorp/memberlist: node.go holds the Node's lifecycle and
// queries; delegate.go and event_delegate.go the memberlist delegates;
// reconcile.go the event goroutine that drives VIPOwner; allocation_gossip.go,
// messages.go and broadcast.go the gossip; conflict.go and agent.go the ARP
// conflict rule and the backend agents' view; wire*.go the encodings, one
// file per message family.
//
// # Concurrency
//
// Node methods are safe for concurrent use. Three kinds of goroutine call
// into a Node:
//
//   - The caller's goroutines call the exported methods. Join, Leave, Close
//     and SetMeta block in memberlist up to their timeouts; Leave also waits
//     for the event goroutine to give up this node's VIPs. The other methods
//     take Node.mu briefly and return.
//   - memberlist's goroutines call the delegates (delegate.go,
//     event_delegate.go; each method's comment says which): its packet
//     handler (NotifyMsg for broadcasts; member events from alive, suspect
//     and dead gossip), one goroutine per stream connection (NotifyMsg for
//     SendTo; LocalState and MergeRemoteState for push-pull), its gossip and
//     probe goroutines (GetBroadcasts; NotifyLeave when a member is declared
//     dead, also from a suspicion timer), its push-pull goroutine, and the
//     caller's goroutine inside New, Join, Leave and SetMeta (NodeMeta, this
//     node's own member events, the push-pull of a join); the probe
//     goroutine also calls the ping delegate (agent.go). The event delegate
//     runs with memberlist's member lock held. No delegate method blocks or
//     calls back into memberlist: each records what it got under Node.mu,
//     counts, and wakes the event goroutine.
//   - The node's own goroutines: the event goroutine (eventLoop) is the only
//     one that changes VIPOwner (reconcile) and runs Config.OnOwnership,
//     OnAllocations, OnFailover and OnMembers, one at a time, in order; the
//     dispatch goroutine (dispatchLoop) runs the Handle callbacks, one message
//     at a time; the joiner (joinLoop, then rejoinLoop) runs when Config.Join
//     is set; a greeter (greetMembers), started by the event goroutine, sends
//     this node's allocation set to members that just became alive; and a
//     timer per conflict yield (Conflict) ends the yield and hands a Gained
//     event to the event goroutine.
//
// Node.mu guards the member records, VIPOwner, the VIPs to place, the
// AllocationStore and its resolved view, the local generation, the handlers
// and their size limits, the death-detection times, the members to greet,
// the conflict yields, the leaving and
// changed flags, and this node's metadata (Config.Meta and its encoding). It
// is held only for short sections that neither block nor call out: never
// across a callback, a memberlist call or a blocking channel send. The lock
// order is memberlist's member lock, then Node.mu (the event delegate takes
// Node.mu under memberlist's lock), which is why the node never calls
// memberlist while holding Node.mu. The counters behind Stats are atomics;
// the broadcast queue (memberlist.TransmitLimitedQueue) has its own lock, and
// the byte count of the dispatch queue is an atomic.
// Wake-ups of the event goroutine coalesce (channels of one); received user
// messages wait in a queue of Config.MessageQueueLen.
//
// Do not call Leave, Close or Shutdown from a callback: Leave waits for the
// event goroutine and Shutdown for every node goroutine to end. VIPOwner and
// AllocationStore are not safe for concurrent use; the pure functions (Rank,
// ShouldStepDown, Encode*/Decode*) are.
package cluster
