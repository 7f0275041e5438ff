package config

import (
	"fmt"
	"net/netip"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// loader fills one Config from the YAML tree of one file: one method per top-level section, then
// the checks that span fields (checkServices, checkNetwork).
type loader struct {
	*walker
	cfg  *Config
	path string // the config file, against whose directory relative paths resolve

	statePathSet bool // state.path was given, so no default from the node name
	// poolCIDRFields[i][j] is the field path of cfg.Network.LoadBalancerPools[i].CIDRs[j]: the index
	// in the file, which differs from j when an earlier CIDR of the pool was invalid.
	poolCIDRFields [][]string
}

// node parses the node section.
func (l *loader) node(n *yaml.Node, field string) {
	l.mapping(n, field, map[string]handler{
		"name": func(n *yaml.Node, f string) {
			s, ok := l.str(n, f)
			if !ok {
				return
			}
			l.cfg.Node.Name = s
			if s == "" || strings.ContainsAny(s, "/\\ \t\n") || s == "." || s == ".." {
				l.errf(n.Line, f, "invalid node name %q: must be non-empty, without spaces or slashes", s)
			}
		},
	})
}

// interfaces parses the interfaces list.
func (l *loader) interfaces(n *yaml.Node, field string) { l.seq(n, field, l.iface) }

// iface parses one item of the interfaces list.
func (l *loader) iface(_ int, n *yaml.Node, field string) {
	var ic InterfaceConfig
	l.mapping(n, field, map[string]handler{
		"name": func(n *yaml.Node, f string) {
			s, ok := l.str(n, f)
			if !ok {
				return
			}
			ic.Name = s
			if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") {
				l.errf(n.Line, f, "invalid interface name %q: 1-15 bytes, no spaces, '/' or ':'", s)
			}
			for _, o := range l.cfg.Interfaces {
				if o.Name == s {
					l.errf(n.Line, f, "duplicate interface %q", s)
				}
			}
		},
		"role": func(n *yaml.Node, f string) {
			s, ok := l.str(n, f)
			if !ok {
				return
			}
			switch Role(s) {
			case RoleExternal, RoleCluster, RoleBoth:
				ic.Role = Role(s)
			default:
				l.errf(n.Line, f, "invalid role %q: must be external, cluster or unset", s)
			}
		},
	})
	if ic.Name == "" && n.Kind == yaml.MappingNode && !has(n, "name") {
		l.errf(n.Line, field+".name", "required")
	}
	l.cfg.Interfaces = append(l.cfg.Interfaces, ic)
}

// network parses the network section; checkNetwork checks it as a whole afterwards.
func (l *loader) network(n *yaml.Node, field string) {
	nw := &l.cfg.Network
	l.mapping(n, field, map[string]handler{
		"clusterCIDRs": func(n *yaml.Node, f string) {
			l.seq(n, f, func(_ int, n *yaml.Node, f string) {
				if pr, ok := l.prefix(n, f); ok {
					nw.ClusterCIDRs = append(nw.ClusterCIDRs, pr)
				}
			})
		},
		"serviceCIDR": func(n *yaml.Node, f string) {
			pr, ok := l.prefix(n, f)
			if !ok {
				return
			}
			nw.ServiceCIDR = pr
			if pr.Bits() >= pr.Addr().BitLen()-1 {
				l.errf(n.Line, f, "range %s too small: needs at least 2 usable addresses", pr)
			}
		},
		"nodePortRange": func(n *yaml.Node, f string) {
			if r, ok := l.portRange(n, f); ok {
				nw.NodePortRange = r
			}
		},
		"loadBalancerPools": func(n *yaml.Node, f string) { l.seq(n, f, l.pool) },
		"snat":              l.snat,
	})
}

// snat parses network.snat.
func (l *loader) snat(n *yaml.Node, field string) {
	sn := &l.cfg.Network.SNAT
	l.mapping(n, field, map[string]handler{
		"ports": func(n *yaml.Node, f string) {
			r, ok := l.portRange(n, f)
			if !ok {
				return
			}
			if r.First < 1024 {
				l.errf(n.Line, f, "range %s starts below 1024: SNAT ports must not shadow the host's services", r)
				return
			}
			sn.Ports = r
		},
		"addresses": func(n *yaml.Node, f string) {
			l.seq(n, f, func(_ int, n *yaml.Node, f string) {
				s, ok := l.str(n, f)
				if !ok {
					return
				}
				a, err := netip.ParseAddr(s)
				if err != nil || !a.IsGlobalUnicast() && !a.IsPrivate() {
					l.errf(n.Line, f, "invalid address %q: want a unicast IP address of this node", s)
					return
				}
				sn.Addresses = append(sn.Addresses, a.Unmap())
			})
		},
	})
}

// pool parses one item of network.loadBalancerPools. Every item is appended, valid or not, so that
// pool i of the Config is item i of the file.
func (l *loader) pool(_ int, n *yaml.Node, field string) {
	var pool Pool
	var cidrFields []string
	l.mapping(n, field, map[string]handler{
		"name": func(n *yaml.Node, f string) {
			s, ok := l.str(n, f)
			if !ok {
				return
			}
			pool.Name = s
			if s == "" {
				l.errf(n.Line, f, "must not be empty")
			}
			for _, o := range l.cfg.Network.LoadBalancerPools {
				if o.Name == s {
					l.errf(n.Line, f, "duplicate pool name %q", s)
				}
			}
		},
		"cidrs": func(n *yaml.Node, f string) {
			l.seq(n, f, func(_ int, n *yaml.Node, f string) {
				if pr, ok := l.prefix(n, f); ok {
					pool.CIDRs = append(pool.CIDRs, pr)
					cidrFields = append(cidrFields, f)
				}
			})
		},
	})
	if n.Kind == yaml.MappingNode {
		if !has(n, "name") {
			l.errf(n.Line, field+".name", "required")
		}
		if len(pool.CIDRs) == 0 && !has(n, "cidrs") {
			l.errf(n.Line, field+".cidrs", "required")
		}
	}
	l.cfg.Network.LoadBalancerPools = append(l.cfg.Network.LoadBalancerPools, pool)
	l.poolCIDRFields = append(l.poolCIDRFields, cidrFields)
}

// checkNetwork validates relations between network fields once each one has parsed: serviceCIDR is
// required, and no pool CIDR overlaps serviceCIDR or an earlier pool CIDR.
func (l *loader) checkNetwork(root *yaml.Node) {
	nw := &l.cfg.Network
	if !nw.ServiceCIDR.IsValid() {
		if _, ok := l.lines["network.serviceCIDR"]; !ok && !l.hadErrorOn("network.serviceCIDR") {
			l.errf(root.Line, "network.serviceCIDR", "required")
		}
	}
	for i, pool := range nw.LoadBalancerPools {
		for j, c := range pool.CIDRs {
			f := l.poolCIDRFields[i][j]
			line := l.lines[f]
			if nw.ServiceCIDR.IsValid() && c.Overlaps(nw.ServiceCIDR) {
				l.errf(line, f, "%s overlaps serviceCIDR %s", c, nw.ServiceCIDR)
			}
			for k := 0; k <= i; k++ {
				other := nw.LoadBalancerPools[k]
				for m, oc := range other.CIDRs {
					if k == i && m >= j {
						break
					}
					if c.Overlaps(oc) {
						l.errf(line, f, "%s overlaps %s of pool %q", c, oc, other.Name)
					}
				}
			}
		}
	}
}

// cluster parses the cluster section.
func (l *loader) cluster(n *yaml.Node, field string) {
	c := &l.cfg.Cluster
	l.mapping(n, field, map[string]handler{
		"bind":                   l.bindInto(&c.Bind),
		"join":                   l.hostPortsInto(&c.Join),
		"secretKeyFile":          l.pathInto(&c.SecretKeyFile),
		"probeInterval":          l.durationInto(&c.ProbeInterval),
		"probeTimeout":           l.durationInto(&c.ProbeTimeout),
		"gossipInterval":         l.durationInto(&c.GossipInterval),
		"pushPullInterval":       l.durationInto(&c.PushPullInterval),
		"forgetDeadAfter":        l.durationInto(&c.ForgetDeadAfter),
		"suspicionMult":          l.intInto(1, 100, &c.SuspicionMult),
		"expectedMembers":        l.intInto(0, 1000, &c.ExpectedMembers),
		"flowSyncBytesPerSecond": l.intInto(0, 1<<30, &c.FlowSyncBytesPerSecond),
		"requireQuorum":          l.boolInto(&c.RequireQuorum),
		"insecure":               l.boolInto(&c.Insecure),
		"agents":                 l.agents,
	})
	if c.Insecure && c.SecretKeyFile != "" {
		l.errf(n.Line, field+".insecure", "true together with cluster.secretKeyFile: choose one")
	}
	if c.ProbeTimeout > c.ProbeInterval {
		l.errf(n.Line, field+".probeTimeout", "must not exceed cluster.probeInterval (%s)", c.ProbeInterval)
	}
}

// agents parses cluster.agents.
func (l *loader) agents(n *yaml.Node, field string) {
	a := &l.cfg.Cluster.Agents
	l.mapping(n, field, map[string]handler{
		"enabled":       l.boolInto(&a.Enabled),
		"bind":          l.bindInto(&a.Bind),
		"join":          l.hostPortsInto(&a.Join),
		"secretKeyFile": l.pathInto(&a.SecretKeyFile),
		"insecure":      l.boolInto(&a.Insecure),
	})
	if a.Insecure && a.SecretKeyFile != "" {
		l.errf(n.Line, field+".insecure", "true together with cluster.agents.secretKeyFile: choose one")
	}
}

// services parses the services section, then checkServices checks its fields together.
func (l *loader) services(n *yaml.Node, field string) {
	s := &l.cfg.Services
	var serveUnclassed *bool // services.serveUnclassed when given
	l.mapping(n, field, map[string]handler{
		"manifests": func(n *yaml.Node, f string) {
			l.seq(n, f, func(_ int, n *yaml.Node, f string) {
				if m, ok := l.nonEmptyStr(n, f); ok {
					s.Manifests = append(s.Manifests, resolve(l.path, m))
				}
			})
		},
		"kubeconfig": func(n *yaml.Node, f string) {
			if k, ok := l.nonEmptyStr(n, f); ok {
				s.Kubeconfig = resolve(l.path, k)
			}
		},
		"inCluster": l.boolInto(&s.InCluster),
		"loadBalancerClass": func(n *yaml.Node, f string) {
			c, ok := l.str(n, f)
			if !ok {
				return
			}
			for _, msg := range validation.IsQualifiedName(c) {
				l.errf(n.Line, f, "Invalid value: %q: %s", c, msg)
			}
			s.LoadBalancerClass = c
		},
		"clusterName": func(n *yaml.Node, f string) {
			c, ok := l.str(n, f)
			if !ok {
				return
			}
			if msg := clusterNameProblem(c); msg != "" {
				l.errf(n.Line, f, "Invalid value: %q: %s", c, msg)
				return
			}
			s.ClusterName = c
		},
		"serveUnclassed": func(n *yaml.Node, f string) {
			if b, ok := l.boolean(n, f); ok {
				serveUnclassed = &b
			}
		},
	})
	l.checkServices(n, serveUnclassed)
}

// checkServices validates the combination of services fields and fills ServeUnclassed's default.
func (l *loader) checkServices(n *yaml.Node, serveUnclassed *bool) {
	s := &l.cfg.Services
	line := func(f string) int {
		if ln, ok := l.lines["services."+f]; ok {
			return ln
		}
		return n.Line
	}
	s.ServeUnclassed = s.LoadBalancerClass == ""
	if serveUnclassed != nil {
		s.ServeUnclassed = *serveUnclassed
	}
	if s.Kubeconfig != "" && s.InCluster {
		l.errf(line("inCluster"), "services.inCluster", "may not be true when services.kubeconfig is set: choose one way to reach the API server")
	}
	if s.FromAPI() && len(s.Manifests) > 0 {
		f := "kubeconfig"
		if s.Kubeconfig == "" {
			f = "inCluster"
		}
		l.errf(line("manifests"), "services.manifests", "may not be used together with services.%s: Services come either from manifests or from the Kubernetes API", f)
	}
	if !s.FromAPI() {
		if s.LoadBalancerClass != "" {
			l.errf(line("loadBalancerClass"), "services.loadBalancerClass", "only applies to Services from the Kubernetes API (services.kubeconfig or services.inCluster)")
		}
		if serveUnclassed != nil {
			l.errf(line("serveUnclassed"), "services.serveUnclassed", "only applies to Services from the Kubernetes API (services.kubeconfig or services.inCluster)")
		}
		s.ServeUnclassed = true
	} else if s.LoadBalancerClass == "" && !s.ServeUnclassed {
		l.errf(line("serveUnclassed"), "services.serveUnclassed", "false with no services.loadBalancerClass would serve no Service")
	}
}

// admin parses the admin section.
func (l *loader) admin(n *yaml.Node, field string) {
	l.mapping(n, field, map[string]handler{
		"listen": l.hostPortInto(&l.cfg.Admin.Listen),
		"socket": func(n *yaml.Node, f string) {
			if p, ok := l.str(n, f); ok && p != "" {
				l.cfg.Admin.Socket = resolve(l.path, p)
			}
		},
		"tokenFile": func(n *yaml.Node, f string) {
			if p, ok := l.nonEmptyStr(n, f); ok {
				l.cfg.Admin.TokenFile = resolve(l.path, p)
			}
		},
	})
}

// dataPlane parses the dataPlane section.
func (l *loader) dataPlane(n *yaml.Node, field string) {
	d := &l.cfg.DataPlane
	l.mapping(n, field, map[string]handler{
		"newFlowsPerSourcePerSecond": l.intInto(0, 1<<30, &d.NewFlowsPerSourcePerSecond),
		"newFlowsPerSourceBurst":     l.intInto(1, 1<<30, &d.NewFlowsPerSourceBurst),
		"localRepliesPerSecond":      l.intInto(0, 1<<30, &d.LocalRepliesPerSecond),
		"localReplyBurst":            l.intInto(1, 1<<20, &d.LocalReplyBurst),
	})
}

// state parses the state section.
func (l *loader) state(n *yaml.Node, field string) {
	l.mapping(n, field, map[string]handler{
		"path": func(n *yaml.Node, f string) {
			if p, ok := l.nonEmptyStr(n, f); ok {
				l.statePathSet = true
				l.cfg.State.Path = resolve(l.path, p)
			}
		},
	})
}

// healthChecks parses the healthChecks section. A timeout above the interval is an error when
// given, and is lowered to the interval when it is the default.
func (l *loader) healthChecks(n *yaml.Node, field string) {
	h := &l.cfg.HealthChecks
	l.mapping(n, field, map[string]handler{
		"enabled":            l.boolInto(&h.Enabled),
		"interval":           l.durationInto(&h.Interval),
		"timeout":            l.durationInto(&h.Timeout),
		"healthyThreshold":   l.intInto(1, 100, &h.HealthyThreshold),
		"unhealthyThreshold": l.intInto(1, 100, &h.UnhealthyThreshold),
	})
	if h.Timeout > h.Interval {
		if line, set := l.lines[field+".timeout"]; set {
			l.errf(line, field+".timeout", "must not exceed healthChecks.interval (%s)", h.Interval)
		} else {
			h.Timeout = h.Interval // default timeout, short interval: probe within the interval
		}
	}
}

// clusterNameProblem says what makes name unfit for services.clusterName ("" when it is fit):
// it goes into an annotation value, at most 63 characters of [A-Za-z0-9._-].
func clusterNameProblem(name string) string {
	if len(name) > 63 {
		return fmt.Sprintf("%d characters, more than 63", len(name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Sprintf("character %q: want only letters, digits, '.', '_' and '-'", r)
		}
	}
	return ""
}

// pathInto stores a non-empty path, relative to the config file's folder.
func (l *loader) pathInto(v *string) handler {
	return func(n *yaml.Node, f string) {
		if s, ok := l.str(n, f); ok && s != "" {
			*v = resolve(l.path, s)
		}
	}
}
