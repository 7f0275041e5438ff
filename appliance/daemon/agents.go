package daemon

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/cluster"
)

// Backend agents (`appliance agent`) announce endpoints in their metadata in the agent cluster
// (agentcluster.go; never in the appliances' cluster). Every appliance turns the alive agents'
// endpoints into synthetic EndpointSlices (File "agent:<member>", so errors name the agent)
// that are built together with the manifests:
//
//   - ready -> ready; not ready -> ready=false serving=false; draining -> ready=false
//     serving=true terminating=true (established flows keep going, new ones go elsewhere);
//   - an agent that left or died has no endpoints (cluster.Node.Backends lists alive ones only);
//   - agent data is untrusted. An operator grants agents a Service with the Service annotation
//     AllowedSourcesAnnotation (comma-separated CIDRs); an endpoint is taken only when its
//     Service is in the manifests and carries the grant, its address is the agent's own
//     memberlist address (the address the failure detector probes it at) and lies in one of
//     the granted CIDRs, and it is unicast outside the serviceCIDR and the LoadBalancer pools.
//     Anything else is refused and counted; if the builder still rejects an agent's slices,
//     that agent's objects are left out (logged, counted) and the build goes on without them.
//
// In API mode agents are ignored (logged once): EndpointSlices come from the API.

// Refusal reasons (label of appliance_agent_endpoints_refused_total).
const (
	refusedAddress    = "address"         // not a unicast address, or inside the serviceCIDR or a pool
	refusedService    = "unknown_service" // no such Service in the manifests
	refusedNotGranted = "not_granted"     // the Service grants no agent, or not this address (AllowedSourcesAnnotation)
	refusedNotOwn     = "not_own_address" // the address is not the agent's own memberlist address
	refusedBuild      = "build"           // the builder rejected the agent's slices
)

// AllowedSourcesAnnotation is the Service annotation that grants backend agents the Service:
// comma-separated CIDRs their endpoint addresses must lie in. Without it, no agent endpoint is
// taken for the Service.
const AllowedSourcesAnnotation = "agents.xdpsvc.io/allowed-sources"

// agentSource is the daemon's view of backend agents: metrics and what was last refused (so
// that a refusal is logged and counted once, not at every rebuild).
type agentSource struct {
	node      atomic.Pointer[cluster.Node] // the agent cluster (agentcluster.go); nil when not running
	refused   *prometheus.CounterVec
	endpoints prometheus.Gauge
	mu        sync.Mutex
	lastRefs  map[string]bool // refusals of the last round: "agent|service|reason"
	apiLogged bool
}

// newAgentSource makes the agent source with its metrics.
func newAgentSource() *agentSource {
	return &agentSource{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appliance_agent_endpoints_refused_total",
			Help: "Endpoints announced by backend agents and refused, by reason (address, unknown_service, not_granted, not_own_address, build); counted once per agent, Service and reason until it changes.",
		}, []string{"reason"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "appliance_agent_endpoints", Help: "Endpoints from backend agents in the last build.",
		}),
		lastRefs: map[string]bool{},
	}
}

// agents returns n's agent source.
func (n *node) agents() *agentSource { return n.agentSrc }

// agentMetrics are the agent source's Prometheus metrics.
func (n *node) agentMetrics() []prometheus.Collector {
	s := n.agents()
	return []prometheus.Collector{s.refused, s.endpoints}
}

// agentsChanged is cluster.Config.OnMembers (the cluster's event goroutine): the member set or
// some metadata changed, so the control loop rebuilds from the agents' current endpoints.
func (n *node) agentsChanged() {
	if n.cfg.Services.FromAPI() {
		n.kubeWatch.resync() // the first live appliance, which writes pending Services' status, may have changed
		s := n.agents()
		s.mu.Lock()
		first := !s.apiLogged
		s.apiLogged = true
		s.mu.Unlock()
		if first {
			n.log.Info("backend agents' endpoints are ignored in Kubernetes API mode; EndpointSlices come from the API")
		}
		return
	}
	n.requestRefresh("backend agents changed")
}

// agentObjects returns the EndpointSlices of the alive backend agents that the manifests can
// take (control goroutine only).
func (n *node) agentObjects() []service.Object {
	s := n.agents()
	agentCluster := s.node.Load()
	if agentCluster == nil || n.cfg.Services.FromAPI() {
		return nil
	}
	svcs := map[string]*corev1.Service{}
	for _, o := range n.control.objs {
		if o.Service != nil {
			svcs[o.Name()] = o.Service
		}
	}
	refs := map[string]bool{}
	byAgent := map[string][]service.Object{}
	var agents []string
	for _, b := range agentCluster.Backends() {
		objs := agentSlices(b, svcs, n.cfg, func(svc, reason string, err error) {
			refs[b.Name+"|"+svc+"|"+reason] = true
			if !s.lastRefs[b.Name+"|"+svc+"|"+reason] {
				s.refused.WithLabelValues(reason).Inc()
				n.log.Warn("backend agent endpoint refused", "agent", b.Name, "service", svc, "reason", reason, "err", err)
			}
		})
		if len(objs) > 0 {
			byAgent[b.Name] = objs
			agents = append(agents, b.Name)
		}
	}
	// A trial build: an agent whose slices the builder rejects is left out, so that one agent's
	// bad data cannot stop every update.
	for range 3 {
		if len(agents) == 0 {
			break
		}
		all := slices.Clone(n.control.objs)
		for _, a := range agents {
			all = append(all, byAgent[a]...)
		}
		_, _, err := n.builder.Build(all, n.control.state)
		bad := agentsInErrors(err)
		if len(bad) == 0 {
			break // built, or failed for reasons of the manifests' own
		}
		agents = slices.DeleteFunc(agents, func(a string) bool {
			if !bad[a] {
				return false
			}
			k := a + "||" + refusedBuild
			refs[k] = true
			if !s.lastRefs[k] {
				s.refused.WithLabelValues(refusedBuild).Inc()
				n.log.Warn("backend agent's endpoints left out: the build rejects them", "agent", a, "err", err)
			}
			return true
		})
	}
	s.lastRefs = refs
	var out []service.Object
	count := 0
	for _, a := range agents {
		out = append(out, byAgent[a]...)
		for _, o := range byAgent[a] {
			count += len(o.EndpointSlice.Endpoints)
		}
	}
	s.endpoints.Set(float64(count))
	return out
}

// agentsInErrors returns the agents named by a build error's FieldErrors (File "agent:NAME").
func agentsInErrors(err error) map[string]bool {
	var el config.ErrorList
	if !errors.As(err, &el) {
		return nil
	}
	out := map[string]bool{}
	for _, e := range el {
		if name, ok := strings.CutPrefix(e.File, "agent:"); ok {
			out[name] = true
		}
	}
	return out
}

// agentSlices turns one agent's endpoints into EndpointSlice objects, one per Service, calling
// refuse for every endpoint it leaves out.
func agentSlices(b cluster.BackendMember, svcs map[string]*corev1.Service, cfg *config.Config,
	refuse func(svc, reason string, err error)) []service.Object {
	var out []service.Object
	for _, e := range b.Endpoints {
		svc := svcs[e.Service]
		if svc == nil {
			refuse(e.Service, refusedService, fmt.Errorf("no Service %s in the manifests", e.Service))
			continue
		}
		if reason, err := checkAgentGrant(b, e.Addr, svc); err != nil {
			refuse(e.Service, reason, err)
			continue
		}
		if err := checkAgentAddr(e.Addr, cfg); err != nil {
			refuse(e.Service, refusedAddress, err)
			continue
		}
		addrType := discoveryv1.AddressTypeIPv4
		if e.Addr.Is6() {
			addrType = discoveryv1.AddressTypeIPv6
		}
		var ports []discoveryv1.EndpointPort
		for _, p := range e.Ports {
			name := p.Name
			proto := corev1.ProtocolTCP
			if p.Protocol == cluster.ProtocolUDP {
				proto = corev1.ProtocolUDP
			}
			if name == "" && len(e.Ports) == 1 {
				// An unnamed agent port serves a single-port Service whatever that port's name.
				var same []corev1.ServicePort
				for _, sp := range svc.Spec.Ports {
					if sp.Protocol == proto || (sp.Protocol == "" && proto == corev1.ProtocolTCP) {
						same = append(same, sp)
					}
				}
				if len(same) == 1 {
					name = same[0].Name
				}
			}
			port := int32(p.Port)
			ports = append(ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
		}
		ready, serving, terminating := true, true, false
		switch e.State {
		case cluster.EndpointNotReady:
			ready, serving = false, false
		case cluster.EndpointDraining:
			ready, serving, terminating = false, true, true
		}
		if b.Leaving { // announced just before it goes: drain
			ready, serving, terminating = false, true, true
		}
		nodeName := b.Name
		slice := &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: agentSliceName(svc.Name, b.Name),
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "appliance-agent"}},
			AddressType: addrType,
			Ports:       ports,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{e.Addr.String()}, NodeName: &nodeName,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}}},
		}
		if slice.Namespace == "" {
			slice.Namespace = "default"
		}
		o, err := service.NewObject(slice, "agent:"+b.Name, 0)
		if err != nil {
			refuse(e.Service, refusedBuild, err)
			continue
		}
		out = append(out, o)
	}
	return out
}

// checkAgentGrant accepts addr for svc when it is agent b's own memberlist address and svc
// grants it (AllowedSourcesAnnotation); otherwise it returns the refusal reason and why.
func checkAgentGrant(b cluster.BackendMember, addr netip.Addr, svc *corev1.Service) (string, error) {
	grant, ok := svc.Annotations[AllowedSourcesAnnotation]
	if !ok {
		return refusedNotGranted, fmt.Errorf("Service %s/%s does not grant agents (no %s annotation)", svc.Namespace, svc.Name, AllowedSourcesAnnotation)
	}
	if own := b.Addr.Addr().Unmap(); addr.Unmap() != own {
		return refusedNotOwn, fmt.Errorf("address %s: the agent's own address is %s", addr, own)
	}
	for _, f := range strings.Split(grant, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			return refusedNotGranted, fmt.Errorf("Service %s/%s annotation %s: %w", svc.Namespace, svc.Name, AllowedSourcesAnnotation, err)
		}
		if p.Contains(addr) {
			return "", nil
		}
	}
	return refusedNotGranted, fmt.Errorf("address %s: outside Service %s/%s's %s %q", addr, svc.Namespace, svc.Name, AllowedSourcesAnnotation, grant)
}

// checkAgentAddr accepts a unicast address outside the serviceCIDR and the LoadBalancer pools.
func checkAgentAddr(a netip.Addr, cfg *config.Config) error {
	if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() ||
		a.IsLinkLocalMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("address %v: not a unicast address", a)
	}
	if cfg.Network.ServiceCIDR.Contains(a) {
		return fmt.Errorf("address %s: inside the serviceCIDR %s", a, cfg.Network.ServiceCIDR)
	}
	for _, p := range cfg.Network.LoadBalancerPools {
		for _, c := range p.CIDRs {
			if c.Contains(a) {
				return fmt.Errorf("address %s: inside LoadBalancer pool %s (%s)", a, p.Name, c)
			}
		}
	}
	return nil
}

// agentSliceName is a stable, valid object name for an agent's slice of a Service.
func agentSliceName(svc, agent string) string {
	h := fnv.New32a()
	h.Write([]byte(agent))
	var b strings.Builder
	for _, r := range strings.ToLower(agent) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := fmt.Sprintf("%s-agent-%s", svc, b.String())
	if len(name) > 240 {
		name = name[:240]
	}
	return fmt.Sprintf("%s-%08x", name, h.Sum32())
}
