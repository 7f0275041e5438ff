package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"regexp"
)

// Address plan of ARCHITECTURE.md, "The lab". Every address the lab configures comes from 198.18.0.0/15.
var (
	// ExternalSegment is the external side: clients and the appliances' external interfaces.
	ExternalSegment = netip.MustParsePrefix("198.18.0.0/24")
	// ClusterSegment is the cluster side: backends, in-cluster clients and the appliances' cluster interfaces.
	ClusterSegment = netip.MustParsePrefix("198.18.1.0/24")
	// ServiceCIDR holds the ClusterIPs; cluster-side namespaces route it via an appliance node.
	ServiceCIDR = netip.MustParsePrefix("198.19.0.0/24")
	// LoadBalancerPool holds the external VIPs; external clients reach it on-link (they ARP for VIPs).
	LoadBalancerPool = netip.MustParsePrefix("198.19.1.0/24")
	// benchRange is the only range the lab may ever configure.
	benchRange = netip.MustParsePrefix("198.18.0.0/15")
)

// First host octets per role; the limits below keep the roles' ranges apart.
const (
	nodeHostBase          = 11  // nodes 198.18.0.11.. and 198.18.1.11..
	backendHostBase       = 21  // backends 198.18.1.21..
	clusterClientHostBase = 50  // in-cluster clients 198.18.1.50..
	clientHostBase        = 100 // external clients 198.18.0.100..

	maxNodes          = 9   // .11-.19
	maxBackends       = 29  // .21-.49
	maxClusterClients = 50  // .50-.99
	maxClients        = 100 // .100-.199
	maxQueues         = 16  // veth queues per appliance interface
)

// Interface names inside the namespaces. Every namespace is the lab's own, so only namespace names need the
// run prefix; interface names are fixed and short (Linux allows at most 15 bytes).
const (
	// NodeExternalIface is an appliance node's interface on the external segment (configs/lab-node-*.yaml).
	NodeExternalIface = "ext0"
	// NodeClusterIface is an appliance node's interface on the cluster segment.
	NodeClusterIface = "int0"
	// HostIface is the single interface of client, backend and in-cluster client namespaces.
	HostIface = "eth0"
	// ExternalBridge is the bridge of the external segment in the switch namespace.
	ExternalBridge = "brx"
	// ClusterBridge is the bridge of the cluster segment in the switch namespace.
	ClusterBridge = "brc"
)

// Spec says how big a lab to build. The zero value of a count means none; DefaultSpec gives a useful lab.
type Spec struct {
	// Prefix is the per-run name prefix of every namespace ("l" + 4 hex digits when empty). It must match
	// ^[a-z][a-z0-9]{1,7}$ so names stay short and the sweeper can recognise them.
	Prefix string
	// Nodes is the number of appliance-node namespaces (1..9), each with an external and a cluster interface.
	Nodes int
	// Clients is the number of external client namespaces (0..100) on the external segment.
	Clients int
	// Backends is the number of backend namespaces (0..29) on the cluster segment.
	Backends int
	// ClusterClients is the number of in-cluster client namespaces (0..50) on the cluster segment.
	ClusterClients int
	// Queues is the number of RX and TX queues of each appliance-node veth (1..16; 0 means 1).
	Queues int
	// GatewayNode is the 1-based index of the node whose cluster address is the cluster side's route to the
	// service CIDR and the backends' default route (0 means node 1).
	GatewayNode int
	// StateDir is where the state file <prefix>.json is kept (default /run/xdpsvc-lab).
	StateDir string
	// Persistent marks a lab that outlives the process that built it (bench lab up): the sweeper never
	// removes it; only Down or `bench lab down` does.
	Persistent bool
	// Logf receives progress lines (nil: silent). Called from the goroutine that calls Up and Down.
	Logf func(format string, args ...any)

	// failAfterNamespaces makes Up fail after creating this many namespaces (tests of cleanup; 0 = never).
	failAfterNamespaces int
}

// DefaultStateDir is where state files live unless Spec.StateDir says otherwise.
const DefaultStateDir = "/run/xdpsvc-lab"

// DefaultSpec is a lab of two appliance nodes, one external client, three backends and one in-cluster
// client, one queue per appliance interface, with a random prefix.
func DefaultSpec() Spec {
	return Spec{Nodes: 2, Clients: 1, Backends: 3, ClusterClients: 1, Queues: 1, GatewayNode: 1, StateDir: DefaultStateDir}
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,7}$`)

// nsNameRE matches every namespace name the lab creates: <prefix>-sw, -nN, -cN, -bN, -kN.
var nsNameRE = regexp.MustCompile(`^([a-z][a-z0-9]{1,7})-(sw|[ncbk][1-9][0-9]{0,2})$`)

// normalize fills defaults and checks limits.
func (s Spec) normalize() (Spec, error) {
	if s.Queues == 0 {
		s.Queues = 1
	}
	if s.GatewayNode == 0 {
		s.GatewayNode = 1
	}
	if s.StateDir == "" {
		s.StateDir = DefaultStateDir
	}
	if s.Prefix != "" && !prefixRE.MatchString(s.Prefix) {
		return s, fmt.Errorf("lab spec: prefix %q: must match %s", s.Prefix, prefixRE)
	}
	checks := []struct {
		name      string
		v, lo, hi int
	}{
		{"nodes", s.Nodes, 1, maxNodes},
		{"clients", s.Clients, 0, maxClients},
		{"backends", s.Backends, 0, maxBackends},
		{"cluster clients", s.ClusterClients, 0, maxClusterClients},
		{"queues", s.Queues, 1, maxQueues},
		{"gateway node", s.GatewayNode, 1, s.Nodes},
	}
	for _, c := range checks {
		if c.v < c.lo || c.v > c.hi {
			return s, fmt.Errorf("lab spec: %s: %d is outside %d..%d", c.name, c.v, c.lo, c.hi)
		}
	}
	return s, nil
}

// RandomPrefix returns "l" followed by 4 random hex digits.
func RandomPrefix() string {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return "l" + hex.EncodeToString(b[:])
}

// hostAddr returns segment's address with the given last octet.
func hostAddr(segment netip.Prefix, host int) netip.Prefix {
	a := segment.Addr().As4()
	a[3] = byte(host)
	p := netip.PrefixFrom(netip.AddrFrom4(a), segment.Bits())
	if !benchRange.Contains(p.Addr()) {
		panic(fmt.Sprintf("lab address %s outside %s", p, benchRange)) // address plan bug, not input
	}
	return p
}

// labMAC is a deterministic locally administered unicast MAC: 02:<2 bytes of the prefix hash>:<segment>:<host>:<side>,
// side 0 for the interface inside the namespace and 1 for its port in the switch.
func labMAC(prefix string, segment, host, side int) net.HardwareAddr {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	sum := h.Sum32()
	return net.HardwareAddr{0x02, byte(sum >> 8), byte(sum), byte(segment), byte(host), byte(side)}
}
