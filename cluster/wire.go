package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Wire formats, one file per message family: node metadata (wire_meta.go),
// message framing (wire_message.go), allocation sets and the push-pull state
// (wire_allocation.go); this file holds what they share. Everything a node receives over gossip is untrusted: every
// decoder checks lengths before reading and returns an error (counted by the
// caller), never panics. All integers are big-endian.

// WireVersion is the version byte that starts messages and push-pull state
// (node metadata has its own, MetaVersion). Version 2 added the sender's name
// to both; version 1 is refused, so during a rolling upgrade allocations and
// typed messages flow only among nodes of the same version.
const WireVersion = 2

// maxNameBytes bounds every length-prefixed string: node names, service
// keys, version strings.
const maxNameBytes = 255

// Errors returned by the decoders (wrapped with detail).
var (
	ErrShort   = errors.New("truncated")
	ErrVersion = errors.New("unsupported wire version")
	ErrInvalid = errors.New("invalid field")
)

// appendAddr appends a: a length byte (0 for none, 4 or 16) and the bytes;
// an IPv4-mapped IPv6 address is written as IPv4.
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
