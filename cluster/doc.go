// Package cluster is the appliance's gossip layer, built on
// hashicorp/memberlist: node membership, computed VIP ownership, and gossip
// of allocations plus a typed message channel for other state (endpoint
// health, flow-state sync).
//
// # Membership
//
// New starts a Node: memberlist with timings tuned for a LAN (DefaultConfig:
// probe every 200 ms, 100 ms probe timeout, suspicion x2, gossip every 50 ms;
// a crashed member is declared dead in well under a second), joining
// Config.Join in the background with retry. With Config.SecretKey (16, 24 or
// 32 bytes) all gossip is AES-GCM encrypted and GossipVerifyIncoming/Outgoing
// are on: a node without the key cannot join, and its packets are dropped by
// memberlist before any of this package's code sees them.
//
// Every member gossips Meta (role appliance/backend agent, software version,
// external and cluster addresses, a leaving flag) in a versioned compact
// encoding of at most 512 bytes. Metadata of others is untrusted: it is
// decoded defensively, and a member whose metadata does not decode is counted
// (Stats.MalformedMeta) and never ranked for VIPs.
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
// Each node proposes its allocations (Service key -> ClusterIP, external IP,
// NodePorts, creation time) as an AllocationSet with a generation that only
// increases (it starts from the clock at New, so a restart supersedes the old
// set). Sets travel as broadcasts (a newer set replaces a queued older one)
// and in memberlist's periodic push-pull state exchange, so a node that missed
// a broadcast or joins late converges. Every node resolves all sets with the
// rule documented on AllocationStore: the earliest created proposal wins,
// ties to the lowest node name; a value already taken by an earlier winner is
// cleared in the later one (to be allocated again). The result depends only
// on the sets held, not the order they arrived.
//
// # Messages
//
// A gossip message is [WireVersion][type][payload]. Types below MsgUserMin
// are this package's; Node.Handle/Broadcast/SendTo give other packages typed
// messages on the same channel. Received messages wait in a bounded queue for
// their handler; when it is full they are dropped and counted. Anything that
// does not decode is counted in Stats and dropped: bad gossip never panics
// and never changes the serving state.
//
// # Goroutines
//
// Node methods are safe for concurrent use. Config.OnOwnership,
// OnAllocations and OnFailover run on the node's single event goroutine, one
// at a time, in order; Handle callbacks run on its dispatch goroutine. Do not
// call Leave, Close or Shutdown from a callback. VIPOwner and AllocationStore
// are not safe for concurrent use; the pure functions (Rank, ShouldStepDown,
// Encode*/Decode*) are.
package cluster
