package health

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestReportRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		r    Report
		want []netip.AddrPort // Down after the round trip
	}{
		{"nothing down", Report{Origin: "lb-a", Generation: 1}, nil},
		{"ipv4 and ipv6, sorted and deduplicated",
			Report{Origin: "lb-b", Generation: 1 << 62, Down: []netip.AddrPort{
				ep("[2001:db8::1]:443"), ep("198.18.1.22:8080"), ep("198.18.1.21:8080"), ep("198.18.1.21:8080")}},
			[]netip.AddrPort{ep("198.18.1.21:8080"), ep("198.18.1.22:8080"), ep("[2001:db8::1]:443")}},
		{"mapped address unmapped, port 0 dropped",
			Report{Origin: "n", Generation: 7, Down: []netip.AddrPort{ep("[::ffff:198.18.1.9]:80"), ep("198.18.1.8:0")}},
			[]netip.AddrPort{ep("198.18.1.9:80")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := AppendReport(nil, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeReport(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Origin != tc.r.Origin || got.Generation != tc.r.Generation || !slices.Equal(got.Down, tc.want) {
				t.Fatalf("got %+v, want down %v", got, tc.want)
			}
			again, _ := AppendReport(nil, got)
			if !bytes.Equal(again, b) {
				t.Fatal("encoding is not canonical")
			}
		})
	}
}

func TestAppendReportRefuses(t *testing.T) {
	cases := []struct {
		name string
		r    Report
	}{
		{"empty origin", Report{}},
		{"long origin", Report{Origin: string(bytes.Repeat([]byte{'x'}, 256))}},
		{"bad utf-8", Report{Origin: "\xff"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := AppendReport(nil, tc.r); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// validReport is a seed: two entries.
func validReport(t testing.TB) []byte {
	b, err := AppendReport(nil, Report{Origin: "lb-a", Generation: 42,
		Down: []netip.AddrPort{ep("198.18.1.21:8080"), ep("[2001:db8::1]:443")}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeReportMalformed(t *testing.T) {
	v := validReport(t)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(v)) }
	// Offsets: version 0, origin length 1, origin 2..5, generation 6..13, count 14..17,
	// entry 0 at 18 (family, 4 bytes, port), entry 1 at 25.
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrReportTruncated},
		{"one byte", []byte{1}, ErrReportTruncated},
		{"version 2", mut(func(b []byte) []byte { b[0] = 2; return b }), ErrReportVersion},
		{"empty origin", []byte{1, 0}, ErrReportMalformed},
		{"header cut", v[:10], ErrReportTruncated},
		{"origin not utf-8", mut(func(b []byte) []byte { b[2] = 0xff; return b }), ErrReportMalformed},
		{"count too large", mut(func(b []byte) []byte { b[14] = 0xff; return b }), ErrReportMalformed},
		{"count beyond bytes", mut(func(b []byte) []byte { b[17] = 200; return b }), ErrReportTruncated},
		{"bad family", mut(func(b []byte) []byte { b[18] = 5; return b }), ErrReportMalformed},
		{"port 0", mut(func(b []byte) []byte { b[23], b[24] = 0, 0; return b }), ErrReportMalformed},
		{"last entry cut", v[:len(v)-1], ErrReportTruncated},
		{"trailing byte", append(bytes.Clone(v), 0), ErrReportMalformed},
		{"entries out of order", mut(func(b []byte) []byte {
			out := append([]byte{}, b[:18]...)
			out = append(out, b[25:]...)    // the IPv6 entry first
			return append(out, b[18:25]...) // then the IPv4 one
		}), ErrReportMalformed},
		{"mapped ipv6", func() []byte {
			b := append([]byte{}, v[:14]...)
			b = append(b, 0, 0, 0, 1, 6)
			a := netip.MustParseAddr("::ffff:198.18.1.1").As16()
			return append(append(b, a[:]...), 0, 80)
		}(), ErrReportMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeReport(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if r.Origin != "" || r.Down != nil {
				t.Fatalf("a failed decode returned data: %+v", r)
			}
		})
	}
}

// FuzzDecodeReport: any input either decodes to a canonical report that re-encodes to the same
// bytes, or is refused with an error; never a panic.
func FuzzDecodeReport(f *testing.F) {
	f.Add(validReport(f))
	b, _ := AppendReport(nil, Report{Origin: "x", Generation: 0})
	f.Add(b)
	f.Add([]byte{1, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReport(b)
		if err != nil {
			return
		}
		out, err := AppendReport(nil, r)
		if err != nil {
			t.Fatalf("decoded report does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("decode/encode not canonical:\n in %x\nout %x", b, out)
		}
		if len(b) > MaxReportBytes {
			t.Fatalf("%d-byte report decoded, MaxReportBytes %d", len(b), MaxReportBytes)
		}
		v := NewView()
		// Received reports go through Accept: from their origin only, generation bounded.
		now := time.Unix(1_800_000_000, 0)
		err = v.Accept(r.Origin, true, r, now)
		future := r.Generation > uint64(now.UnixNano())+uint64(MaxGenerationLead)
		if future != errors.Is(err, ErrReportFuture) || !future && err != nil {
			t.Fatalf("Accept(generation %d) = %v", r.Generation, err)
		}
		if err := v.Accept("other", true, r, now); r.Origin != "other" && !errors.Is(err, ErrReportForeign) {
			t.Fatalf("report for %q accepted from another sender: %v", r.Origin, err)
		}
		v.Merge(r)
		for ep := range v.Resolve([]string{r.Origin}) {
			if !slices.Contains(r.Down, ep) {
				t.Fatalf("resolved %v not in the report", ep)
			}
		}
	})
}

// TestMaxReportBytes: the largest report AppendReport writes is exactly MaxReportBytes.
func TestMaxReportBytes(t *testing.T) {
	down := make([]netip.AddrPort, MaxReportEntries)
	for i := range down {
		down[i] = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 14: byte(i >> 8), 15: byte(i)}), 80)
	}
	b, err := AppendReport(nil, Report{Origin: string(bytes.Repeat([]byte{'a'}, MaxOriginBytes)), Down: down})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxReportBytes {
		t.Fatalf("largest report %d bytes, MaxReportBytes %d", len(b), MaxReportBytes)
	}
}
