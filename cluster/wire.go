package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Wire formats. Everything a node receives over gossip is untrusted: every
// decoder checks lengths before reading and returns an error (counted by the
// caller), never panics. All integers are big-endian.

// WireVersion is the version byte that starts messages and push-pull state
// (node metadata has its own, MetaVersion).
const WireVersion = 1

// MetaMaxBytes is memberlist's limit on node metadata.
const MetaMaxBytes = 512

// Limits enforced by the decoders.
const (
	maxMetaAddrs     = 32  // addresses per list in node metadata
	maxNameBytes     = 255 // node names, service keys, version strings
	maxNodePorts     = 64  // node ports per allocation
	maxAllocsPerSet  = 65535
	maxSetsPerState  = 4096
	msgHeaderBytes   = 2 // version, type
	allocSetMinBytes = 1 + 8 + 2
)

// Errors returned by the decoders (wrapped with detail).
var (
	ErrShort   = errors.New("truncated")
	ErrVersion = errors.New("unsupported wire version")
	ErrInvalid = errors.New("invalid field")
)

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

// MsgType is the type byte of a gossip message.
type MsgType uint8

const (
	// MsgAllocations carries one node's allocation set (internal).
	MsgAllocations MsgType = 1
	// MsgUserMin is the first type free for Node.Handle / Node.Broadcast users
	// (endpoint health, flow-state sync...). Types below it are reserved.
	MsgUserMin MsgType = 16
)

// EncodeMessage frames payload as a message of type t.
func EncodeMessage(t MsgType, payload []byte) []byte {
	b := make([]byte, 0, msgHeaderBytes+len(payload))
	b = append(b, WireVersion, byte(t))
	return append(b, payload...)
}

// DecodeMessage splits an untrusted message into its type and payload (the
// payload aliases b).
func DecodeMessage(b []byte) (MsgType, []byte, error) {
	if len(b) < msgHeaderBytes {
		return 0, nil, fmt.Errorf("decode message: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != WireVersion {
		return 0, nil, fmt.Errorf("decode message: %w %d", ErrVersion, b[0])
	}
	if b[1] == 0 {
		return 0, nil, fmt.Errorf("decode message: type 0: %w", ErrInvalid)
	}
	return MsgType(b[1]), b[msgHeaderBytes:], nil
}

// Allocation is one Service's allocated values as proposed by one node.
type Allocation struct {
	Service          string     // "namespace/name"
	ClusterIP        netip.Addr // invalid when none
	ExternalIP       netip.Addr // invalid when none (pending)
	NodePorts        []uint16   // in port order of the Service
	CreatedUnixMilli int64      // when the proposing node first allocated these values
}

// AllocationSet is the full set of allocations one node proposes.
type AllocationSet struct {
	Origin     string       // proposing node
	Generation uint64       // increases with every change of the set by Origin
	Items      []Allocation // sorted by Service, unique
}

// EncodeAllocationSet encodes s: origin, generation, count, then items.
func EncodeAllocationSet(s AllocationSet) ([]byte, error) {
	return appendAllocationSet(nil, s)
}

func appendAllocationSet(b []byte, s AllocationSet) ([]byte, error) {
	if s.Origin == "" || len(s.Origin) > maxNameBytes {
		return nil, fmt.Errorf("encode allocations: origin %q: %w", s.Origin, ErrInvalid)
	}
	if len(s.Items) > maxAllocsPerSet {
		return nil, fmt.Errorf("encode allocations: %d items: %w", len(s.Items), ErrInvalid)
	}
	b = append(b, byte(len(s.Origin)))
	b = append(b, s.Origin...)
	b = binary.BigEndian.AppendUint64(b, s.Generation)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Items)))
	for _, a := range s.Items {
		if a.Service == "" || len(a.Service) > maxNameBytes || len(a.NodePorts) > maxNodePorts {
			return nil, fmt.Errorf("encode allocations: service %q: %w", a.Service, ErrInvalid)
		}
		b = append(b, byte(len(a.Service)))
		b = append(b, a.Service...)
		b = appendAddr(b, a.ClusterIP)
		b = appendAddr(b, a.ExternalIP)
		b = append(b, byte(len(a.NodePorts)))
		for _, p := range a.NodePorts {
			b = binary.BigEndian.AppendUint16(b, p)
		}
		b = binary.BigEndian.AppendUint64(b, uint64(a.CreatedUnixMilli))
	}
	return b, nil
}

// DecodeAllocationSet decodes an untrusted allocation set; items must be
// sorted by service and unique.
func DecodeAllocationSet(b []byte) (AllocationSet, error) {
	r := reader{b: b}
	s := r.allocationSet()
	if r.err == nil && r.off != len(b) {
		r.err = fmt.Errorf("%d trailing bytes: %w", len(b)-r.off, ErrInvalid)
	}
	if r.err != nil {
		return AllocationSet{}, fmt.Errorf("decode allocations: %w", r.err)
	}
	return s, nil
}

// encodeState is the push-pull state: a version byte, a count, then
// length-prefixed allocation sets.
func encodeState(sets []AllocationSet) ([]byte, error) {
	if len(sets) > maxSetsPerState {
		sets = sets[:maxSetsPerState]
	}
	b := []byte{WireVersion}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sets)))
	for _, s := range sets {
		enc, err := EncodeAllocationSet(s)
		if err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(enc)))
		b = append(b, enc...)
	}
	return b, nil
}

// DecodeState decodes an untrusted push-pull state.
func DecodeState(b []byte) ([]AllocationSet, error) {
	r := reader{b: b}
	if v := r.u8(); r.err == nil && v != WireVersion {
		return nil, fmt.Errorf("decode state: %w %d", ErrVersion, v)
	}
	n := int(r.u16())
	if r.err == nil && (n > maxSetsPerState || n*(4+allocSetMinBytes) > len(b)) {
		r.err = fmt.Errorf("%d sets: %w", n, ErrInvalid)
	}
	var sets []AllocationSet
	for i := 0; i < n && r.err == nil; i++ {
		l := int(r.u32())
		sub := r.bytes(l)
		if r.err != nil {
			break
		}
		s, err := DecodeAllocationSet(sub)
		if err != nil {
			r.err = err
			break
		}
		sets = append(sets, s)
	}
	if r.err == nil && r.off != len(b) {
		r.err = fmt.Errorf("%d trailing bytes: %w", len(b)-r.off, ErrInvalid)
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode state: %w", r.err)
	}
	return sets, nil
}

func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(b, 0)
	case a.Unmap().Is4():
		v := a.Unmap().As4()
		return append(append(b, 4), v[:]...)
	default:
		v := a.As16()
		return append(append(b, 16), v[:]...)
	}
}

// reader reads big-endian fields; the first error sticks and later reads
// return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("need %d bytes at offset %d of %d: %w", n, r.off, len(r.b), ErrShort)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() uint8 {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str() string { return string(r.bytes(int(r.u8()))) }

func (r *reader) addr() netip.Addr {
	n := int(r.u8())
	if r.err != nil {
		return netip.Addr{}
	}
	switch n {
	case 0:
		return netip.Addr{}
	case 4:
		v := r.bytes(4)
		if v == nil {
			return netip.Addr{}
		}
		return netip.AddrFrom4([4]byte(v))
	case 16:
		v := r.bytes(16)
		if v == nil {
			return netip.Addr{}
		}
		a := netip.AddrFrom16([16]byte(v))
		if a.Is4In6() {
			r.err = fmt.Errorf("address %s: IPv4-mapped: %w", a, ErrInvalid)
		}
		return a
	}
	r.err = fmt.Errorf("address length %d: %w", n, ErrInvalid)
	return netip.Addr{}
}

func (r *reader) addrList() []netip.Addr {
	n := int(r.u8())
	if r.err == nil && n > maxMetaAddrs {
		r.err = fmt.Errorf("%d addresses: %w", n, ErrInvalid)
	}
	var out []netip.Addr
	for i := 0; i < n && r.err == nil; i++ {
		a := r.addr()
		if r.err == nil && !a.IsValid() {
			r.err = fmt.Errorf("empty address: %w", ErrInvalid)
		}
		out = append(out, a)
	}
	if r.err != nil {
		return nil
	}
	return out
}

func (r *reader) allocationSet() AllocationSet {
	var s AllocationSet
	s.Origin = r.str()
	if r.err == nil && s.Origin == "" {
		r.err = fmt.Errorf("empty origin: %w", ErrInvalid)
	}
	s.Generation = r.u64()
	n := int(r.u16())
	// Each item takes at least 1+1+1+1+1+8 bytes: refuse counts the buffer cannot hold.
	if r.err == nil && n*13 > len(r.b)-r.off {
		r.err = fmt.Errorf("%d items in %d bytes: %w", n, len(r.b)-r.off, ErrShort)
	}
	if r.err == nil && n > 0 {
		s.Items = make([]Allocation, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var a Allocation
		a.Service = r.str()
		a.ClusterIP = r.addr()
		a.ExternalIP = r.addr()
		np := int(r.u8())
		if r.err == nil && np > maxNodePorts {
			r.err = fmt.Errorf("service %q: %d node ports: %w", a.Service, np, ErrInvalid)
		}
		for j := 0; j < np && r.err == nil; j++ {
			a.NodePorts = append(a.NodePorts, r.u16())
		}
		a.CreatedUnixMilli = int64(r.u64())
		if r.err != nil {
			break
		}
		if a.Service == "" {
			r.err = fmt.Errorf("empty service: %w", ErrInvalid)
			break
		}
		if i > 0 && s.Items[i-1].Service >= a.Service {
			r.err = fmt.Errorf("service %q out of order or repeated: %w", a.Service, ErrInvalid)
			break
		}
		s.Items = append(s.Items, a)
	}
	if r.err != nil {
		return AllocationSet{}
	}
	return s
}
