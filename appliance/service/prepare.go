package service

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/xdpsvc/lb/appliance/config"
)

// Annotations the model reads.
const (
	// AnnotationLoadBalancerIPs requests external IPs (MetalLB's annotation, comma-separated).
	AnnotationLoadBalancerIPs = "metallb.universe.tf/loadBalancerIPs"
	// AnnotationAddressPool restricts automatic external IPs to one named pool.
	AnnotationAddressPool = "metallb.universe.tf/address-pool"
	// LabelServiceName links an EndpointSlice to its Service.
	LabelServiceName = discoveryv1.LabelServiceName
	// DefaultAffinityTimeoutSeconds is kube-apiserver's default ClientIP affinity timeout.
	DefaultAffinityTimeoutSeconds = 10800
	maxAffinityTimeoutSeconds     = 86400
)

// prepared is everything about one Service that does not depend on allocation: validated spec,
// requests and endpoints. It is cached by content hash between builds.
type prepared struct {
	hash uint64 // combined hash of the Service and its endpoint objects; 0 = not cacheable
	obj  *Object
	tmpl Service // without allocations; Ports without ID/NodePort
	// explicit requests
	wantClusterIP  netip.Addr
	clusterIPField string
	wantNodePorts  []uint16 // per port, 0 = auto
	portKeys       []string // per port, "80/TCP": the State's key
	wantLBIP       netip.Addr
	lbField        string
	pool           string
	allocLBPorts   bool
	errs           config.ErrorList
}

func (p *prepared) needsNodePorts() bool {
	return p.tmpl.Type == TypeNodePort || p.tmpl.Type == TypeLoadBalancer && p.allocLBPorts
}

func toFieldErrors(o *Object, el field.ErrorList) config.ErrorList {
	out := make(config.ErrorList, 0, len(el))
	for _, e := range el {
		line := o.LineOf(e.Field)
		if _, ok := o.lines[e.Field]; !ok && strings.HasPrefix(e.Field, "spec.clusterIPs") {
			if l, ok := o.lines["spec.clusterIP"]; ok {
				line = l
			}
		}
		out = append(out, &config.FieldError{File: o.File, Line: line, Field: e.Field, Message: e.ErrorBody()})
	}
	return out
}

var (
	specPath  = field.NewPath("spec")
	portsPath = specPath.Child("ports")
)

// prepareService validates a Service and resolves its endpoints from its slices (or v1 Endpoints).
// api is BuildOptions.APIAllocated: a dual-stack Service then contributes its clusterIP of family.
// The steps run in the order of the Service's fields and each appends its errors in that order; the
// endpoints are resolved only when the Service has no error.
func prepareService(o *Object, slicesOf []*Object, eps *Object, family int, api bool) *prepared {
	s := o.Service
	p := &prepared{obj: o, allocLBPorts: true}
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	t := &p.tmpl
	t.Namespace, t.Name, t.File, t.Line = ns, s.Name, o.File, o.Line
	if !s.CreationTimestamp.IsZero() {
		t.CreationTimestampUnix = s.CreationTimestamp.Unix()
	}
	el := validateMetadata(s, ns, nil)
	el = p.prepareType(s, el)
	el = p.prepareClusterIP(s, family, api, el)
	el = p.preparePorts(s, el)
	el = p.prepareLoadBalancer(s, family, el)
	el = p.prepareSessionAffinity(s, el)
	el = p.prepareTrafficPolicies(s, el)
	el = p.prepareSourceRanges(s, el)
	p.errs = toFieldErrors(o, el)
	if len(p.errs) == 0 {
		resolveEndpoints(t, slicesOf, eps, family)
	}
	return p
}

// validateMetadata checks the Service's name and its namespace ns (already defaulted).
func validateMetadata(s *corev1.Service, ns string, el field.ErrorList) field.ErrorList {
	meta := field.NewPath("metadata")
	if s.Name == "" {
		el = append(el, field.Required(meta.Child("name"), "name or generateName is required"))
	}
	for _, msg := range validation.IsDNS1035Label(s.Name) {
		if s.Name != "" {
			el = append(el, field.Invalid(meta.Child("name"), s.Name, msg))
		}
	}
	for _, msg := range validation.IsDNS1123Label(ns) {
		el = append(el, field.Invalid(meta.Child("namespace"), ns, msg))
	}
	return el
}

// prepareType sets the template's Type from spec.type (empty = ClusterIP).
func (p *prepared) prepareType(s *corev1.Service, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	switch s.Spec.Type {
	case "", corev1.ServiceTypeClusterIP:
		t.Type = TypeClusterIP
	case corev1.ServiceTypeNodePort:
		t.Type = TypeNodePort
	case corev1.ServiceTypeLoadBalancer:
		t.Type = TypeLoadBalancer
	case corev1.ServiceTypeExternalName:
		t.Type = TypeExternalName
	default:
		el = append(el, field.NotSupported(specPath.Child("type"), s.Spec.Type,
			[]string{"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"}))
	}
	return el
}

// clusterIPsOf returns the Service's cluster IPs (spec.clusterIPs, else spec.clusterIP) and the
// field path of the first one. In API mode a dual-stack Service is narrowed to its IP of family
// (or its first IP), so only that one is served and checked.
func clusterIPsOf(s *corev1.Service, family int, api bool, el field.ErrorList) ([]string, *field.Path, field.ErrorList) {
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	} else if s.Spec.ClusterIP != "" && len(ips) > 0 && ips[0] != s.Spec.ClusterIP {
		el = append(el, field.Invalid(specPath.Child("clusterIPs").Index(0), ips[0], "must match `clusterIP` when both are specified"))
	}
	ipPath := specPath.Child("clusterIPs").Index(0)
	if api && len(ips) > 1 {
		// kube-apiserver allocated one IP per family: serve the one of the serviceCIDR's family.
		for i, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil && a.Is4() == (family == 4) {
				ips, ipPath = ips[i:i+1], specPath.Child("clusterIPs").Index(i)
				break
			}
		}
		if len(ips) > 1 {
			ips = ips[:1]
		}
	}
	return ips, ipPath, el
}

// prepareClusterIP checks the cluster IPs against the type (an ExternalName Service has none and
// needs spec.externalName; None = headless, ClusterIP only) and records an explicit clusterIP as
// the request. It runs after prepareType.
func (p *prepared) prepareClusterIP(s *corev1.Service, family int, api bool, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	ips, ipPath, el := clusterIPsOf(s, family, api, el)
	p.clusterIPField = ipPath.String()
	switch {
	case t.Type == TypeExternalName:
		if len(ips) > 0 && ips[0] != "" {
			el = append(el, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if s.Spec.ExternalName == "" {
			el = append(el, field.Required(specPath.Child("externalName"), ""))
		}
		for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(s.Spec.ExternalName, ".")) {
			if s.Spec.ExternalName != "" {
				el = append(el, field.Invalid(specPath.Child("externalName"), s.Spec.ExternalName, msg))
			}
		}
		t.ExternalName = s.Spec.ExternalName
	case len(ips) > 0 && ips[0] == corev1.ClusterIPNone:
		t.Headless = true
		if t.Type != TypeClusterIP {
			el = append(el, field.Invalid(ipPath, ips[0], fmt.Sprintf("may not be set to 'None' for %s services", t.Type)))
		}
	case len(ips) > 0 && ips[0] != "":
		a, err := netip.ParseAddr(ips[0])
		if err != nil || a.Zone() != "" || a.Is4In6() {
			el = append(el, field.Invalid(ipPath, ips[0], "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
		} else {
			p.wantClusterIP = a
		}
	}
	if len(ips) > 1 {
		el = append(el, field.Invalid(specPath.Child("clusterIPs").Index(1), ips[1], "this appliance serves single-stack Services: one serviceCIDR is configured"))
	}
	if s.Spec.IPFamilyPolicy != nil && *s.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack && !api {
		el = append(el, field.Invalid(specPath.Child("ipFamilyPolicy"), *s.Spec.IPFamilyPolicy, "this cluster is not configured for dual-stack services"))
	}
	return el
}

// portProto is a port number with its protocol: the unit of uniqueness of a Service's ports and
// nodePorts.
type portProto struct {
	port  uint16
	proto Protocol
}

// portsSeen is what the ports of one Service used so far, for the Duplicate errors.
type portsSeen struct {
	names     map[string]bool
	ports     map[portProto]bool
	nodePorts map[portProto]int // value: index of the port that requested it
}

// preparePorts checks spec.ports and fills, per port and in order, the template's Ports, the
// requested nodePorts and the State's port keys (the three stay index-aligned). It runs after
// clusterIPs (a headless or ExternalName Service may have no ports).
func (p *prepared) preparePorts(s *corev1.Service, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	if len(s.Spec.Ports) == 0 && !t.Headless && t.Type != TypeExternalName {
		el = append(el, field.Required(portsPath, ""))
	}
	seen := portsSeen{names: map[string]bool{}, ports: map[portProto]bool{}, nodePorts: map[portProto]int{}}
	for i := range s.Spec.Ports {
		var port Port
		var want uint16
		port, want, el = p.preparePort(s, i, &seen, el)
		p.wantNodePorts = append(p.wantNodePorts, want)
		p.portKeys = append(p.portKeys, portKey(port.Port, port.Protocol))
		t.Ports = append(t.Ports, port)
	}
	return el
}

// preparePort checks spec.ports[i] and returns its Port (without ID, NodePort and endpoints) and
// its requested nodePort (0 = auto).
func (p *prepared) preparePort(s *corev1.Service, i int, seen *portsSeen, el field.ErrorList) (Port, uint16, field.ErrorList) {
	sp := &s.Spec.Ports[i]
	pth := portsPath.Index(i)
	port := Port{Name: sp.Name}
	switch sp.Protocol {
	case "", corev1.ProtocolTCP:
		port.Protocol = TCP
	case corev1.ProtocolUDP:
		port.Protocol = UDP
	default:
		el = append(el, field.NotSupported(pth.Child("protocol"), sp.Protocol, []string{"TCP", "UDP"}))
	}
	if len(s.Spec.Ports) > 1 && sp.Name == "" {
		el = append(el, field.Required(pth.Child("name"), ""))
	} else if sp.Name != "" {
		for _, msg := range validation.IsDNS1123Label(sp.Name) {
			el = append(el, field.Invalid(pth.Child("name"), sp.Name, msg))
		}
		if seen.names[sp.Name] {
			el = append(el, field.Duplicate(pth.Child("name"), sp.Name))
		}
		seen.names[sp.Name] = true
	}
	if sp.Port < 1 || sp.Port > 65535 {
		el = append(el, field.Invalid(pth.Child("port"), sp.Port, validation.InclusiveRangeError(1, 65535)))
	} else {
		port.Port = uint16(sp.Port)
	}
	k := portProto{port.Port, port.Protocol}
	if seen.ports[k] && port.Port != 0 {
		el = append(el, field.Duplicate(pth, fmt.Sprintf("%d/%s", port.Port, port.Protocol)))
	}
	seen.ports[k] = true
	el = prepareTargetPort(sp, &port, pth, el)
	want, el := p.requestedNodePort(sp, i, port.Protocol, seen, el)
	return port, want, el
}

// prepareTargetPort sets port's TargetPortName or TargetPort from sp.targetPort, defaulted to the
// port as the apiserver does. It runs after port.Port is set.
func prepareTargetPort(sp *corev1.ServicePort, port *Port, pth *field.Path, el field.ErrorList) field.ErrorList {
	switch tp := sp.TargetPort; {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, msg := range validation.IsValidPortName(tp.StrVal) {
			el = append(el, field.Invalid(pth.Child("targetPort"), tp.StrVal, msg))
		}
		port.TargetPortName = tp.StrVal
	case tp.Type == intstr.Int && tp.IntVal != 0:
		if tp.IntVal < 1 || tp.IntVal > 65535 {
			el = append(el, field.Invalid(pth.Child("targetPort"), tp.IntVal, validation.InclusiveRangeError(1, 65535)))
		} else {
			port.TargetPort = uint16(tp.IntVal)
		}
	default:
		port.TargetPort = port.Port // defaulted to port, as the apiserver does
	}
	return el
}

// requestedNodePort returns spec.ports[i].nodePort as a request (0 = none or invalid); a nodePort
// is forbidden for ClusterIP and ExternalName Services and unique per protocol within the Service.
func (p *prepared) requestedNodePort(sp *corev1.ServicePort, i int, proto Protocol, seen *portsSeen, el field.ErrorList) (uint16, field.ErrorList) {
	if sp.NodePort == 0 {
		return 0, el
	}
	pth := portsPath.Index(i)
	switch t := &p.tmpl; {
	case t.Type == TypeClusterIP || t.Type == TypeExternalName:
		el = append(el, field.Forbidden(pth.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", t.Type)))
	case sp.NodePort < 0 || sp.NodePort > 65535:
		el = append(el, field.Invalid(pth.Child("nodePort"), sp.NodePort, validation.InclusiveRangeError(1, 65535)))
	default:
		want := uint16(sp.NodePort)
		k := portProto{want, proto}
		if _, dup := seen.nodePorts[k]; dup {
			el = append(el, field.Duplicate(pth.Child("nodePort"), sp.NodePort))
		}
		seen.nodePorts[k] = i
		return want, el
	}
	return 0, el
}

// prepareLoadBalancer reads spec.allocateLoadBalancerNodePorts, the requested external IP (the
// MetalLB annotation wins over spec.loadBalancerIP; the first IP of family is the request) and
// the address pool annotation.
func (p *prepared) prepareLoadBalancer(s *corev1.Service, family int, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	if s.Spec.AllocateLoadBalancerNodePorts != nil {
		if t.Type != TypeLoadBalancer {
			el = append(el, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
		}
		p.allocLBPorts = *s.Spec.AllocateLoadBalancerNodePorts
	}
	lbReq, lbField := s.Spec.LoadBalancerIP, "spec.loadBalancerIP"
	if a, ok := s.Annotations[AnnotationLoadBalancerIPs]; ok {
		lbReq, lbField = a, "metadata.annotations["+AnnotationLoadBalancerIPs+"]"
	}
	p.lbField = lbField
	if lbReq != "" {
		for _, cand := range strings.Split(lbReq, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(cand))
			if err != nil || a.Zone() != "" || a.Is4In6() {
				el = append(el, field.Invalid(field.NewPath(lbField), lbReq, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
				break
			}
			if (family == 4) == a.Is4() && !p.wantLBIP.IsValid() {
				p.wantLBIP = a
			}
		}
		if t.Type != TypeLoadBalancer {
			el = append(el, field.Forbidden(field.NewPath(lbField), "may only be used when `type` is 'LoadBalancer'"))
		}
	}
	p.pool = s.Annotations[AnnotationAddressPool]
	return el
}

// prepareSessionAffinity sets ClientIP affinity and its timeout (defaulted to
// DefaultAffinityTimeoutSeconds, at most maxAffinityTimeoutSeconds).
func (p *prepared) prepareSessionAffinity(s *corev1.Service, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	switch s.Spec.SessionAffinity {
	case "", corev1.ServiceAffinityNone:
	case corev1.ServiceAffinityClientIP:
		t.SessionAffinityClientIP = true
		t.AffinityTimeoutSeconds = DefaultAffinityTimeoutSeconds
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			v := *c.ClientIP.TimeoutSeconds
			if v <= 0 || v > maxAffinityTimeoutSeconds {
				el = append(el, field.Invalid(specPath.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), v,
					fmt.Sprintf("must be greater than 0 and less than %d", maxAffinityTimeoutSeconds)))
			} else {
				t.AffinityTimeoutSeconds = uint32(v)
			}
		}
	default:
		el = append(el, field.NotSupported(specPath.Child("sessionAffinity"), s.Spec.SessionAffinity, []string{"ClientIP", "None"}))
	}
	return el
}

// prepareTrafficPolicies sets the external and internal traffic policies; an external one is
// allowed only for NodePort and LoadBalancer Services.
func (p *prepared) prepareTrafficPolicies(s *corev1.Service, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	switch s.Spec.ExternalTrafficPolicy {
	case "", corev1.ServiceExternalTrafficPolicyCluster:
	case corev1.ServiceExternalTrafficPolicyLocal:
		t.ExternalTrafficPolicy = PolicyLocal
	default:
		el = append(el, field.NotSupported(specPath.Child("externalTrafficPolicy"), s.Spec.ExternalTrafficPolicy, []string{"Cluster", "Local"}))
	}
	if s.Spec.ExternalTrafficPolicy != "" && t.Type != TypeNodePort && t.Type != TypeLoadBalancer {
		el = append(el, field.Invalid(specPath.Child("externalTrafficPolicy"), s.Spec.ExternalTrafficPolicy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
	}
	if itp := s.Spec.InternalTrafficPolicy; itp != nil {
		switch *itp {
		case corev1.ServiceInternalTrafficPolicyCluster:
		case corev1.ServiceInternalTrafficPolicyLocal:
			t.InternalTrafficPolicy = PolicyLocal
		default:
			el = append(el, field.NotSupported(specPath.Child("internalTrafficPolicy"), *itp, []string{"Cluster", "Local"}))
		}
	}
	return el
}

// prepareSourceRanges sets the template's SourceRanges (masked) from
// spec.loadBalancerSourceRanges, which only a LoadBalancer Service may have.
func (p *prepared) prepareSourceRanges(s *corev1.Service, el field.ErrorList) field.ErrorList {
	t := &p.tmpl
	for i, r := range s.Spec.LoadBalancerSourceRanges {
		pr, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			el = append(el, field.Invalid(specPath.Child("loadBalancerSourceRanges").Index(i), r, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
			continue
		}
		t.SourceRanges = append(t.SourceRanges, pr.Masked())
	}
	if len(s.Spec.LoadBalancerSourceRanges) > 0 && t.Type != TypeLoadBalancer {
		el = append(el, field.Forbidden(specPath.Child("loadBalancerSourceRanges"), "may only be used when `type` is 'LoadBalancer'"))
	}
	return el
}

// validateSlice checks an EndpointSlice's own fields (not its link to a Service).
func validateSlice(o *Object) config.ErrorList {
	es := o.EndpointSlice
	var el field.ErrorList
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	default:
		el = append(el, field.NotSupported(field.NewPath("addressType"), es.AddressType, []string{"FQDN", "IPv4", "IPv6"}))
	}
	for i, ep := range es.Endpoints {
		pth := field.NewPath("endpoints").Index(i).Child("addresses")
		if len(ep.Addresses) == 0 {
			el = append(el, field.Required(pth, "must contain at least 1 address"))
		}
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for j, a := range ep.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Zone() != "" || ip.Is4In6() || ip.Is4() != (es.AddressType == discoveryv1.AddressTypeIPv4) {
				el = append(el, field.Invalid(pth.Index(j), a, fmt.Sprintf("must be a valid %s address", es.AddressType)))
			}
		}
	}
	for i, pt := range es.Ports {
		pth := field.NewPath("ports").Index(i)
		if pt.Port != nil && (*pt.Port < 1 || *pt.Port > 65535) {
			el = append(el, field.Invalid(pth.Child("port"), *pt.Port, validation.InclusiveRangeError(1, 65535)))
		}
		if pt.Protocol != nil && *pt.Protocol != corev1.ProtocolTCP && *pt.Protocol != corev1.ProtocolUDP && *pt.Protocol != corev1.ProtocolSCTP {
			el = append(el, field.NotSupported(pth.Child("protocol"), *pt.Protocol, []string{"SCTP", "TCP", "UDP"}))
		}
	}
	return toFieldErrors(o, el)
}

// validateEndpoints checks a v1 Endpoints object's addresses and ports.
func validateEndpoints(o *Object) config.ErrorList {
	var el field.ErrorList
	for i, ss := range o.Endpoints.Subsets {
		sp := field.NewPath("subsets").Index(i)
		check := func(name string, addrs []corev1.EndpointAddress) {
			for j, a := range addrs {
				if ip, err := netip.ParseAddr(a.IP); err != nil || ip.Zone() != "" || ip.Is4In6() {
					el = append(el, field.Invalid(sp.Child(name).Index(j).Child("ip"), a.IP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
				}
			}
		}
		check("addresses", ss.Addresses)
		check("notReadyAddresses", ss.NotReadyAddresses)
		for j, pt := range ss.Ports {
			if pt.Port < 1 || pt.Port > 65535 {
				el = append(el, field.Invalid(sp.Child("ports").Index(j).Child("port"), pt.Port, validation.InclusiveRangeError(1, 65535)))
			}
		}
	}
	return toFieldErrors(o, el)
}

// resolveEndpoints fills each port's endpoints the way kube-proxy does: a Service port takes the
// EndpointSlice port of the same name and protocol. When none matches, a named targetPort is looked
// up among the slice's port names, and a slice without ports uses a numeric targetPort. v1 Endpoints
// are used only when no EndpointSlice names the Service (the mirroring controller's rule).
func resolveEndpoints(t *Service, slicesOf []*Object, eps *Object, family int) {
	want := discoveryv1.AddressTypeIPv4
	if family == 6 {
		want = discoveryv1.AddressTypeIPv6
	}
	for pi := range t.Ports {
		sp := &t.Ports[pi]
		var out []Endpoint
		for _, so := range slicesOf {
			es := so.EndpointSlice
			if es.AddressType != want {
				continue
			}
			port, ok := slicePort(es.Ports, sp)
			if !ok {
				continue
			}
			for _, ep := range es.Endpoints {
				a, err := netip.ParseAddr(ep.Addresses[0])
				if err != nil {
					continue
				}
				e := Endpoint{Addr: a, Port: port, Ready: true, Serving: true}
				if c := ep.Conditions.Ready; c != nil {
					e.Ready = *c
				}
				e.Serving = e.Ready
				if c := ep.Conditions.Serving; c != nil {
					e.Serving = *c
				}
				if c := ep.Conditions.Terminating; c != nil {
					e.Terminating = *c
				}
				if ep.NodeName != nil {
					e.NodeName = *ep.NodeName
				}
				if ep.Zone != nil {
					e.Zone = *ep.Zone
				}
				if ep.Hostname != nil {
					e.Hostname = *ep.Hostname
				}
				out = append(out, e)
			}
		}
		if len(slicesOf) == 0 && eps != nil {
			for _, ss := range eps.Endpoints.Subsets {
				port, ok := endpointsPort(ss.Ports, sp)
				if !ok {
					continue
				}
				add := func(addrs []corev1.EndpointAddress, ready bool) {
					for _, ea := range addrs {
						a, err := netip.ParseAddr(ea.IP)
						if err != nil || a.Is4() != (family == 4) {
							continue
						}
						e := Endpoint{Addr: a, Port: port, Ready: ready, Serving: ready, Hostname: ea.Hostname}
						if ea.NodeName != nil {
							e.NodeName = *ea.NodeName
						}
						out = append(out, e)
					}
				}
				add(ss.Addresses, true)
				add(ss.NotReadyAddresses, false)
			}
		}
		slices.SortStableFunc(out, func(a, b Endpoint) int {
			if c := a.Addr.Compare(b.Addr); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
		out = slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Addr == b.Addr && a.Port == b.Port })
		sp.Endpoints = slices.Clip(out)
	}
}

func protoOf(p *corev1.Protocol) Protocol {
	if p != nil && *p == corev1.ProtocolUDP {
		return UDP
	}
	if p != nil && *p == corev1.ProtocolSCTP {
		return 0
	}
	return TCP
}

func slicePort(ports []discoveryv1.EndpointPort, sp *Port) (uint16, bool) {
	for _, pass := range []string{sp.Name, sp.TargetPortName} {
		if pass == "" && sp.Name != "" {
			continue
		}
		for _, pt := range ports {
			name := ""
			if pt.Name != nil {
				name = *pt.Name
			}
			if name == pass && protoOf(pt.Protocol) == sp.Protocol && pt.Port != nil {
				return uint16(*pt.Port), true
			}
		}
		if pass == sp.Name && sp.TargetPortName == "" {
			break
		}
	}
	if len(ports) == 0 && sp.TargetPort != 0 {
		return sp.TargetPort, true
	}
	return 0, false
}

func endpointsPort(ports []corev1.EndpointPort, sp *Port) (uint16, bool) {
	for _, pass := range []string{sp.Name, sp.TargetPortName} {
		for _, pt := range ports {
			proto := pt.Protocol
			if pt.Name == pass && protoOf(&proto) == sp.Protocol && (pass != "" || sp.Name == "") {
				return uint16(pt.Port), true
			}
		}
	}
	if len(ports) == 0 && sp.TargetPort != 0 {
		return sp.TargetPort, true
	}
	return 0, false
}
