package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"unicode/utf8"
)

// Report is one appliance's probe verdicts: the endpoints it sees down. Generation only
// increases for one origin (it starts from the clock when the appliance starts), so a newer
// report replaces an older one whatever order they arrive in.
type Report struct {
	// Origin is the name of the appliance that probed.
	Origin string
	// Generation orders the reports of one origin; higher is newer.
	Generation uint64
	// Down are the TCP endpoints Origin's probes consider down, sorted, without duplicates.
	Down []netip.AddrPort
}

// Wire format, version 1 (all integers big-endian):
//
//	[version=1][origin length, 1..255][origin, UTF-8][generation, 8 bytes][count, 4 bytes]
//	count × ([family: 4 or 6][address: 4 or 16 bytes][port, 2 bytes, not 0])
//
// Entries are strictly ascending (netip.AddrPort order), so a report has one encoding; an IPv4
// address is never written in its IPv4-mapped IPv6 form. Nothing may follow the last entry.
const (
	// ReportVersion is the wire version this package writes and reads.
	ReportVersion = 1
	// MaxReportEntries bounds the down endpoints of one report (about 1.2 MB of IPv6 entries).
	MaxReportEntries = 1 << 16
	// MaxOriginBytes bounds the origin name.
	MaxOriginBytes = 255
	// MaxReportBytes is the largest encoded report (longest origin, MaxReportEntries IPv6
	// entries): the size limit for the message type that carries reports (the receiver drops
	// larger ones before decoding, e.g. cluster.Node.SetMessageLimit).
	MaxReportBytes = 2 + MaxOriginBytes + 8 + 4 + MaxReportEntries*maxEntryBytes

	minEntryBytes = 1 + 4 + 2
	maxEntryBytes = 1 + 16 + 2
)

// Errors of DecodeReport; a malformed report wraps one of them.
var (
	ErrReportVersion   = errors.New("unsupported report version")
	ErrReportTruncated = errors.New("report truncated")
	ErrReportMalformed = errors.New("malformed report")
)

// AppendReport appends r's encoding to b. Down is encoded sorted and without duplicates (r is
// not modified).
func AppendReport(b []byte, r Report) ([]byte, error) {
	if r.Origin == "" || len(r.Origin) > MaxOriginBytes || !utf8.ValidString(r.Origin) {
		return b, fmt.Errorf("encode health report: origin %q: must be 1-%d bytes of UTF-8", r.Origin, MaxOriginBytes)
	}
	down := normalise(r.Down)
	if len(down) > MaxReportEntries {
		return b, fmt.Errorf("encode health report %s: %d down endpoints: more than %d", r.Origin, len(down), MaxReportEntries)
	}
	b = append(b, ReportVersion, byte(len(r.Origin)))
	b = append(b, r.Origin...)
	b = binary.BigEndian.AppendUint64(b, r.Generation)
	b = binary.BigEndian.AppendUint32(b, uint32(len(down)))
	for _, ep := range down {
		a := ep.Addr()
		if a.Is4() {
			b = append(b, 4)
			a4 := a.As4()
			b = append(b, a4[:]...)
		} else {
			b = append(b, 6)
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, ep.Port())
	}
	return b, nil
}

// normalise returns eps unmapped, valid, port != 0, sorted and unique (a new slice).
func normalise(eps []netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(eps))
	for _, ep := range eps {
		a := ep.Addr().Unmap().WithZone("")
		if a.IsValid() && ep.Port() != 0 {
			out = append(out, netip.AddrPortFrom(a, ep.Port()))
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}

// DecodeReport decodes a report from untrusted bytes. Every length is checked before use and
// nothing is allocated in proportion to a length field before the bytes behind it are known to
// be there; any deviation from the format is an error, never a panic.
func DecodeReport(b []byte) (Report, error) {
	var r Report
	if len(b) < 2 {
		return r, fmt.Errorf("decode health report: %w: %d bytes", ErrReportTruncated, len(b))
	}
	if b[0] != ReportVersion {
		return r, fmt.Errorf("decode health report: %w %d", ErrReportVersion, b[0])
	}
	n := int(b[1])
	b = b[2:]
	if n == 0 {
		return r, fmt.Errorf("decode health report: %w: empty origin", ErrReportMalformed)
	}
	if len(b) < n+8+4 {
		return r, fmt.Errorf("decode health report: %w: header", ErrReportTruncated)
	}
	if !utf8.Valid(b[:n]) {
		return r, fmt.Errorf("decode health report: %w: origin is not UTF-8", ErrReportMalformed)
	}
	r.Origin = string(b[:n])
	b = b[n:]
	r.Generation = binary.BigEndian.Uint64(b)
	count := binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if count > MaxReportEntries {
		return Report{}, fmt.Errorf("decode health report %s: %w: %d entries, more than %d", r.Origin, ErrReportMalformed, count, MaxReportEntries)
	}
	if uint64(len(b)) < uint64(count)*minEntryBytes {
		return Report{}, fmt.Errorf("decode health report %s: %w: %d entries in %d bytes", r.Origin, ErrReportTruncated, count, len(b))
	}
	if count > 0 {
		r.Down = make([]netip.AddrPort, 0, count)
	}
	for i := range int(count) {
		if len(b) < 1 {
			return Report{}, fmt.Errorf("decode health report %s: %w: entry %d", r.Origin, ErrReportTruncated, i)
		}
		var a netip.Addr
		switch b[0] {
		case 4:
			if len(b) < 1+4+2 {
				return Report{}, fmt.Errorf("decode health report %s: %w: entry %d", r.Origin, ErrReportTruncated, i)
			}
			a = netip.AddrFrom4([4]byte(b[1:5]))
			b = b[5:]
		case 6:
			if len(b) < 1+16+2 {
				return Report{}, fmt.Errorf("decode health report %s: %w: entry %d", r.Origin, ErrReportTruncated, i)
			}
			a = netip.AddrFrom16([16]byte(b[1:17]))
			if a.Is4In6() {
				return Report{}, fmt.Errorf("decode health report %s: %w: entry %d: IPv4-mapped address", r.Origin, ErrReportMalformed, i)
			}
			b = b[17:]
		default:
			return Report{}, fmt.Errorf("decode health report %s: %w: entry %d: address family %d", r.Origin, ErrReportMalformed, i, b[0])
		}
		port := binary.BigEndian.Uint16(b)
		b = b[2:]
		if port == 0 {
			return Report{}, fmt.Errorf("decode health report %s: %w: entry %d: port 0", r.Origin, ErrReportMalformed, i)
		}
		ep := netip.AddrPortFrom(a, port)
		if i > 0 && r.Down[i-1].Compare(ep) >= 0 {
			return Report{}, fmt.Errorf("decode health report %s: %w: entry %d: not in ascending order", r.Origin, ErrReportMalformed, i)
		}
		r.Down = append(r.Down, ep)
	}
	if len(b) != 0 {
		return Report{}, fmt.Errorf("decode health report %s: %w: %d trailing bytes", r.Origin, ErrReportMalformed, len(b))
	}
	return r, nil
}
