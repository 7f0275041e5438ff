package service

import (
	"net/netip"

	"github.com/xdpsvc/lb/packet"
)

// Type is a Service type.
type Type uint8

// Service types; each wider type carries the narrower ones.
const (
	TypeClusterIP Type = iota
	TypeNodePort
	TypeLoadBalancer
	TypeExternalName
)

// String returns the Kubernetes spelling of the type.
func (t Type) String() string {
	return [...]string{"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}[t]
}

// Protocol is an IP protocol number (packet.ProtoTCP or packet.ProtoUDP).
type Protocol uint8

// Protocols a Service port may use.
const (
	TCP = Protocol(packet.ProtoTCP)
	UDP = Protocol(packet.ProtoUDP)
)

// String returns "TCP" or "UDP".
func (p Protocol) String() string {
	if p == UDP {
		return "UDP"
	}
	return "TCP"
}

// TrafficPolicy is an externalTrafficPolicy or internalTrafficPolicy.
type TrafficPolicy uint8

// Traffic policies.
const (
	PolicyCluster TrafficPolicy = iota
	PolicyLocal
)

// String returns "Cluster" or "Local".
func (p TrafficPolicy) String() string {
	if p == PolicyLocal {
		return "Local"
	}
	return "Cluster"
}

// PortID is a stable small integer naming one Service port, for per-port counters and the
// frontend index. 0 means none. It persists in the State and never changes while the port exists.
type PortID uint32

// Endpoint is one backend of one Service port.
type Endpoint struct {
	// Addr is the backend address (the EndpointSlice endpoint's addresses[0]).
	Addr netip.Addr
	// Port is the backend port (the target port resolved through the EndpointSlice port names).
	Port uint16
	// Ready is conditions.ready (nil counts as ready, as the API says).
	Ready bool
	// Serving is conditions.serving (nil counts as Ready).
	Serving bool
	// Terminating is conditions.terminating (nil counts as false).
	Terminating bool
	// NodeName is the Kubernetes node of the endpoint, if given.
	NodeName string
	// Zone is the zone of the endpoint, if given.
	Zone string
	// Hostname is the endpoint's hostname, if given.
	Hostname string
}

// Port is one port of a Service with its allocation and endpoints.
type Port struct {
	// ID names this port in counters and in the frontend index.
	ID PortID
	// Name is the port's name (may be empty for a single-port Service).
	Name string
	// Protocol is TCP or UDP.
	Protocol Protocol
	// Port is the Service port on the ClusterIP and external IP.
	Port uint16
	// NodePort is the node port, 0 when the Service has none.
	NodePort uint16
	// TargetPort is the numeric targetPort, 0 when it is a name.
	TargetPort uint16
	// TargetPortName is the named targetPort, "" when it is a number.
	TargetPortName string
	// Endpoints are the backends of this port, sorted by address then port.
	Endpoints []Endpoint
}

// Service is one Service of the desired state. Services are shared between snapshots and must
// never be modified.
type Service struct {
	// Namespace of the Service.
	Namespace string
	// Name of the Service.
	Name string
	// Type of the Service.
	Type Type
	// Headless is true for clusterIP: None; a headless Service is not load-balanced.
	Headless bool
	// ExternalName is spec.externalName of an ExternalName Service (not load-balanced).
	ExternalName string
	// ClusterIPs are the Service's cluster IPs (one: single stack). Empty when headless/ExternalName.
	ClusterIPs []netip.Addr
	// ExternalIP is the LoadBalancer VIP; invalid when none.
	ExternalIP netip.Addr
	// Pending is true for a LoadBalancer Service without an external IP (no pool, or exhausted).
	Pending bool
	// Pool is the name of the pool ExternalIP came from.
	Pool string
	// Ports of the Service.
	Ports []Port
	// SessionAffinityClientIP is true for sessionAffinity: ClientIP.
	SessionAffinityClientIP bool
	// AffinityTimeoutSeconds is the ClientIP affinity timeout (default 10800).
	AffinityTimeoutSeconds uint32
	// ExternalTrafficPolicy applies to NodePort and LoadBalancer traffic.
	ExternalTrafficPolicy TrafficPolicy
	// InternalTrafficPolicy applies to ClusterIP traffic.
	InternalTrafficPolicy TrafficPolicy
	// SourceRanges are loadBalancerSourceRanges (masked); empty = all sources.
	SourceRanges []netip.Prefix
	// CreationTimestampUnix is metadata.creationTimestamp in Unix seconds, 0 when unset.
	CreationTimestampUnix int64
	// File and Line locate the Service's manifest.
	File string
	// Line is the first line of the Service's document.
	Line int

	specHash, endpointsHash uint64
}

// Key returns namespace/name.
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// LoadBalanced reports whether the data plane serves this Service (not headless, not ExternalName).
func (s *Service) LoadBalanced() bool { return !s.Headless && s.Type != TypeExternalName }

// Frontend is an (address, port, protocol) the node serves.
type Frontend struct {
	// Addr is a ClusterIP or a LoadBalancer VIP.
	Addr netip.Addr
	// Port is the Service port.
	Port uint16
	// Protocol is TCP or UDP.
	Protocol Protocol
}

// NodePortKey is a nodePort frontend; the node addresses are known only at run time.
type NodePortKey struct {
	// Port is the nodePort.
	Port uint16
	// Protocol is TCP or UDP.
	Protocol Protocol
}

// PortRef locates a PortID in Snapshot.Services.
type PortRef struct {
	// Service indexes Snapshot.Services.
	Service int32
	// Port indexes that Service's Ports.
	Port int32
}

// Snapshot is the validated, allocated, immutable desired state. Share it freely between
// goroutines (atomic.Pointer); never modify it.
type Snapshot struct {
	// Services sorted by namespace/name.
	Services []*Service
	// Frontends maps ClusterIP and VIP frontends to their port.
	Frontends map[Frontend]PortID
	// NodePorts maps nodePort frontends to their port.
	NodePorts map[NodePortKey]PortID
	// Ports maps a PortID to where it lives in Services.
	Ports map[PortID]PortRef
}

// Port returns the Service and Port of id, or nil, nil.
func (s *Snapshot) Port(id PortID) (*Service, *Port) {
	r, ok := s.Ports[id]
	if !ok {
		return nil, nil
	}
	svc := s.Services[r.Service]
	return svc, &svc.Ports[r.Port]
}

// Lookup returns the Service and Port named by namespace/name, or nil.
func (s *Snapshot) Lookup(key string) *Service {
	lo, hi := 0, len(s.Services)
	for lo < hi {
		m := (lo + hi) / 2
		if s.Services[m].Key() < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s.Services) && s.Services[lo].Key() == key {
		return s.Services[lo]
	}
	return nil
}

// Diff lists what changed between two snapshots, by namespace/name, each list sorted.
type Diff struct {
	// Added are Services only in the new snapshot.
	Added []string
	// Removed are Services only in the old snapshot.
	Removed []string
	// Changed are Services whose spec or allocations changed (their endpoints may have changed too).
	Changed []string
	// EndpointsChanged are Services whose endpoints alone changed.
	EndpointsChanged []string
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.EndpointsChanged) == 0
}

// Diff compares s with old (old may be nil).
func (s *Snapshot) Diff(old *Snapshot) Diff {
	var d Diff
	var oldSvcs []*Service
	if old != nil {
		oldSvcs = old.Services
	}
	i, j := 0, 0
	for i < len(s.Services) || j < len(oldSvcs) {
		switch {
		case j >= len(oldSvcs) || i < len(s.Services) && s.Services[i].Key() < oldSvcs[j].Key():
			d.Added = append(d.Added, s.Services[i].Key())
			i++
		case i >= len(s.Services) || oldSvcs[j].Key() < s.Services[i].Key():
			d.Removed = append(d.Removed, oldSvcs[j].Key())
			j++
		default:
			n, o := s.Services[i], oldSvcs[j]
			if n != o {
				if n.specHash != o.specHash {
					d.Changed = append(d.Changed, n.Key())
				} else if n.endpointsHash != o.endpointsHash {
					d.EndpointsChanged = append(d.EndpointsChanged, n.Key())
				}
			}
			i++
			j++
		}
	}
	return d
}
