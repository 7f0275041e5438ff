package dataplane

import "github.com/xdpsvc/lb/packet"

// Reason is why the data plane dropped (or answered instead of forwarding) a frame. The first
// packet.NumDropReasons values are packet's parse and rewrite reasons; the rest are the
// pipeline's own. Every reason is a counter (appliance_dropped_packets_total{reason}).
type Reason uint8

// The pipeline's own reasons, after packet's.
const (
	// ReasonIPv6 is an IPv6 frame: parsed, but not forwarded (single-stack IPv4 Service model).
	ReasonIPv6 Reason = Reason(packet.NumDropReasons) + iota
	// ReasonNoFrontend is a first packet to an (address, port, protocol) no Service serves.
	ReasonNoFrontend
	// ReasonOutsideCluster is a packet to a ClusterIP from a source outside clusterCIDRs.
	ReasonOutsideCluster
	// ReasonSourceRange is a packet to a VIP from outside loadBalancerSourceRanges.
	ReasonSourceRange
	// ReasonRejected is a first packet to a Service port without endpoints, answered with a
	// TCP RST or ICMP port unreachable.
	ReasonRejected
	// ReasonInvalidFirst is a TCP segment without a flow that cannot open one (not a SYN).
	ReasonInvalidFirst
	// ReasonTableFull is a new flow refused because the conntrack table is full.
	ReasonTableFull
	// ReasonNoSNATPort is a new flow refused because no SNAT port was free.
	ReasonNoSNATPort
	// ReasonNoNeighbour is a frame whose next hop's MAC is not known yet (a probe is sent).
	ReasonNoNeighbour
	// ReasonBackendGone is a packet of a flow whose endpoint was removed: TCP gets a RST.
	ReasonBackendGone
	// ReasonARPIgnored is an ARP frame that is not a request for a held VIP.
	ReasonARPIgnored
	// ReasonICMPIgnored is an ICMP message that belongs to no flow and no local address.
	ReasonICMPIgnored
	// ReasonTXFull is a frame the egress queue did not accept.
	ReasonTXFull
	// ReasonNoSNATAddr is a new flow whose egress port has no IPv4 address to SNAT to.
	ReasonNoSNATAddr
	// ReasonVIPConflict is an ARP reply or gratuitous ARP for a VIP this node holds from
	// another MAC: another node answers for it (reported on DataPlane.Conflicts).
	ReasonVIPConflict
	// ReasonWrongPort is a frame that arrived on a port it may not come from: a ClusterIP's
	// first packet on an external-role port, or a packet (or ICMP error) of a known flow on
	// another port than the one its direction uses.
	ReasonWrongPort
	// ReasonMartianSource is a first packet from a source no client can have (0/8, 127/8,
	// multicast, broadcast and reserved, the node's own addresses, VIPs, ClusterIPs).
	ReasonMartianSource
	// ReasonLocalReplyLimit is a local reply (RST, ICMP unreachable, echo or ARP reply) not
	// sent because the worker's reply rate limit was exhausted.
	ReasonLocalReplyLimit
	// ReasonSourceLimit is a new flow refused because its source opened too many recently.
	ReasonSourceLimit

	// NumReasons sizes counter arrays.
	NumReasons
)

var reasonNames = [...]string{
	ReasonIPv6 - Reason(packet.NumDropReasons):            "ipv6_not_forwarded",
	ReasonNoFrontend - Reason(packet.NumDropReasons):      "no_frontend",
	ReasonOutsideCluster - Reason(packet.NumDropReasons):  "clusterip_outside_cluster",
	ReasonSourceRange - Reason(packet.NumDropReasons):     "source_range",
	ReasonRejected - Reason(packet.NumDropReasons):        "rejected_no_endpoints",
	ReasonInvalidFirst - Reason(packet.NumDropReasons):    "invalid_first_packet",
	ReasonTableFull - Reason(packet.NumDropReasons):       "conntrack_full",
	ReasonNoSNATPort - Reason(packet.NumDropReasons):      "no_snat_port",
	ReasonNoNeighbour - Reason(packet.NumDropReasons):     "no_neighbour",
	ReasonBackendGone - Reason(packet.NumDropReasons):     "backend_removed",
	ReasonARPIgnored - Reason(packet.NumDropReasons):      "arp_ignored",
	ReasonICMPIgnored - Reason(packet.NumDropReasons):     "icmp_ignored",
	ReasonTXFull - Reason(packet.NumDropReasons):          "tx_full",
	ReasonNoSNATAddr - Reason(packet.NumDropReasons):      "no_snat_address",
	ReasonVIPConflict - Reason(packet.NumDropReasons):     "vip_conflict",
	ReasonWrongPort - Reason(packet.NumDropReasons):       "wrong_port",
	ReasonMartianSource - Reason(packet.NumDropReasons):   "martian_source",
	ReasonLocalReplyLimit - Reason(packet.NumDropReasons): "local_reply_limit",
	ReasonSourceLimit - Reason(packet.NumDropReasons):     "source_limit",
}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < Reason(packet.NumDropReasons) {
		return packet.DropReason(r).String()
	}
	if i := int(r) - int(packet.NumDropReasons); i < len(reasonNames) {
		return reasonNames[i]
	}
	return "unknown"
}
