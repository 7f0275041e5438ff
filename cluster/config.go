package cluster

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Node.
type Config struct {
	// Name is the node's unique name in the cluster (memberlist node name).
	Name string
	// BindAddr is the address and port memberlist listens on (UDP and TCP).
	// Port 0 picks a free port (tests); AddrPort() then tells which.
	BindAddr netip.AddrPort
	// AdvertiseAddr is the address others should use; zero = BindAddr.
	AdvertiseAddr netip.AddrPort
	// Join lists "host:port" addresses of known members. New joins them in
	// the background, retrying every JoinRetryInterval until one answers, then
	// re-joins those that are not alive members every RejoinInterval.
	Join []string
	// JoinRetryInterval is the wait between join attempts.
	JoinRetryInterval time.Duration
	// RejoinInterval is how often, once joined, the node re-joins configured addresses that are
	// not alive members (healing a partition); 0 disables it.
	RejoinInterval time.Duration
	// SecretKey, when set, is the 16, 24 or 32-byte AES key: all gossip is
	// encrypted and unencrypted or wrongly keyed traffic is refused.
	SecretKey []byte

	// Meta is what this node tells others about itself (role, addresses, version).
	Meta Meta

	// ProbeInterval is memberlist's failure-probe period.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout before a suspect is declared dead.
	SuspicionMult int
	// GossipInterval is the period of gossip rounds (broadcasts go out on it).
	GossipInterval time.Duration
	// PushPullInterval is the period of full state exchanges with a random member.
	PushPullInterval time.Duration
	// TCPTimeout bounds a stream connection (join, push-pull, reliable send).
	TCPTimeout time.Duration

	// RequireQuorum: claim VIPs only while seeing a strict majority of the last
	// known appliance membership (see doc.go, "Partitions").
	RequireQuorum bool
	// ForgetDeadAfter is how long a dead appliance still counts in the last
	// known membership, and how long a dead origin's allocations are kept. 0 = forever.
	ForgetDeadAfter time.Duration
	// MaxGenerationLead is how far ahead of this node's clock, read as
	// nanoseconds since the Unix epoch, a received allocation set's generation
	// may be (generations start from the sender's clock): it covers clock skew
	// between appliances. Sets further ahead are refused (Stats.FutureGenerations).
	MaxGenerationLead time.Duration
	// ExpectedMembers is the floor of the membership the quorum counts
	// against (see OwnerConfig.ExpectedMembers); 0 = no floor.
	ExpectedMembers int

	// MaxQueuedBroadcasts bounds the outgoing broadcast queue; the oldest
	// broadcasts beyond it are pruned and counted in Stats.BroadcastsPruned.
	MaxQueuedBroadcasts int
	// MessageQueueLen bounds received user messages waiting for their handler;
	// messages that find it full are counted in Stats.MessagesDropped.
	MessageQueueLen int
	// MessageQueueBytes bounds the payload bytes of the received user messages
	// waiting for their handler; beyond it messages are dropped and counted in
	// Stats.MessagesDropped.
	MessageQueueBytes int
	// MaxMessageBytes is the largest user message (header included) accepted
	// for a type registered with Handle or HandleFrom, unless SetMessageLimit
	// set another; larger ones are dropped before they are copied and counted
	// in Stats.OversizedMessages.
	MaxMessageBytes int

	// OnOwnership, if set, receives every VIP ownership change. Called from
	// the node's event goroutine, one call at a time; must not block long.
	OnOwnership func(OwnershipEvent)
	// OnAllocations, if set, is called after the resolved allocations changed
	// (read them with Allocations). Same goroutine as OnOwnership.
	OnAllocations func()
	// OnFailover, if set, receives each measured failover duration: from the
	// local node detecting a member's death to this node taking one of its VIPs.
	OnFailover func(vip netip.Addr, from string, d time.Duration)
	// OnMembers, if set, is called after the member set, a member's state or
	// a member's metadata changed (read them with Members or Backends). Same
	// goroutine as OnOwnership; calls coalesce.
	OnMembers func()

	// Logger receives the node's logs; memberlist's own lines go to it at debug level.
	Logger *slog.Logger
	// Transport, if set, replaces memberlist's UDP and TCP sockets (BindAddr is
	// then unused): tests pass a memberlist.MockNetwork transport to run nodes
	// in memory.
	Transport memberlist.Transport
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// DefaultConfig returns timings tuned for a LAN of appliances (a crashed
// member is declared dead in under a second; measured times in
// ARCHITECTURE.md), quorum required, and dead members forgotten after
// ForgetDeadAfter.
func DefaultConfig() Config {
	return Config{
		BindAddr:            netip.AddrPortFrom(netip.IPv4Unspecified(), 7946),
		JoinRetryInterval:   time.Second,
		RejoinInterval:      250 * time.Millisecond,
		Meta:                Meta{Role: RoleAppliance},
		ProbeInterval:       200 * time.Millisecond,
		ProbeTimeout:        100 * time.Millisecond,
		SuspicionMult:       2,
		GossipInterval:      50 * time.Millisecond,
		PushPullInterval:    10 * time.Second,
		TCPTimeout:          2 * time.Second,
		RequireQuorum:       true,
		ForgetDeadAfter:     5 * time.Minute,
		MaxGenerationLead:   10 * time.Minute,
		MaxQueuedBroadcasts: 1024,
		MessageQueueLen:     1024,
		MessageQueueBytes:   16 << 20,
		MaxMessageBytes:     2 << 20,
	}
}

// Validate checks c and returns every problem found.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("cluster config: name: empty")
	case len(c.Name) > maxNameBytes:
		return fmt.Errorf("cluster config: name: longer than %d bytes", maxNameBytes)
	case c.Transport == nil && !c.BindAddr.Addr().IsValid():
		return fmt.Errorf("cluster config: bind: invalid address %s", c.BindAddr)
	case len(c.SecretKey) != 0 && !validKeyLen(len(c.SecretKey)):
		return fmt.Errorf("cluster config: secret key: %d bytes, want 16, 24 or 32", len(c.SecretKey))
	case c.Meta.Role != RoleAppliance && c.Meta.Role != RoleBackend:
		return fmt.Errorf("cluster config: role: %v", c.Meta.Role)
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.GossipInterval <= 0 || c.PushPullInterval <= 0 || c.TCPTimeout <= 0 || c.JoinRetryInterval <= 0:
		return fmt.Errorf("cluster config: intervals and timeouts must be positive")
	case c.SuspicionMult < 1:
		return fmt.Errorf("cluster config: suspicion multiplier %d, want at least 1", c.SuspicionMult)
	case c.MaxQueuedBroadcasts < 1 || c.MessageQueueLen < 1 || c.MessageQueueBytes < 1:
		return fmt.Errorf("cluster config: queue lengths must be positive")
	case c.MaxMessageBytes <= msgHeaderBytes || c.MaxMessageBytes > c.MessageQueueBytes:
		return fmt.Errorf("cluster config: max message bytes %d: must exceed the header and fit MessageQueueBytes %d", c.MaxMessageBytes, c.MessageQueueBytes)
	case c.ExpectedMembers < 0:
		return fmt.Errorf("cluster config: expected members %d: negative", c.ExpectedMembers)
	case c.MaxGenerationLead <= 0:
		return fmt.Errorf("cluster config: max generation lead %s: must be positive", c.MaxGenerationLead)
	case c.ForgetDeadAfter < 0:
		return fmt.Errorf("cluster config: forget dead after %s: negative", c.ForgetDeadAfter)
	}
	if _, err := EncodeMeta(c.Meta); err != nil {
		return fmt.Errorf("cluster config: meta: %w", err)
	}
	return nil
}
