package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
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
}

// ClusterConfig configures memberlist gossip, VIP quorum and flow-state sync between appliances.
type ClusterConfig struct {
	// Bind is the host:port memberlist listens on; default 0.0.0.0:7946.
	Bind string
	// Join lists host:port addresses of known members.
	Join []string
	// SecretKeyFile is an optional file holding a 16/24/32-byte gossip key, relative to the config file.
	SecretKeyFile string

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
}

// FromAPI reports whether Services come from a Kubernetes API server rather than manifests.
func (s ServicesConfig) FromAPI() bool { return s.Kubeconfig != "" || s.InCluster }

// AdminConfig configures the admin HTTP API.
type AdminConfig struct {
	// Listen is the host:port of /healthz, /metrics and /api/v1; default 127.0.0.1:9100.
	Listen string
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
		host = "appliance"
	}
	return Config{
		Node:    NodeConfig{Name: host},
		Network: NetworkConfig{NodePortRange: PortRange{First: 30000, Last: 32767}},
		Cluster: ClusterConfig{Bind: "0.0.0.0:7946", ProbeInterval: 200 * time.Millisecond,
			ProbeTimeout: 100 * time.Millisecond, SuspicionMult: 2, GossipInterval: 50 * time.Millisecond,
			PushPullInterval: 10 * time.Second, RequireQuorum: true, ForgetDeadAfter: 5 * time.Minute,
			FlowSyncBytesPerSecond: 4 << 20},
		Admin:    AdminConfig{Listen: "127.0.0.1:9100"},
		Services: ServicesConfig{ServeUnclassed: true},
		HealthChecks: HealthChecksConfig{Enabled: true, Interval: 2 * time.Second, Timeout: time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 3},
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

// maxConfigBytes bounds the config file size; a config is a few hundred bytes.
const maxConfigBytes = 1 << 20

// Parse validates data as the config file named path (path is used for messages and to resolve
// relative paths). It returns an ErrorList with every problem found.
func Parse(data []byte, path string) (*Config, error) {
	cfg := DefaultConfig()
	cfg.File = path
	p := &parser{file: path}
	if len(data) > maxConfigBytes {
		p.errf(0, "", "file larger than %d bytes", maxConfigBytes)
		return nil, p.errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		p.errf(1, "", "empty config file")
		return nil, p.errs
	case err != nil:
		p.yamlErr(err)
		return nil, p.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errf(extra.Line, "", "more than one YAML document in the config file")
	} else if !errors.Is(err, io.EOF) {
		p.yamlErr(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	nodeNameSet, statePathSet := false, false
	var serveUnclassed *bool // services.serveUnclassed when given
	p.mapping(root, "", map[string]func(*yaml.Node, string){
		"node": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"name": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok {
						nodeNameSet = true
						cfg.Node.Name = s
						if s == "" || strings.ContainsAny(s, "/\\ \t\n") || s == "." || s == ".." {
							p.errf(n.Line, f, "invalid node name %q: must be non-empty, without spaces or slashes", s)
						}
					}
				},
			})
		},
		"interfaces": func(n *yaml.Node, f string) {
			p.seq(n, f, func(i int, n *yaml.Node, f string) {
				var ic InterfaceConfig
				p.mapping(n, f, map[string]func(*yaml.Node, string){
					"name": func(n *yaml.Node, f string) {
						if s, ok := p.str(n, f); ok {
							ic.Name = s
							if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") {
								p.errf(n.Line, f, "invalid interface name %q: 1-15 bytes, no spaces, '/' or ':'", s)
							}
							for _, o := range cfg.Interfaces {
								if o.Name == s {
									p.errf(n.Line, f, "duplicate interface %q", s)
								}
							}
						}
					},
					"role": func(n *yaml.Node, f string) {
						if s, ok := p.str(n, f); ok {
							switch Role(s) {
							case RoleExternal, RoleCluster, RoleBoth:
								ic.Role = Role(s)
							default:
								p.errf(n.Line, f, "invalid role %q: must be external, cluster or unset", s)
							}
						}
					},
				})
				if ic.Name == "" && n.Kind == yaml.MappingNode && !p.has(n, "name") {
					p.errf(n.Line, f+".name", "required")
				}
				cfg.Interfaces = append(cfg.Interfaces, ic)
			})
		},
		"network": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"clusterCIDRs": func(n *yaml.Node, f string) {
					p.seq(n, f, func(i int, n *yaml.Node, f string) {
						if pr, ok := p.prefix(n, f); ok {
							cfg.Network.ClusterCIDRs = append(cfg.Network.ClusterCIDRs, pr)
						}
					})
				},
				"serviceCIDR": func(n *yaml.Node, f string) {
					if pr, ok := p.prefix(n, f); ok {
						cfg.Network.ServiceCIDR = pr
						p.lines[f] = n.Line
						if pr.Bits() >= pr.Addr().BitLen()-1 {
							p.errf(n.Line, f, "range %s too small: needs at least 2 usable addresses", pr)
						}
					}
				},
				"nodePortRange": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok {
						r, err := ParsePortRange(s)
						if err != nil {
							p.errf(n.Line, f, "%v", err)
						} else {
							cfg.Network.NodePortRange = r
						}
					}
				},
				"loadBalancerPools": func(n *yaml.Node, f string) {
					p.seq(n, f, func(i int, n *yaml.Node, f string) {
						var pool Pool
						p.lines[f] = n.Line
						p.mapping(n, f, map[string]func(*yaml.Node, string){
							"name": func(n *yaml.Node, f string) {
								if s, ok := p.str(n, f); ok {
									pool.Name = s
									if s == "" {
										p.errf(n.Line, f, "must not be empty")
									}
									for _, o := range cfg.Network.LoadBalancerPools {
										if o.Name == s {
											p.errf(n.Line, f, "duplicate pool name %q", s)
										}
									}
								}
							},
							"cidrs": func(n *yaml.Node, f string) {
								p.seq(n, f, func(j int, n *yaml.Node, f string) {
									if pr, ok := p.prefix(n, f); ok {
										p.lines[fmt.Sprintf("pool%d.%d", len(cfg.Network.LoadBalancerPools), len(pool.CIDRs))] = n.Line
										pool.CIDRs = append(pool.CIDRs, pr)
									}
								})
							},
						})
						if n.Kind == yaml.MappingNode {
							if !p.has(n, "name") {
								p.errf(n.Line, f+".name", "required")
							}
							if len(pool.CIDRs) == 0 && !p.has(n, "cidrs") {
								p.errf(n.Line, f+".cidrs", "required")
							}
						}
						cfg.Network.LoadBalancerPools = append(cfg.Network.LoadBalancerPools, pool)
					})
				},
			})
		},
		"cluster": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"bind": func(n *yaml.Node, f string) {
					if s, ok := p.hostPort(n, f); ok {
						cfg.Cluster.Bind = s
					}
				},
				"join": func(n *yaml.Node, f string) {
					p.seq(n, f, func(i int, n *yaml.Node, f string) {
						if s, ok := p.hostPort(n, f); ok {
							cfg.Cluster.Join = append(cfg.Cluster.Join, s)
						}
					})
				},
				"secretKeyFile": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok && s != "" {
						cfg.Cluster.SecretKeyFile = resolve(path, s)
					}
				},
				"probeInterval":    func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.Cluster.ProbeInterval) },
				"probeTimeout":     func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.Cluster.ProbeTimeout) },
				"gossipInterval":   func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.Cluster.GossipInterval) },
				"pushPullInterval": func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.Cluster.PushPullInterval) },
				"forgetDeadAfter":  func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.Cluster.ForgetDeadAfter) },
				"suspicionMult":    func(n *yaml.Node, f string) { p.intRange(n, f, 1, 100, &cfg.Cluster.SuspicionMult) },
				"expectedMembers":  func(n *yaml.Node, f string) { p.intRange(n, f, 0, 1000, &cfg.Cluster.ExpectedMembers) },
				"flowSyncBytesPerSecond": func(n *yaml.Node, f string) {
					p.intRange(n, f, 0, 1<<30, &cfg.Cluster.FlowSyncBytesPerSecond)
				},
				"requireQuorum": func(n *yaml.Node, f string) {
					if b, ok := p.boolean(n, f); ok {
						cfg.Cluster.RequireQuorum = b
					}
				},
			})
			if c := cfg.Cluster; c.ProbeTimeout > c.ProbeInterval {
				p.errf(n.Line, f+".probeTimeout", "must not exceed cluster.probeInterval (%s)", c.ProbeInterval)
			}
		},
		"services": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"manifests": func(n *yaml.Node, f string) {
					p.seq(n, f, func(i int, n *yaml.Node, f string) {
						if s, ok := p.str(n, f); ok {
							if s == "" {
								p.errf(n.Line, f, "must not be empty")
								return
							}
							cfg.Services.Manifests = append(cfg.Services.Manifests, resolve(path, s))
						}
					})
				},
				"kubeconfig": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok {
						if s == "" {
							p.errf(n.Line, f, "must not be empty")
							return
						}
						cfg.Services.Kubeconfig = resolve(path, s)
					}
				},
				"inCluster": func(n *yaml.Node, f string) {
					if b, ok := p.boolean(n, f); ok {
						cfg.Services.InCluster = b
					}
				},
				"loadBalancerClass": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok {
						for _, msg := range validation.IsQualifiedName(s) {
							p.errf(n.Line, f, "Invalid value: %q: %s", s, msg)
						}
						cfg.Services.LoadBalancerClass = s
					}
				},
				"serveUnclassed": func(n *yaml.Node, f string) {
					if b, ok := p.boolean(n, f); ok {
						serveUnclassed = &b
					}
				},
			})
			p.checkServices(n, &cfg.Services, serveUnclassed)
		},
		"admin": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"listen": func(n *yaml.Node, f string) {
					if s, ok := p.hostPort(n, f); ok {
						cfg.Admin.Listen = s
					}
				},
			})
		},
		"state": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"path": func(n *yaml.Node, f string) {
					if s, ok := p.str(n, f); ok {
						if s == "" {
							p.errf(n.Line, f, "must not be empty")
							return
						}
						statePathSet = true
						cfg.State.Path = resolve(path, s)
					}
				},
			})
		},
		"healthChecks": func(n *yaml.Node, f string) {
			p.mapping(n, f, map[string]func(*yaml.Node, string){
				"enabled": func(n *yaml.Node, f string) {
					if b, ok := p.boolean(n, f); ok {
						cfg.HealthChecks.Enabled = b
					}
				},
				"interval":           func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.HealthChecks.Interval) },
				"timeout":            func(n *yaml.Node, f string) { p.positiveDuration(n, f, &cfg.HealthChecks.Timeout) },
				"healthyThreshold":   func(n *yaml.Node, f string) { p.intRange(n, f, 1, 100, &cfg.HealthChecks.HealthyThreshold) },
				"unhealthyThreshold": func(n *yaml.Node, f string) { p.intRange(n, f, 1, 100, &cfg.HealthChecks.UnhealthyThreshold) },
			})
			if h := &cfg.HealthChecks; h.Timeout > h.Interval {
				if line, set := p.lines[f+".timeout"]; set {
					p.errf(line, f+".timeout", "must not exceed healthChecks.interval (%s)", h.Interval)
				} else {
					h.Timeout = h.Interval // default timeout, short interval: probe within the interval
				}
			}
		},
	})
	_ = nodeNameSet
	if !statePathSet {
		cfg.State.Path = resolve(path, cfg.Node.Name+".state.json")
	}
	p.checkNetwork(root, &cfg.Network)
	if len(p.errs) > 0 {
		p.errs.Sort()
		return nil, p.errs
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

// checkServices validates the combination of services fields and fills ServeUnclassed's default.
func (p *parser) checkServices(n *yaml.Node, s *ServicesConfig, serveUnclassed *bool) {
	line := func(f string) int {
		if l, ok := p.lines["services."+f]; ok {
			return l
		}
		return n.Line
	}
	s.ServeUnclassed = s.LoadBalancerClass == ""
	if serveUnclassed != nil {
		s.ServeUnclassed = *serveUnclassed
	}
	if s.Kubeconfig != "" && s.InCluster {
		p.errf(line("inCluster"), "services.inCluster", "may not be true when services.kubeconfig is set: choose one way to reach the API server")
	}
	if s.FromAPI() && len(s.Manifests) > 0 {
		f := "kubeconfig"
		if s.Kubeconfig == "" {
			f = "inCluster"
		}
		p.errf(line("manifests"), "services.manifests", "may not be used together with services.%s: Services come either from manifests or from the Kubernetes API", f)
	}
	if !s.FromAPI() {
		if s.LoadBalancerClass != "" {
			p.errf(line("loadBalancerClass"), "services.loadBalancerClass", "only applies to Services from the Kubernetes API (services.kubeconfig or services.inCluster)")
		}
		if serveUnclassed != nil {
			p.errf(line("serveUnclassed"), "services.serveUnclassed", "only applies to Services from the Kubernetes API (services.kubeconfig or services.inCluster)")
		}
		s.ServeUnclassed = true
	} else if s.LoadBalancerClass == "" && !s.ServeUnclassed {
		p.errf(line("serveUnclassed"), "services.serveUnclassed", "false with no services.loadBalancerClass would serve no Service")
	}
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.errf(n.Line, field, "must be true or false")
		return false, false
	}
	return b, true
}

// positiveDuration parses a Go duration ("250ms", "2s") greater than zero into *d.
func (p *parser) positiveDuration(n *yaml.Node, field string, d *time.Duration) {
	s, ok := p.str(n, field)
	if !ok {
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		p.errf(n.Line, field, "invalid duration %q: want a positive duration such as 250ms or 2s", s)
		return
	}
	*d = v
}

// intRange parses an integer in [lo, hi] into *v.
func (p *parser) intRange(n *yaml.Node, field string, lo, hi int, v *int) {
	var x int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil {
		p.errf(n.Line, field, "must be an integer")
		return
	}
	if x < lo || x > hi {
		p.errf(n.Line, field, "must be between %d and %d", lo, hi)
		return
	}
	*v = x
}

// checkNetwork validates relations between fields once each one has parsed.
func (p *parser) checkNetwork(root *yaml.Node, n *NetworkConfig) {
	if !n.ServiceCIDR.IsValid() {
		if _, ok := p.lines["network.serviceCIDR"]; !ok && !p.hadErrorOn("network.serviceCIDR") {
			p.errf(root.Line, "network.serviceCIDR", "required")
		}
	}
	for i, pool := range n.LoadBalancerPools {
		for j, c := range pool.CIDRs {
			line := p.lines[fmt.Sprintf("pool%d.%d", i, j)]
			f := fmt.Sprintf("network.loadBalancerPools[%d].cidrs[%d]", i, j)
			if n.ServiceCIDR.IsValid() && c.Overlaps(n.ServiceCIDR) {
				p.errf(line, f, "%s overlaps serviceCIDR %s", c, n.ServiceCIDR)
			}
			for k := 0; k <= i; k++ {
				other := n.LoadBalancerPools[k]
				for l, oc := range other.CIDRs {
					if k == i && l >= j {
						break
					}
					if c.Overlaps(oc) {
						p.errf(line, f, "%s overlaps %s of pool %q", c, oc, other.Name)
					}
				}
			}
		}
	}
}

// parser walks a yaml.v3 node tree, collecting errors with lines.
type parser struct {
	file  string
	errs  ErrorList
	lines map[string]int
}

func (p *parser) errf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{File: p.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) hadErrorOn(field string) bool {
	for _, e := range p.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// yamlErr turns a yaml.v3 syntax error into a FieldError with its line.
func (p *parser) yamlErr(err error) {
	p.errs = append(p.errs, &FieldError{File: p.file, Line: YAMLErrorLine(err), Message: err.Error()})
}

// YAMLErrorLine extracts the "line N" of a yaml.v3 error message, or 0.
func YAMLErrorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	j := i + 5
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(msg[i+5 : j])
	return n
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// mapping walks a mapping node; unknown and duplicate keys are errors.
func (p *parser) mapping(n *yaml.Node, field string, keys map[string]func(*yaml.Node, string)) {
	if p.lines == nil {
		p.lines = map[string]int{}
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with nothing: keep defaults
	}
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, field, "must be a mapping, not %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := join(field, k.Value)
		if k.Kind != yaml.ScalarNode {
			p.errf(k.Line, field, "keys must be strings")
			continue
		}
		if seen[k.Value] {
			p.errf(k.Line, f, "duplicate key")
			continue
		}
		seen[k.Value] = true
		fn, ok := keys[k.Value]
		if !ok {
			p.errf(k.Line, f, "unknown field")
			continue
		}
		p.lines[f] = v.Line
		fn(v, f)
	}
}

func (p *parser) has(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (p *parser) seq(n *yaml.Node, field string, fn func(int, *yaml.Node, string)) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, field, "must be a list, not %s", kindName(n))
		return
	}
	for i, c := range n.Content {
		fn(i, c, fmt.Sprintf("%s[%d]", field, i))
	}
}

func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errf(n.Line, field, "must be a string, not %s", kindName(n))
		return "", false
	}
	if n.ShortTag() == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (p *parser) prefix(n *yaml.Node, field string) (netip.Prefix, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return netip.Prefix{}, false
	}
	pr, err := netip.ParsePrefix(s)
	if err != nil || pr.Addr().Zone() != "" {
		p.errf(n.Line, field, "invalid CIDR %q", s)
		return netip.Prefix{}, false
	}
	if pr.Addr().Is4In6() {
		p.errf(n.Line, field, "invalid CIDR %q: IPv4-mapped IPv6 prefixes are not allowed", s)
		return netip.Prefix{}, false
	}
	if pr.Masked() != pr {
		p.errf(n.Line, field, "invalid CIDR %q: host bits set (did you mean %s?)", s, pr.Masked())
		return netip.Prefix{}, false
	}
	return pr, true
}

func (p *parser) hostPort(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.errf(n.Line, field, "invalid address %q: want host:port", s)
		return "", false
	}
	if pn, err := strconv.ParseUint(port, 10, 16); err != nil || pn == 0 {
		p.errf(n.Line, field, "invalid address %q: port must be 1-65535", s)
		return "", false
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			p.errf(n.Line, field, "invalid address %q: host is neither an IP address nor a hostname", s)
			return "", false
		}
	}
	return s, true
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
