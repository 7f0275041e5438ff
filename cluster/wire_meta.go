package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Node metadata: what every member gossips about itself (memberlist's
// NodeMeta), in its own versioned encoding (MetaVersion).

// MetaMaxBytes is memberlist's limit on node metadata.
const MetaMaxBytes = 512

// maxMetaAddrs bounds each address list in node metadata.
const maxMetaAddrs = 32

// Role says what a member is.
type Role uint8

const (
	// RoleAppliance is a load-balancer node: it may hold VIPs.
	RoleAppliance Role = 1
	// RoleBackend is a backend agent: it announces endpoints, never holds VIPs.
	RoleBackend Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleAppliance:
		return "appliance"
	case RoleBackend:
		return "backend"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// MetaVersion is the version byte that starts node metadata. Version 2 added
// the endpoint list of backend agents; DecodeMeta still reads version 1
// (the same layout without it).
const MetaVersion = 2

// Meta is the node metadata every member gossips about itself.
type Meta struct {
	Role        Role         // appliance or backend agent
	Version     string       // software version, at most 255 bytes
	ExternalIPs []netip.Addr // addresses on external interfaces
	ClusterIPs  []netip.Addr // addresses on cluster interfaces
	Leaving     bool         // set by a node leaving gracefully, just before it goes
	// Syncing is set by an appliance that has just started and is still taking in the
	// others' state (flows): it counts toward the quorum but no VIP is placed on it until it
	// clears the flag, so a VIP moving back to it finds the connections already there.
	Syncing bool
	// Endpoints are the endpoints a backend agent announces (RoleBackend
	// only; empty for appliances), sorted by Service and unique.
	Endpoints []AgentEndpoint
	// MACs are the hardware addresses of an appliance's ports, so that a
	// node that sees another MAC answering ARP for its VIP knows which
	// member answered (at most 16; optional at the end of the encoding).
	MACs [][6]byte
}

// maxMetaMACs bounds Meta.MACs.
const maxMetaMACs = 16

// EndpointState is the state a backend agent announces for an endpoint.
type EndpointState uint8

const (
	// EndpointReady: every readiness check passes; new connections may go to it.
	EndpointReady EndpointState = 1
	// EndpointNotReady: a readiness check fails; no traffic goes to it.
	EndpointNotReady EndpointState = 2
	// EndpointDraining: the agent is stopping; established flows keep going,
	// new ones go elsewhere.
	EndpointDraining EndpointState = 3
)

func (s EndpointState) String() string {
	switch s {
	case EndpointReady:
		return "ready"
	case EndpointNotReady:
		return "not-ready"
	case EndpointDraining:
		return "draining"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// PortProtocol is an endpoint port's transport protocol.
type PortProtocol uint8

const (
	// ProtocolTCP is TCP.
	ProtocolTCP PortProtocol = 1
	// ProtocolUDP is UDP.
	ProtocolUDP PortProtocol = 2
)

func (p PortProtocol) String() string {
	switch p {
	case ProtocolTCP:
		return "TCP"
	case ProtocolUDP:
		return "UDP"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// AgentPort is one port of an announced endpoint, as in an EndpointSlice:
// an empty Name is the unnamed port of a single-port Service.
type AgentPort struct {
	Name     string       // EndpointSlice port name, at most 63 bytes; "" = unnamed
	Port     uint16       // 1-65535
	Protocol PortProtocol // TCP or UDP
}

// AgentEndpoint is one endpoint a backend agent announces for one Service.
type AgentEndpoint struct {
	Service string        // "namespace/name"
	Addr    netip.Addr    // the endpoint address (traffic goes here)
	Ports   []AgentPort   // unique by (Name, Protocol), at least one
	State   EndpointState // ready, not ready or draining
}

// Limits of the endpoint list in node metadata.
const (
	maxAgentEndpoints = 32 // Services per agent
	maxAgentPorts     = 32 // ports per endpoint
	maxPortNameBytes  = 63 // a DNS label, as Kubernetes port names
)

const (
	metaFlagLeaving = 1
	metaFlagSyncing = 2
)

// EncodeMeta encodes m: version, role, flags (bit 0: leaving; unknown bits
// are ignored by decoders), version string, two address lists
// (count byte, then per address a length byte 4 or 16 and the bytes), then
// the endpoint list: a count byte, then per endpoint the Service key
// (length byte, bytes), the address, the state byte, a port count byte and
// per port its name (length byte, bytes), number (2 bytes) and protocol byte.
// Endpoints are written sorted by Service. Metadata over MetaMaxBytes, or
// any field out of its limits, is an ErrInvalid error.
func EncodeMeta(m Meta) ([]byte, error) {
	if len(m.Version) > maxNameBytes {
		return nil, fmt.Errorf("encode meta: version: %w: %d bytes", ErrInvalid, len(m.Version))
	}
	if len(m.ExternalIPs) > maxMetaAddrs || len(m.ClusterIPs) > maxMetaAddrs {
		return nil, fmt.Errorf("encode meta: addresses: %w: more than %d", ErrInvalid, maxMetaAddrs)
	}
	if len(m.Endpoints) > maxAgentEndpoints {
		return nil, fmt.Errorf("encode meta: endpoints: %w: %d, limit %d", ErrInvalid, len(m.Endpoints), maxAgentEndpoints)
	}
	eps := slices.Clone(m.Endpoints)
	slices.SortStableFunc(eps, func(a, b AgentEndpoint) int { return strings.Compare(a.Service, b.Service) })
	for i, e := range eps {
		if err := checkAgentEndpoint(e); err != nil {
			return nil, fmt.Errorf("encode meta: %w", err)
		}
		if i > 0 && eps[i-1].Service == e.Service {
			return nil, fmt.Errorf("encode meta: endpoint for %q: %w: announced twice", e.Service, ErrInvalid)
		}
	}
	var flags byte
	if m.Leaving {
		flags |= metaFlagLeaving
	}
	if m.Syncing {
		flags |= metaFlagSyncing
	}
	b := []byte{MetaVersion, byte(m.Role), flags, byte(len(m.Version))}
	b = append(b, m.Version...)
	for _, list := range [][]netip.Addr{m.ExternalIPs, m.ClusterIPs} {
		b = append(b, byte(len(list)))
		for _, a := range list {
			b = appendAddr(b, a)
		}
	}
	b = append(b, byte(len(eps)))
	for _, e := range eps {
		b = append(b, byte(len(e.Service)))
		b = append(b, e.Service...)
		b = appendAddr(b, e.Addr)
		b = append(b, byte(e.State), byte(len(e.Ports)))
		for _, p := range e.Ports {
			b = append(b, byte(len(p.Name)))
			b = append(b, p.Name...)
			b = binary.BigEndian.AppendUint16(b, p.Port)
			b = append(b, byte(p.Protocol))
		}
	}
	if len(m.MACs) > maxMetaMACs {
		return nil, fmt.Errorf("encode meta: MACs: %w: %d, limit %d", ErrInvalid, len(m.MACs), maxMetaMACs)
	}
	if len(m.MACs) > 0 {
		b = append(b, byte(len(m.MACs)))
		for _, mac := range m.MACs {
			b = append(b, mac[:]...)
		}
	}
	if len(b) > MetaMaxBytes {
		return nil, fmt.Errorf("encode meta: %w: %d bytes, limit %d", ErrInvalid, len(b), MetaMaxBytes)
	}
	return b, nil
}

// checkAgentEndpoint checks one endpoint's fields (both directions use it).
func checkAgentEndpoint(e AgentEndpoint) error {
	ns, name, ok := strings.Cut(e.Service, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") || len(e.Service) > maxNameBytes {
		return fmt.Errorf("endpoint service %q: %w: want namespace/name", e.Service, ErrInvalid)
	}
	if !e.Addr.IsValid() || e.Addr.Zone() != "" || e.Addr.Is4In6() {
		return fmt.Errorf("endpoint for %q: address %v: %w", e.Service, e.Addr, ErrInvalid)
	}
	if e.State != EndpointReady && e.State != EndpointNotReady && e.State != EndpointDraining {
		return fmt.Errorf("endpoint for %q: %v: %w", e.Service, e.State, ErrInvalid)
	}
	if len(e.Ports) == 0 || len(e.Ports) > maxAgentPorts {
		return fmt.Errorf("endpoint for %q: %d ports: %w: want 1-%d", e.Service, len(e.Ports), ErrInvalid, maxAgentPorts)
	}
	for i, p := range e.Ports {
		if len(p.Name) > maxPortNameBytes {
			return fmt.Errorf("endpoint for %q: port name %q: %w: longer than %d bytes", e.Service, p.Name, ErrInvalid, maxPortNameBytes)
		}
		if p.Port == 0 {
			return fmt.Errorf("endpoint for %q: port %q: %w: number 0", e.Service, p.Name, ErrInvalid)
		}
		if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
			return fmt.Errorf("endpoint for %q: port %q: %v: %w", e.Service, p.Name, p.Protocol, ErrInvalid)
		}
		for _, q := range e.Ports[:i] {
			if q.Name == p.Name && q.Protocol == p.Protocol {
				return fmt.Errorf("endpoint for %q: port %q/%v: %w: repeated", e.Service, p.Name, p.Protocol, ErrInvalid)
			}
		}
	}
	return nil
}

// DecodeMeta decodes untrusted node metadata (version 1 or 2). Every field
// is bounds-checked; endpoints must be sorted by Service, unique and valid.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MetaMaxBytes {
		return m, fmt.Errorf("decode meta: %w: %d bytes", ErrInvalid, len(b))
	}
	r := reader{b: b}
	v := r.u8()
	if r.err == nil && v != 1 && v != MetaVersion {
		return m, fmt.Errorf("decode meta: %w %d", ErrVersion, v)
	}
	m.Role = Role(r.u8())
	flags := r.u8()
	m.Leaving = flags&metaFlagLeaving != 0
	m.Syncing = flags&metaFlagSyncing != 0
	m.Version = r.str()
	m.ExternalIPs = r.addrList()
	m.ClusterIPs = r.addrList()
	if r.err == nil && v >= 2 {
		m.Endpoints = r.agentEndpoints()
	}
	if r.err == nil && v >= 2 && r.off < len(b) {
		k := int(r.u8())
		if k == 0 || k > maxMetaMACs {
			r.err = fmt.Errorf("MAC count %d: %w", k, ErrInvalid)
		}
		for i := 0; i < k && r.err == nil; i++ {
			var mac [6]byte
			copy(mac[:], r.bytes(6))
			m.MACs = append(m.MACs, mac)
		}
	}
	if r.err == nil && m.Role != RoleAppliance && m.Role != RoleBackend {
		r.err = fmt.Errorf("role %d: %w", m.Role, ErrInvalid)
	}
	if r.err == nil && r.off != len(b) {
		r.err = fmt.Errorf("%d trailing bytes: %w", len(b)-r.off, ErrInvalid)
	}
	if r.err != nil {
		return Meta{}, fmt.Errorf("decode meta: %w", r.err)
	}
	return m, nil
}

func (r *reader) agentEndpoints() []AgentEndpoint {
	n := int(r.u8())
	if r.err == nil && n > maxAgentEndpoints {
		r.err = fmt.Errorf("%d endpoints: %w", n, ErrInvalid)
	}
	var out []AgentEndpoint
	for i := 0; i < n && r.err == nil; i++ {
		var e AgentEndpoint
		e.Service = r.str()
		e.Addr = r.addr()
		e.State = EndpointState(r.u8())
		np := int(r.u8())
		if r.err == nil && (np == 0 || np > maxAgentPorts) {
			r.err = fmt.Errorf("endpoint for %q: %d ports: %w", e.Service, np, ErrInvalid)
		}
		for j := 0; j < np && r.err == nil; j++ {
			var p AgentPort
			p.Name = r.str()
			p.Port = r.u16()
			p.Protocol = PortProtocol(r.u8())
			e.Ports = append(e.Ports, p)
		}
		if r.err != nil {
			break
		}
		if err := checkAgentEndpoint(e); err != nil {
			r.err = err
			break
		}
		if i > 0 && out[i-1].Service >= e.Service {
			r.err = fmt.Errorf("endpoint for %q out of order or repeated: %w", e.Service, ErrInvalid)
			break
		}
		out = append(out, e)
	}
	if r.err != nil {
		return nil
	}
	return out
}
