package conntrack

import (
	"errors"
	"fmt"
	"time"
)

// Config sizes the table and sets its timeouts. Every field has a usable default in DefaultConfig.
type Config struct {
	// MaxEntries is the number of IPv4 flows the table can hold (each flow holds both directions).
	// Memory is allocated once in New: 64 bytes per flow plus the hash index (about 98 bytes per
	// flow in total at 10M flows).
	MaxEntries int
	// MaxEntriesIPv6 is the number of IPv6 flows (112 bytes per flow plus index). 0 disables IPv6.
	MaxEntriesIPv6 int

	// TCPSynSentTimeout is how long a flow that has only sent a SYN lives (nf_conntrack_tcp_timeout_syn_sent).
	TCPSynSentTimeout time.Duration
	// TCPSynRecvTimeout is how long a flow whose backend answered SYN-ACK waits for the final ACK.
	TCPSynRecvTimeout time.Duration
	// TCPEstablishedTimeout is the idle timeout of an established connection (Linux: 5 days; kube-proxy sets 24h).
	TCPEstablishedTimeout time.Duration
	// TCPFinWaitTimeout is the idle timeout after the first FIN.
	TCPFinWaitTimeout time.Duration
	// TCPCloseWaitTimeout is the idle timeout after the first FIN has been acknowledged by the other side.
	TCPCloseWaitTimeout time.Duration
	// TCPLastAckTimeout is the idle timeout after both sides have sent FIN.
	TCPLastAckTimeout time.Duration
	// TCPTimeWaitTimeout keeps a closed connection (and its SNAT port) until its last segments are gone.
	TCPTimeWaitTimeout time.Duration
	// TCPTimeWaitReuseAfter lets a new connection's SYN take over the SNAT tuple of a closed
	// connection (TIME_WAIT or CLOSE) idle for at least this long, as Linux does with
	// tcp_tw_reuse (1 s) and nf_nat's TIME_WAIT takeover; without it each backend could take
	// only (SNAT ports / TIME_WAIT) new connections per second per SNAT address. 0 disables it.
	TCPTimeWaitReuseAfter time.Duration
	// TCPCloseTimeout keeps a reset connection (and its SNAT port) for a short while.
	TCPCloseTimeout time.Duration
	// TCPUnrepliedTimeout caps the idle timeout of a TCP flow whose backend has never answered
	// (a SYN or a loose pickup without a reply): whatever its state, such a flow holds its SNAT
	// port no longer than this, so bare ACKs or SYNs from a client cannot pin a backend's ports
	// for the established timeout. Such flows are also the first to give up their port when a
	// SNAT range is full (see Insert).
	TCPUnrepliedTimeout time.Duration
	// UDPTimeout is the idle timeout of a UDP flow that has seen no reply (nf_conntrack_udp_timeout).
	UDPTimeout time.Duration
	// UDPStreamTimeout is the idle timeout of a UDP flow that has seen a reply (nf_conntrack_udp_timeout_stream).
	UDPStreamTimeout time.Duration
	// ICMPTimeout is the idle timeout of an ICMP echo flow (nf_conntrack_icmp_timeout).
	ICMPTimeout time.Duration

	// TCPLoosePickup lets a TCP flow start from a non-SYN segment with ACK set (an established
	// connection picked up mid-stream, e.g. after a VIP moved), like nf_conntrack_tcp_loose=1.
	// Such a flow is evictable until the backend answers.
	TCPLoosePickup bool

	// SNATPortMin is the lowest SNAT source port (and ICMP echo identifier) handed out.
	SNATPortMin uint16
	// SNATPortMax is the highest SNAT source port handed out (inclusive).
	SNATPortMax uint16
	// SNATAttempts is how many pseudo-random candidate ports Insert tries before giving up.
	SNATAttempts int

	// EvictScanEntries is how many entries Insert examines for an evictable victim (expired or not
	// yet assured) when the table is full, before it refuses the new flow.
	EvictScanEntries int

	// HashSeed seeds the flow hash. 0 picks a random seed in New (the normal case: remote peers
	// must not be able to predict bucket collisions); tests may fix it.
	HashSeed uint64
}

// DefaultConfig returns Linux conntrack's default timeouts, 1M IPv4 and 256k IPv6 flows and the
// SNAT port range 61000-65535.
//
// The SNAT range sits above Linux's ephemeral range (ip_local_port_range 32768-60999) and the
// NodePort range (30000-32767): the steering program sends node IP + SNAT port to the appliance,
// so the range must not hold ports that the node's own kernel sockets (gossip, SSH, admin API,
// outgoing connections) use. Each (SNAT address, backend address:port, protocol) gets its own
// 4536 ports; give more SNAT addresses or widen the range when one backend needs more
// concurrent flows from one SNAT address.
func DefaultConfig() Config {
	return Config{
		MaxEntries:            1 << 20,
		MaxEntriesIPv6:        1 << 18,
		TCPSynSentTimeout:     120 * time.Second,
		TCPSynRecvTimeout:     60 * time.Second,
		TCPEstablishedTimeout: 5 * 24 * time.Hour,
		TCPFinWaitTimeout:     120 * time.Second,
		TCPCloseWaitTimeout:   60 * time.Second,
		TCPLastAckTimeout:     30 * time.Second,
		TCPTimeWaitTimeout:    120 * time.Second,
		TCPTimeWaitReuseAfter: time.Second,
		TCPCloseTimeout:       10 * time.Second,
		TCPUnrepliedTimeout:   30 * time.Second,
		UDPTimeout:            30 * time.Second,
		UDPStreamTimeout:      120 * time.Second,
		ICMPTimeout:           30 * time.Second,
		TCPLoosePickup:        true,
		SNATPortMin:           61000,
		SNATPortMax:           65535,
		SNATAttempts:          64,
		EvictScanEntries:      32,
	}
}

// maxEntries bounds the capacity so that a flow index fits a slot's 31 bits.
const maxEntries = 1 << 30

// maxTimeout keeps every timeout below 2^31 ticks so that wrap-around comparisons hold.
const maxTimeout = time.Duration(1<<31-1) << tickShift

func (c *Config) validate() error {
	if c.MaxEntries < 0 || c.MaxEntries > maxEntries {
		return fmt.Errorf("MaxEntries %d: must be between 0 and %d", c.MaxEntries, maxEntries)
	}
	if c.MaxEntriesIPv6 < 0 || c.MaxEntriesIPv6 > maxEntries {
		return fmt.Errorf("MaxEntriesIPv6 %d: must be between 0 and %d", c.MaxEntriesIPv6, maxEntries)
	}
	if c.MaxEntries == 0 && c.MaxEntriesIPv6 == 0 {
		return errors.New("MaxEntries and MaxEntriesIPv6 are both 0")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TCPSynSentTimeout", c.TCPSynSentTimeout},
		{"TCPSynRecvTimeout", c.TCPSynRecvTimeout},
		{"TCPEstablishedTimeout", c.TCPEstablishedTimeout},
		{"TCPFinWaitTimeout", c.TCPFinWaitTimeout},
		{"TCPCloseWaitTimeout", c.TCPCloseWaitTimeout},
		{"TCPLastAckTimeout", c.TCPLastAckTimeout},
		{"TCPTimeWaitTimeout", c.TCPTimeWaitTimeout},
		{"TCPCloseTimeout", c.TCPCloseTimeout},
		{"TCPUnrepliedTimeout", c.TCPUnrepliedTimeout},
		{"UDPTimeout", c.UDPTimeout},
		{"UDPStreamTimeout", c.UDPStreamTimeout},
		{"ICMPTimeout", c.ICMPTimeout},
	} {
		if d.v <= 0 || d.v > maxTimeout {
			return fmt.Errorf("%s %v: must be above 0 and at most %v", d.name, d.v, maxTimeout)
		}
	}
	if c.TCPTimeWaitReuseAfter < 0 || c.TCPTimeWaitReuseAfter > maxTimeout {
		return fmt.Errorf("TCPTimeWaitReuseAfter %v: must be between 0 (off) and %v", c.TCPTimeWaitReuseAfter, maxTimeout)
	}
	if c.SNATPortMin == 0 || c.SNATPortMin > c.SNATPortMax {
		return fmt.Errorf("SNAT port range %d-%d: must be a non-empty range of ports above 0", c.SNATPortMin, c.SNATPortMax)
	}
	if c.SNATAttempts <= 0 {
		return fmt.Errorf("SNATAttempts %d: must be above 0", c.SNATAttempts)
	}
	if c.EvictScanEntries < 0 {
		return fmt.Errorf("EvictScanEntries %d: must not be negative", c.EvictScanEntries)
	}
	return nil
}
