package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Service describes one v1 Service of the lab and, when it has endpoints, its one
// discovery.k8s.io/v1 EndpointSlice, for Manifests.
type Service struct {
	// Name is the Service's name in namespace default; its EndpointSlice is <Name>-1.
	Name string
	// Type is the Service type (LoadBalancer when empty).
	Type string
	// LoadBalancerIP and ClusterIP are fixed addresses ("" leaves them to the appliance).
	LoadBalancerIP, ClusterIP string
	// Ports are the Service's ports; the EndpointSlice's ports are their target ports.
	Ports []ServicePort
	// Endpoints are the backend addresses; no EndpointSlice is written when there are none.
	Endpoints []Endpoint
}

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name is the port's name, also in the EndpointSlice.
	Name string
	// Protocol is TCP or UDP.
	Protocol string
	// Port and TargetPort are the Service's port and the backends'; NodePort is left out when 0.
	Port, TargetPort, NodePort int
}

// Endpoint is one backend address of an EndpointSlice.
type Endpoint struct {
	// Addr is the backend's address.
	Addr string
	// NotReady marks the endpoint conditions.ready: false.
	NotReady bool
}

// Manifests writes svcs as a multi-document YAML stream the appliance's manifest loader reads.
func Manifests(svcs ...Service) string {
	var b strings.Builder
	for i, s := range svcs {
		if i > 0 {
			b.WriteString("---\n")
		}
		typ := s.Type
		if typ == "" {
			typ = "LoadBalancer"
		}
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\nspec:\n  type: %s\n", s.Name, typ)
		if s.LoadBalancerIP != "" {
			fmt.Fprintf(&b, "  loadBalancerIP: %s\n", s.LoadBalancerIP)
		}
		if s.ClusterIP != "" {
			fmt.Fprintf(&b, "  clusterIP: %s\n", s.ClusterIP)
		}
		b.WriteString("  ports:\n")
		var slicePorts []string
		for _, p := range s.Ports {
			np := ""
			if p.NodePort != 0 {
				np = fmt.Sprintf(", nodePort: %d", p.NodePort)
			}
			fmt.Fprintf(&b, "    - {name: %s, protocol: %s, port: %d, targetPort: %d%s}\n", p.Name, p.Protocol, p.Port, p.TargetPort, np)
			slicePorts = append(slicePorts, fmt.Sprintf("{name: %s, protocol: %s, port: %d}", p.Name, p.Protocol, p.TargetPort))
		}
		if len(s.Endpoints) == 0 {
			continue
		}
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"+
			"metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}\n"+
			"addressType: IPv4\nports: [%s]\nendpoints:\n", s.Name, s.Name, strings.Join(slicePorts, ", "))
		for _, e := range s.Endpoints {
			fmt.Fprintf(&b, "  - addresses: [%s]\n    conditions: {ready: %t}\n", e.Addr, !e.NotReady)
		}
	}
	return b.String()
}

// ReadyEndpoints are the addresses as ready endpoints.
func ReadyEndpoints(addrs []netip.Addr) []Endpoint {
	eps := make([]Endpoint, 0, len(addrs))
	for _, a := range addrs {
		eps = append(eps, Endpoint{Addr: a.String()})
	}
	return eps
}

// BackendAddrs are the addresses of the lab's backends, in order.
func (l *Lab) BackendAddrs() []netip.Addr {
	addrs := make([]netip.Addr, 0, len(l.Backends))
	for _, b := range l.Backends {
		addrs = append(addrs, b.Addr())
	}
	return addrs
}
