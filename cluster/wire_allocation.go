package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Allocation sets: the MsgAllocations payload, and the push-pull state that
// carries every set a node holds.

// Limits enforced by the allocation decoders.
const (
	maxNodePorts    = 64 // node ports per allocation
	maxAllocsPerSet = 65535

	// maxAllocationSetBytes bounds an encoded allocation set: SetAllocations
	// refuses a larger one and receivers drop it unread.
	maxAllocationSetBytes = 4 << 20
	// maxAllocationMessageBytes bounds a MsgAllocations message.
	maxAllocationMessageBytes = msgHeaderBytes + maxAllocationSetBytes
	// maxStateBytes bounds a received push-pull state: header and one set.
	maxStateBytes = 2 + maxNameBytes + 1 + maxAllocationSetBytes
)

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
	b, err := appendAllocationSet(nil, s)
	if err == nil && len(b) > maxAllocationSetBytes {
		return nil, fmt.Errorf("encode allocations: %d bytes, more than %d: %w", len(b), maxAllocationSetBytes, ErrInvalid)
	}
	return b, err
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

// State is a decoded push-pull state: the sending node and its own
// allocation set. Each node sends only its own set (a set is accepted only
// from its origin), so a state carries one set or none.
type State struct {
	Sender string         // the node that sent the state, as it claims
	Set    *AllocationSet // nil when the sender proposes nothing (a backend agent)
}

// encodeState is the push-pull state: a version byte, the sender's name,
// then a flag byte (0: no set, 1: a set follows) and the sender's set.
func encodeState(sender string, own *AllocationSet) ([]byte, error) {
	b := []byte{WireVersion, byte(len(sender))}
	b = append(b, sender...)
	if own == nil {
		return append(b, 0), nil
	}
	enc, err := EncodeAllocationSet(*own)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	b = append(b, 1)
	return append(b, enc...), nil
}

// DecodeState decodes an untrusted push-pull state.
func DecodeState(b []byte) (State, error) {
	r := reader{b: b}
	if v := r.u8(); r.err == nil && v != WireVersion {
		return State{}, fmt.Errorf("decode state: %w %d", ErrVersion, v)
	}
	var st State
	st.Sender = r.str()
	if r.err == nil && st.Sender == "" {
		r.err = fmt.Errorf("empty sender: %w", ErrInvalid)
	}
	switch has := r.u8(); {
	case r.err != nil:
	case has == 0:
		if r.off != len(b) {
			r.err = fmt.Errorf("%d trailing bytes: %w", len(b)-r.off, ErrInvalid)
		}
	case has == 1:
		s, err := DecodeAllocationSet(b[r.off:])
		if err != nil {
			return State{}, fmt.Errorf("decode state: %w", err)
		}
		st.Set = &s
	default:
		r.err = fmt.Errorf("set flag %d: %w", has, ErrInvalid)
	}
	if r.err != nil {
		return State{}, fmt.Errorf("decode state: %w", r.err)
	}
	return st, nil
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
