package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xdpsvc/lb/packet"
)

// Export record, version 1 (all integers big-endian), self-delimiting by family:
//
//	0  version (1)
//	1  family (4 or 6)
//	2  protocol
//	3  state
//	4  flags
//	5  original key: src addr, dst addr (4 or 16 bytes each), src port, dst port
//	.. reply key: same layout
//	.. ServiceID (4), BackendID (4), ingress ifindex (2), egress ifindex (2)
//
// Records carry no time: Import treats a flow as last seen at the time of import (a synced flow
// is live at the sender, so it gets at most one more idle timeout on the receiver).
const (
	exportVersion = 1
	recordHeader  = 5
	recordTail    = 12
	// RecordSizeIPv4 and RecordSizeIPv6 are the sizes of one export record.
	RecordSizeIPv4 = recordHeader + 2*(2*4+4) + recordTail
	RecordSizeIPv6 = recordHeader + 2*(2*16+4) + recordTail
)

// Import errors.
var (
	ErrTruncated   = errors.New("truncated record")
	ErrVersion     = errors.New("unsupported record version")
	ErrFamily      = errors.New("bad address family")
	ErrProtocol    = errors.New("protocol not tracked")
	ErrState       = errors.New("state not valid for protocol")
	ErrFlags       = errors.New("unknown flag bits")
	ErrPorts       = errors.New("bad ports")
	ErrSameKeys    = errors.New("original and reply keys are equal")
	ErrUnspecified = errors.New("unspecified address")
)

// AppendExport appends the export record of the handle's flow to buf. A handle whose flow has
// been deleted appends nothing.
func (t *Table) AppendExport(buf []byte, h Handle) []byte {
	switch h.fam {
	case packet.FamilyIPv4:
		if t.v4 != nil && int(h.idx) < len(t.v4.entries) {
			return appendRecord(buf, &t.v4.entries[h.idx], h.gen, packet.FamilyIPv4, unpackKey4)
		}
	case packet.FamilyIPv6:
		if t.v6 != nil && int(h.idx) < len(t.v6.entries) {
			return appendRecord(buf, &t.v6.entries[h.idx], h.gen, packet.FamilyIPv6, unpackKey6)
		}
	}
	return buf
}

func appendRecord[K keyWords](buf []byte, e *entry[K], gen uint16, fam packet.Family, unpack func(*K, *packet.FlowKey)) []byte {
	ko, kr := loadKey(&e.orig), loadKey(&e.reply)
	ids, ifx := e.ids.Load(), e.ifidx.Load()
	m := e.meta.Load()
	if metaGen(m) != gen || !metaLive(m) {
		return buf
	}
	var o, r packet.FlowKey
	unpack(&ko, &o)
	unpack(&kr, &r)
	alen := 4
	if fam == packet.FamilyIPv6 {
		alen = 16
	}
	buf = append(buf, exportVersion, byte(fam), o.Proto, byte(metaState(m)), metaFlags(m))
	for _, k := range [2]*packet.FlowKey{&o, &r} {
		buf = append(buf, k.SrcAddr[:alen]...)
		buf = append(buf, k.DstAddr[:alen]...)
		buf = binary.BigEndian.AppendUint16(buf, k.SrcPort)
		buf = binary.BigEndian.AppendUint16(buf, k.DstPort)
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(ids>>32))
	buf = binary.BigEndian.AppendUint32(buf, uint32(ids))
	buf = binary.BigEndian.AppendUint16(buf, uint16(ifx>>16))
	return binary.BigEndian.AppendUint16(buf, uint16(ifx))
}

// ExportCursor remembers where AppendExportChanged stopped; the zero value starts at the beginning.
type ExportCursor struct {
	fam  uint8 // 0: IPv4, 1: IPv6, 2: done
	next uint32
}

// Done reports whether the cursor has walked the whole table.
func (c *ExportCursor) Done() bool { return c.fam >= 2 }

// AppendExportChanged appends records of flows inserted or changed state at or after since,
// walking the table from cur, and stops after maxRecords records or at the end (cur.Done). It is
// for the sync goroutine, not for packet workers.
func (t *Table) AppendExportChanged(buf []byte, since int64, cur *ExportCursor, maxRecords int) []byte {
	return t.appendExportWalk(buf, true, toTick(since), cur, maxRecords)
}

// AppendExportAll appends records of every live flow, walking the table from cur, and stops
// after maxRecords records or at the end (cur.Done): the full state for a peer that just joined.
// It is for the sync goroutine, not for packet workers.
func (t *Table) AppendExportAll(buf []byte, cur *ExportCursor, maxRecords int) []byte {
	return t.appendExportWalk(buf, false, 0, cur, maxRecords)
}

func (t *Table) appendExportWalk(buf []byte, onlyChanged bool, st uint32, cur *ExportCursor, maxRecords int) []byte {
	for n := 0; cur.fam < 2 && n < maxRecords; {
		var size int
		if cur.fam == 0 && t.v4 != nil {
			size = len(t.v4.entries)
		} else if cur.fam == 1 && t.v6 != nil {
			size = len(t.v6.entries)
		}
		if int(cur.next) >= size {
			cur.fam++
			cur.next = 0
			continue
		}
		i := cur.next
		cur.next++
		var m uint64
		var changed uint32
		fam := packet.FamilyIPv4
		if cur.fam == 0 {
			m, changed = t.v4.entries[i].meta.Load(), t.v4.entries[i].changed.Load()
		} else {
			m, changed = t.v6.entries[i].meta.Load(), t.v6.entries[i].changed.Load()
			fam = packet.FamilyIPv6
		}
		if !metaLive(m) || onlyChanged && int32(changed-st) < 0 {
			continue
		}
		l := len(buf)
		buf = t.AppendExport(buf, Handle{idx: i, gen: metaGen(m), fam: fam})
		if len(buf) > l {
			n++
		}
	}
	return buf
}

// Import inserts the flows of a sequence of export records (untrusted input, e.g. from a peer).
// Every field is validated; the first malformed record stops the import with an error that
// names its offset. Well-formed records that cannot be inserted (flow present, reply key in use,
// table full, family disabled) are skipped and counted in Stats.ImportSkipped. It returns the
// number of flows inserted.
func (t *Table) Import(data []byte, now int64) (n int, err error) {
	for off := 0; off < len(data); {
		o, r, ne, size, err := parseRecord(data[off:])
		if err != nil {
			return n, fmt.Errorf("import record at offset %d: %w", off, err)
		}
		off += size
		ne.tick = toTick(now)
		ne.attempts = 1
		ne.evict = t.evictScan
		if _, res := t.insertKeys(&o, &r, &ne); res == Inserted {
			n++
			t.stats.imported.Add(1)
			t.stats.inserted.Add(1)
		} else {
			t.stats.importSkipped.Add(1)
		}
	}
	return n, nil
}

func parseRecord(b []byte) (o, r packet.FlowKey, ne newEntry, size int, err error) {
	if len(b) < recordHeader {
		return o, r, ne, 0, ErrTruncated
	}
	if b[0] != exportVersion {
		return o, r, ne, 0, fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	fam, proto, st, fl := packet.Family(b[1]), b[2], State(b[3]), b[4]
	alen := 0
	switch fam {
	case packet.FamilyIPv4:
		alen, size = 4, RecordSizeIPv4
	case packet.FamilyIPv6:
		alen, size = 16, RecordSizeIPv6
	default:
		return o, r, ne, 0, fmt.Errorf("%w %d", ErrFamily, b[1])
	}
	if len(b) < size {
		return o, r, ne, 0, ErrTruncated
	}
	icmp := false
	switch {
	case proto == protoTCP || proto == protoUDP:
	case proto == protoICMP && fam == packet.FamilyIPv4, proto == protoICMPv6 && fam == packet.FamilyIPv6:
		icmp = true
	default:
		return o, r, ne, 0, fmt.Errorf("%w %d for family %d", ErrProtocol, proto, fam)
	}
	if !validStateFor(proto, st) {
		return o, r, ne, 0, fmt.Errorf("%w: %d for protocol %d", ErrState, st, proto)
	}
	if fl&^allFlags != 0 {
		return o, r, ne, 0, fmt.Errorf("%w %#x", ErrFlags, fl&^allFlags)
	}
	p := b[recordHeader:]
	for _, k := range [2]*packet.FlowKey{&o, &r} {
		k.Family, k.Proto = fam, proto
		copy(k.SrcAddr[:], p[:alen])
		copy(k.DstAddr[:], p[alen:2*alen])
		k.SrcPort = binary.BigEndian.Uint16(p[2*alen:])
		k.DstPort = binary.BigEndian.Uint16(p[2*alen+2:])
		p = p[2*alen+4:]
		if k.SrcAddr == ([16]byte{}) || k.DstAddr == ([16]byte{}) {
			return o, r, ne, 0, ErrUnspecified
		}
		if icmp && k.SrcPort != k.DstPort {
			return o, r, ne, 0, fmt.Errorf("%w: ICMP echo identifiers %d and %d differ", ErrPorts, k.SrcPort, k.DstPort)
		}
		if !icmp && (k.SrcPort == 0 || k.DstPort == 0) {
			return o, r, ne, 0, fmt.Errorf("%w: port 0", ErrPorts)
		}
	}
	if o == r {
		return o, r, ne, 0, ErrSameKeys
	}
	ne.state, ne.flags = st, fl
	ne.ids = uint64(binary.BigEndian.Uint32(p))<<32 | uint64(binary.BigEndian.Uint32(p[4:]))
	ne.ifidx = uint32(binary.BigEndian.Uint16(p[8:]))<<16 | uint32(binary.BigEndian.Uint16(p[10:]))
	return o, r, ne, size, nil
}
