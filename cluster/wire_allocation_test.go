package cluster

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

var allocSetCases = []struct {
	name string
	set  AllocationSet
}{
	{"full", AllocationSet{Origin: "lb-a", Generation: 42, Items: []Allocation{
		{Service: "default/db", ClusterIP: netip.MustParseAddr("198.19.0.20")},
		{Service: "default/web", ClusterIP: netip.MustParseAddr("198.19.0.10"), ExternalIP: netip.MustParseAddr("198.19.1.1"),
			NodePorts: []uint16{30080, 30443}, CreatedUnixMilli: 1700000000123},
		{Service: "v6/x", ClusterIP: netip.MustParseAddr("2001:db8::10"), CreatedUnixMilli: -1},
	}}},
	{"empty", AllocationSet{Origin: "lb-b", Generation: 1}},
}

func TestAllocationSetRoundTrip(t *testing.T) {
	for _, tc := range allocSetCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeAllocationSet(tc.set)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeAllocationSet(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.set) {
				t.Fatalf("decoded %+v, want %+v", got, tc.set)
			}
			for cut := range len(b) {
				if _, err := DecodeAllocationSet(b[:cut]); err == nil {
					t.Fatalf("truncated to %d of %d bytes decoded without error", cut, len(b))
				}
			}
		})
	}
	for _, tc := range allocSetCases {
		for _, want := range []State{{Sender: tc.set.Origin, Set: &tc.set}, {Sender: tc.set.Origin}} {
			st, err := encodeState(want.Sender, want.Set)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeState(st)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("state decoded %+v (%v), want %+v", got, err, want)
			}
			for cut := range len(st) {
				if _, err := DecodeState(st[:cut]); err == nil {
					t.Fatalf("state truncated to %d of %d bytes decoded without error", cut, len(st))
				}
			}
			if _, err := DecodeState(append(st, 0)); err == nil {
				t.Fatal("state with a trailing byte decoded without error")
			}
		}
	}
}

func TestDecodeAllocationSetRejects(t *testing.T) {
	enc := func(s AllocationSet) []byte {
		b, err := EncodeAllocationSet(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unsorted := enc(AllocationSet{Origin: "a", Generation: 1, Items: []Allocation{{Service: "x/b"}}})
	second := enc(AllocationSet{Origin: "a", Generation: 1, Items: []Allocation{{Service: "x/a"}}})
	// Splice a second item, out of order, after the first.
	spliced := append([]byte{}, unsorted...)
	spliced[1+1+8+1] = 2 // count low byte
	spliced = append(spliced, second[1+1+8+2:]...)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"empty origin", []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, ErrInvalid},
		{"huge count", []byte{1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, ErrShort},
		{"out of order", spliced, ErrInvalid},
		{"trailing", append(enc(allocSetCases[1].set), 0), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeAllocationSet(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecodeState: the push-pull state, decoded straight from another member's stream. A
// state that decodes encodes back to the same bytes, and its set merges and resolves.
func FuzzDecodeState(f *testing.F) {
	for _, tc := range allocSetCases {
		b, err := encodeState(tc.set.Origin, &tc.set)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{WireVersion, 4, 'l', 'b', '-', 'a', 0})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		again, err := encodeState(st.Sender, st.Set)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("state %+v encodes to %x (%v), decoded from %x", st, again, err, b)
		}
		if st.Set != nil {
			store := NewAllocationStore()
			store.Merge(*st.Set)
			store.Resolve()
		}
	})
}

// FuzzDecodeAllocationSet: the MsgAllocations payload, decoded straight from a broadcast. A set
// that decodes encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeAllocationSet(f *testing.F) {
	for _, tc := range allocSetCases {
		b, err := EncodeAllocationSet(tc.set)
		if err != nil {
			f.Fatalf("%s: %v", tc.name, err)
		}
		f.Add(b)
	}
	f.Add([]byte{3, 'l', 'b'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeAllocationSet(b)
		if err != nil {
			return
		}
		again, err := EncodeAllocationSet(s)
		if err != nil {
			t.Fatalf("decoded set %+v does not encode: %v", s, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("set %+v encodes to %x, decoded from %x", s, again, b)
		}
	})
}
