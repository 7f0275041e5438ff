package conntrack

import (
	"errors"
	"testing"

	"github.com/xdpsvc/lb/packet"
)

func exportFixture(t testing.TB) (*Table, []byte) {
	tb := newTable(t, testConfig(64))
	flows := []NewFlow{
		{Orig: key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP), BackendAddr: addr("198.18.1.10"),
			BackendPort: 8080, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN, ServiceID: 5, BackendID: 6,
			IngressIfindex: 2, EgressIfindex: 3},
		{Orig: key("198.18.0.101", 5353, "198.19.0.10", 53, packet.ProtoUDP), BackendAddr: addr("198.18.1.11"),
			BackendPort: 53, Flags: FlagNoSNAT},
		{Orig: key("198.18.0.102", 9, "198.19.1.1", 9, packet.ProtoICMP), BackendAddr: addr("198.18.1.10"),
			SNATAddr: addr("198.18.1.2")},
		{Orig: key("2001:db8::100", 41000, "2001:db8:1::1", 443, packet.ProtoTCP), BackendAddr: addr("2001:db8:2::10"),
			BackendPort: 8443, SNATAddr: addr("2001:db8:2::2"), TCPFlags: TCPFlagSYN},
	}
	var buf []byte
	for i := range flows {
		h := establish(t, tb, &flows[i], sec)
		buf = tb.AppendExport(buf, h)
	}
	return tb, buf
}

func TestExportImportRoundTrip(t *testing.T) {
	src, buf := exportFixture(t)
	if want := 3*RecordSizeIPv4 + RecordSizeIPv6; len(buf) != want {
		t.Fatalf("export is %d bytes, want %d", len(buf), want)
	}
	dst := newTable(t, testConfig(64))
	n, err := dst.Import(buf, 50*sec)
	if err != nil || n != 4 {
		t.Fatalf("Import = %d, %v", n, err)
	}
	src.Range(sec, func(f *Flow) bool {
		h, ok := dst.Lookup(&f.Reply, 50*sec)
		if !ok {
			t.Fatalf("imported flow %+v not found by reply key", f.Orig)
		}
		g, _ := dst.Flow(h, 50*sec)
		if g.Orig != f.Orig || g.Reply != f.Reply || g.State != f.State || g.Flags != f.Flags ||
			g.Assured != f.Assured || g.ServiceID != f.ServiceID || g.BackendID != f.BackendID ||
			g.IngressIfindex != f.IngressIfindex || g.EgressIfindex != f.EgressIfindex {
			t.Fatalf("imported %+v, exported %+v", g, f)
		}
		return true
	})
	// Importing again skips every record (already present) without error.
	if n, err := dst.Import(buf, 50*sec); err != nil || n != 0 || dst.Stats().ImportSkipped != 4 {
		t.Fatalf("re-import = %d, %v, %+v", n, err, dst.Stats())
	}
	// Changed-flow batches: everything changed since 0, nothing since the future.
	var cur ExportCursor
	var all []byte
	for !cur.Done() {
		all = src.AppendExportChanged(all, 0, &cur, 2)
	}
	if len(all) != len(buf) {
		t.Fatalf("AppendExportChanged exported %d bytes, want %d", len(all), len(buf))
	}
	cur = ExportCursor{}
	if b := src.AppendExportChanged(nil, 1000*sec, &cur, 100); len(b) != 0 || !cur.Done() {
		t.Fatalf("nothing changed since 1000s, got %d bytes", len(b))
	}
	// The full export (for a peer that just joined) has every live flow, whenever it changed.
	cur = ExportCursor{}
	all = all[:0]
	for !cur.Done() {
		all = src.AppendExportAll(all, &cur, 3)
	}
	if len(all) != len(buf) {
		t.Fatalf("AppendExportAll exported %d bytes, want %d", len(all), len(buf))
	}
}

func TestImportRejects(t *testing.T) {
	_, good := exportFixture(t)
	rec := good[:RecordSizeIPv4]
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), rec...)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"short header", rec[:3], ErrTruncated},
		{"short body", rec[:RecordSizeIPv4-1], ErrTruncated},
		{"version", mod(func(b []byte) { b[0] = 2 }), ErrVersion},
		{"family", mod(func(b []byte) { b[1] = 5 }), ErrFamily},
		{"protocol", mod(func(b []byte) { b[2] = 47 }), ErrProtocol},
		{"icmpv6 in v4", mod(func(b []byte) { b[2] = packet.ProtoICMPv6 }), ErrProtocol},
		{"state none", mod(func(b []byte) { b[3] = 0 }), ErrState},
		{"udp state for tcp", mod(func(b []byte) { b[3] = byte(UDPStream) }), ErrState},
		{"state out of range", mod(func(b []byte) { b[3] = 200 }), ErrState},
		{"flags", mod(func(b []byte) { b[4] = 0x80 }), ErrFlags},
		{"zero address", mod(func(b []byte) { copy(b[5:9], []byte{0, 0, 0, 0}) }), ErrUnspecified},
		{"zero port", mod(func(b []byte) { b[13], b[14] = 0, 0 }), ErrPorts},
		{"same keys", mod(func(b []byte) { copy(b[17:29], b[5:17]) }), ErrSameKeys},
		{"good then bad", append(append([]byte(nil), rec...), 9), ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newTable(t, testConfig(16))
			_, err := dst.Import(tc.data, sec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Import error %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzImport feeds arbitrary bytes to Import: it must never panic, never insert more flows than
// whole records, and every flow it inserts must be found by both keys and export back to the
// same record.
func FuzzImport(f *testing.F) {
	_, good := exportFixture(f)
	f.Add(good)
	f.Add(good[:RecordSizeIPv4])
	f.Add(good[3*RecordSizeIPv4:])
	f.Add([]byte{1, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tb := newTable(t, testConfig(8))
		n, err := tb.Import(data, sec)
		if n > len(data)/RecordSizeIPv4 {
			t.Fatalf("imported %d flows from %d bytes", n, len(data))
		}
		if err == nil && n > 0 && tb.Len() != n {
			t.Fatalf("Len %d after importing %d", tb.Len(), n)
		}
		tb.Range(sec, func(fl *Flow) bool {
			ho, ok1 := tb.Lookup(&fl.Orig, sec)
			hr, ok2 := tb.Lookup(&fl.Reply, sec)
			if !ok1 || !ok2 || ho.Dir() != DirOriginal || hr.Dir() != DirReply {
				t.Fatalf("imported flow not found by both keys: %+v", fl)
			}
			rec := tb.AppendExport(nil, fl.Handle)
			tb2 := newTable(t, testConfig(8))
			if m, err := tb2.Import(rec, sec); m != 1 || err != nil {
				t.Fatalf("re-import of own export = %d, %v", m, err)
			}
			return true
		})
	})
}
