package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the whole appliance config file after defaults and validation.
type Config struct {
	// File is the path the config was loaded from, as given; error messages use it.
	File string
	// Node describes this appliance node.
	Node NodeConfig
	// Interfaces are the NICs to bind AF_XDP sockets on.
	Interfaces []InterfaceConfig
	// Network holds the address plan: cluster CIDRs, service CIDR, nodePort range, LoadBalancer pools.
	Network NetworkConfig
	// Cluster configures memberlist gossip between appliance nodes.
	Cluster ClusterConfig
	// Services says where the Kubernetes manifests are.
	Services ServicesConfig
	// Admin configures the admin HTTP API.
	Admin AdminConfig
	// State configures where allocations persist.
	State StateConfig
	// HealthChecks configures TCP probing of the Services' endpoints (gossiped between appliances).
	HealthChecks HealthChecksConfig
	// DataPlane tunes the packet path's limits.
	DataPlane DataPlaneConfig
}

// NodeConfig describes this node.
type NodeConfig struct {
	// Name is unique in the cluster; default: the hostname.
	Name string
}

// Role says what an interface faces.
type Role string

// Interface roles. RoleBoth is the unset value.
const (
	RoleBoth     Role = ""
	RoleExternal Role = "external"
	RoleCluster  Role = "cluster"
)

// InterfaceConfig is one NIC.
type InterfaceConfig struct {
	// Name is the Linux interface name (at most 15 bytes).
	Name string
	// Role is external, cluster or both (unset); VIPs are announced on external ones.
	Role Role
}

// PortRange is an inclusive range of ports, written "30000-32767" (or a single port "30080").
type PortRange struct {
	// First is the lowest port in the range.
	First uint16
	// Last is the highest port in the range, inclusive.
	Last uint16
}

// String formats the range as kube-apiserver does ("30000-32767").
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p int) bool { return p >= int(r.First) && p <= int(r.Last) }

// Size is the number of ports in the range.
func (r PortRange) Size() int { return int(r.Last) - int(r.First) + 1 }

// Pool is a named set of addresses LoadBalancer Services take their external IP from.
type Pool struct {
	// Name is unique among pools; it is what the metallb.universe.tf/address-pool annotation names.
	Name string
	// CIDRs are the masked prefixes of the pool; every address in them is usable (MetalLB semantics).
	CIDRs []netip.Prefix
}

// NetworkConfig is the address plan.
type NetworkConfig struct {
	// ClusterCIDRs are the sources that count as inside the cluster (allowed to reach ClusterIPs).
	ClusterCIDRs []netip.Prefix
	// ServiceCIDR is the ClusterIP allocation range (required).
	ServiceCIDR netip.Prefix
	// NodePortRange is the range nodePorts are taken from; default 30000-32767.
	NodePortRange PortRange
	// LoadBalancerPools are tried in order for automatic external IPs; empty = every LB stays <pending>.
	LoadBalancerPools []Pool
	// SNAT says which source addresses and ports backends see for translated flows.
	SNAT SNATConfig
}

// SNATConfig is network.snat: the source of translated flows (externalTrafficPolicy: Cluster).
type SNATConfig struct {
	// Ports is the source port range of translated flows on the node's addresses. The steering
	// program sends every port of it to the data plane, so it must not overlap the kernel's
	// ephemeral range (net.ipv4.ip_local_port_range) or the nodePort range.
	Ports PortRange
	// Addresses, when set, are the only node addresses used as SNAT sources (one per egress
	// interface is picked: the first of them on that interface's subnets); empty = the egress
	// interface's first address.
	Addresses []netip.Addr
}

// DataPlaneConfig is the dataPlane section.
type DataPlaneConfig struct {
	// NewFlowsPerSourcePerSecond is the sustained rate of new flows one client address may open;
	// 0 turns the limit off. Refused flows are dropped and counted (reason source_limit).
	NewFlowsPerSourcePerSecond int
	// NewFlowsPerSourceBurst is how many new flows a client may open at once above that rate.
	NewFlowsPerSourceBurst int
	// LocalRepliesPerSecond is each worker's rate of frames the appliance answers itself (ARP
	// and echo replies, TCP RSTs, ICMP unreachables); 0 turns the limit off.
	LocalRepliesPerSecond int
	// LocalReplyBurst is how many such replies a worker may send at once.
	LocalReplyBurst int
}

// ClusterConfig configures memberlist gossip, VIP quorum and flow-state sync between appliances.
type ClusterConfig struct {
	// Bind is the IP:port memberlist listens on (an IP address: the daemon binds it as given).
	// Default "": the daemon binds the first address of the first interface with role cluster
	// (else one with role both), port 7946, so that gossip stays on the cluster segment and is
	// not reachable on every interface.
	Bind string
	// Join lists host:port addresses of known members.
	Join []string
	// SecretKeyFile is the file holding the cluster's gossip key (16, 24 or 32 bytes, raw or base64;
	// `appliance keygen FILE` makes one), relative to the config file. Required unless Insecure.
	SecretKeyFile string
	// Insecure runs gossip without a key on purpose: anyone who reaches Bind can then join as an
	// appliance. For labs only; `appliance run` warns loudly.
	Insecure bool

	// ProbeInterval is memberlist's failure-probe period; default 200ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack; default 100ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout before a suspect is declared dead; default 2.
	SuspicionMult int
	// GossipInterval is the period of gossip rounds; default 50ms.
	GossipInterval time.Duration
	// PushPullInterval is the period of full state exchanges; default 10s.
	PushPullInterval time.Duration
	// RequireQuorum: hold VIPs only while seeing a strict majority of the appliance membership
	// (see ExpectedMembers); default true.
	RequireQuorum bool
	// ExpectedMembers is the smallest appliance membership the quorum counts against, so that a
	// node that sees nobody (a wrong key, a cut link at start) claims nothing; 0 = the number of
	// join addresses plus one.
	ExpectedMembers int
	// ForgetDeadAfter is how long a dead appliance still counts in the membership; default 5m.
	ForgetDeadAfter time.Duration
	// FlowSyncBytesPerSecond bounds the bandwidth of flow-state sync to each peer; 0 turns flow
	// sync off; default 4 MiB/s.
	FlowSyncBytesPerSecond int
	// Agents is the separate memberlist backend agents join (cluster.agents).
	Agents AgentsConfig
}

// AgentsConfig is cluster.agents: the agent cluster, a memberlist apart from the appliances'
// with its own key, which backend agents (`appliance agent`) join to announce endpoints. Agents
// never hold the appliances' key, so they can never act as appliances.
type AgentsConfig struct {
	// Enabled runs the agent cluster; default false (agents are not listened to).
	Enabled bool
	// Bind is the IP:port the agent cluster listens on; default: cluster.bind's address with
	// port DefaultAgentPort.
	Bind string
	// Join lists host:port agent-cluster addresses of the other appliances, so that an agent
	// that knows one appliance reaches them all.
	Join []string
	// SecretKeyFile is the agents' gossip key (same format as cluster.secretKeyFile, a different
	// key), relative to the config file. Required when Enabled, unless Insecure.
	SecretKeyFile string
	// Insecure runs the agent cluster without a key on purpose: anyone who reaches Bind can then
	// announce endpoints (still only its own address, for Services that grant it). Labs only.
	Insecure bool
}

// DefaultAgentPort is the agent cluster's port when cluster.agents.bind is not set.
const DefaultAgentPort = 7947

// AgentBind returns cluster.agents.bind, or cluster.bind's address with DefaultAgentPort.
func (c ClusterConfig) AgentBind() string {
	if c.Agents.Bind != "" {
		return c.Agents.Bind
	}
	ap, err := netip.ParseAddrPort(c.Bind)
	if err != nil {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultAgentPort).String()
	}
	return netip.AddrPortFrom(ap.Addr(), DefaultAgentPort).String()
}

// ServicesConfig says where Services come from: manifest files, or a Kubernetes API server
// (Kubeconfig or InCluster). The two sources are mutually exclusive: in API mode kube-apiserver
// allocates ClusterIPs and nodePorts, in manifest mode the appliance does, and mixing them would
// let the two allocators hand out the same value.
type ServicesConfig struct {
	// Manifests are files or folders of Kubernetes manifests, resolved relative to the config file.
	Manifests []string
	// Kubeconfig is a kubeconfig file (relative to the config file) of the API server to watch.
	Kubeconfig string
	// InCluster watches the API server with the pod's service account (KUBERNETES_SERVICE_HOST).
	InCluster bool
	// LoadBalancerClass, when set, is the spec.loadBalancerClass whose Services this appliance
	// serves; Services of any other class are ignored entirely. API mode only.
	LoadBalancerClass string
	// ServeUnclassed serves Services without spec.loadBalancerClass (every ClusterIP and NodePort
	// Service, and LoadBalancer Services without a class). Default: true when LoadBalancerClass is
	// empty, false otherwise. API mode only.
	ServeUnclassed bool
	// ClusterName names this appliance cluster in the owner annotation it records on the Services
	// whose status it writes (at most 63 characters of [A-Za-z0-9._-]); two appliance clusters
	// that watch one Kubernetes cluster need different names. "" = the Kubernetes source's
	// default (services.loadBalancerClass when set). API mode only.
	ClusterName string
}

// FromAPI reports whether Services come from a Kubernetes API server rather than manifests.
func (s ServicesConfig) FromAPI() bool { return s.Kubeconfig != "" || s.InCluster }

// AdminConfig configures the admin HTTP API.
type AdminConfig struct {
	// Listen is the TCP host:port of the admin API: /healthz, /metrics and the read-only lists
	// for anyone who reaches it; captures only with the token of TokenFile.
	Listen string
	// Socket is a Unix socket (mode 0600) that serves every route, captures included, to callers
	// allowed by its file permissions (root); "" = none. The examples use
	// /run/appliance/admin.sock (admin.DefaultSocketPath), where `appliance capture` looks first.
	Socket string
	// TokenFile holds a bearer token (at least 16 bytes, mode 0600) that authorizes captures over
	// Listen; "" = captures only over Socket.
	TokenFile string
}

// HealthChecksConfig configures endpoint health probing: every appliance connects to every TCP
// endpoint of the served Services and the verdicts are gossiped and resolved the same way on
// every node (see package appliance/health).
type HealthChecksConfig struct {
	// Enabled turns probing on; default true. Off: every endpoint is served as the sources say.
	Enabled bool
	// Interval is the time between two probes of one endpoint; default 2s.
	Interval time.Duration
	// Timeout bounds one TCP connect; must not exceed Interval; default 1s.
	Timeout time.Duration
	// HealthyThreshold is how many consecutive successes bring a down endpoint back; default 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failures take an endpoint down; default 3.
	UnhealthyThreshold int
}

// StateConfig configures the allocation state file.
type StateConfig struct {
	// Path is the JSON file where allocations persist, relative to the config file;
	// default: "<config dir>/<node name>.state.json".
	Path string
}

// DefaultConfig returns the defaults every loaded file starts from. Node.Name is the hostname.
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "appliance" // still a valid node name; a cluster of such nodes must set node.name
	}
	return Config{
		Node: NodeConfig{
			Name: host, // hostnames differ between machines, so a cluster needs no naming
		},
		Network: NetworkConfig{
			NodePortRange: PortRange{First: 30000, Last: 32767}, // kube-apiserver's default, so nodePorts match a cluster's
			SNAT: SNATConfig{
				Ports: PortRange{First: 61000, Last: 65535}, // above Linux's ephemeral range (32768-60999) and the nodePorts
			},
		},
		Cluster: ClusterConfig{
			Bind:                   "",                     // the daemon derives a cluster-role interface's address, port 7946
			ProbeInterval:          200 * time.Millisecond, // faster than memberlist's LAN default: detection bounds a dead node's VIP outage
			ProbeTimeout:           100 * time.Millisecond, // far above a LAN round trip; leaves half the interval for indirect probes
			SuspicionMult:          2,                      // appliances on one LAN rarely lose probes, and a slow verdict keeps VIPs dark
			GossipInterval:         50 * time.Millisecond,  // allocations, health and suspicions spread in a few rounds within one probe
			PushPullInterval:       10 * time.Second,       // full exchanges only repair what gossip missed
			RequireQuorum:          true,                   // a partitioned minority stops announcing the majority's VIPs
			ExpectedMembers:        0,                      // the join addresses plus this node: a node that sees nobody claims nothing
			ForgetDeadAfter:        5 * time.Minute,        // a rebooting appliance still counts for the quorum; a removed one stops
			FlowSyncBytesPerSecond: 4 << 20,                // flow sync on, so a new VIP owner keeps connections; small next to a LAN link
		},
		Services: ServicesConfig{
			ServeUnclassed: true, // without a loadBalancerClass every Service is this appliance's; Parse derives it from the class
		},
		Admin: AdminConfig{
			Listen: "127.0.0.1:9100", // loopback only: lists and metrics need no credential there
		},
		State: StateConfig{
			Path: "", // Parse sets "<config dir>/<node name>.state.json" once it knows the node name
		},
		DataPlane: DataPlaneConfig{
			NewFlowsPerSourcePerSecond: 10_000, // far above one client (or a NAT gateway); a flood cannot fill the table in seconds
			NewFlowsPerSourceBurst:     20_000, // a reconnect storm of one gateway fits
			LocalRepliesPerSecond:      1000,   // Linux's icmp_msgs_per_sec: the appliance is no reflector
			LocalReplyBurst:            50,     // Linux's icmp_msgs_burst
		},
		HealthChecks: HealthChecksConfig{
			Enabled:            true,            // dead endpoints leave the tables without any configuration
			Interval:           2 * time.Second, // a dead endpoint leaves within seconds at one connect per endpoint per appliance
			Timeout:            time.Second,     // far above a LAN connect, and within Interval so probes of one endpoint never overlap
			HealthyThreshold:   2,               // one lucky connect does not bring a flapping endpoint back
			UnhealthyThreshold: 3,               // one lost SYN does not take an endpoint down
		},
	}
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse validates data as the config file named path (path is used for messages and to resolve
// relative paths). It returns an ErrorList with every problem found.
func Parse(data []byte, path string) (*Config, error) {
	w := newWalker(path)
	root := w.document(data)
	if root == nil {
		return nil, w.errs
	}
	cfg := DefaultConfig()
	cfg.File = path
	l := &loader{walker: w, cfg: &cfg, path: path}
	l.mapping(root, "", map[string]handler{
		"node":         l.node,
		"interfaces":   l.interfaces,
		"network":      l.network,
		"cluster":      l.cluster,
		"services":     l.services,
		"admin":        l.admin,
		"state":        l.state,
		"healthChecks": l.healthChecks,
		"dataPlane":    l.dataPlane,
	})
	if !l.statePathSet {
		cfg.State.Path = resolve(path, cfg.Node.Name+".state.json")
	}
	l.checkNetwork(root)
	if len(w.errs) > 0 {
		w.errs.Sort()
		return nil, w.errs
	}
	return &cfg, nil
}

// ParsePortRange parses "30000-32767" or a single port "30080".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b < a {
		return PortRange{}, fmt.Errorf("invalid port range %q: want FIRST-LAST with 1 <= FIRST <= LAST <= 65535", s)
	}
	return PortRange{First: uint16(a), Last: uint16(b)}, nil
}

// resolve joins a relative path onto the directory of the config file.
func resolve(configPath, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(filepath.Dir(configPath), p)
}
