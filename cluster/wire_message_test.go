package cluster

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    MsgType
		payload string
		err     error
	}{
		{"user", EncodeMessage(MsgUserMin, []byte("hi")), MsgUserMin, "hi", nil},
		{"empty payload", EncodeMessage(MsgAllocations, nil), MsgAllocations, "", nil},
		{"short", []byte{1}, 0, "", ErrShort},
		{"version", []byte{2, 16}, 0, "", ErrVersion},
		{"type zero", []byte{1, 0}, 0, "", ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, p, err := DecodeMessage(tc.in)
			if !errors.Is(err, tc.err) || typ != tc.want || string(p) != tc.payload {
				t.Fatalf("got %d %q %v, want %d %q %v", typ, p, err, tc.want, tc.payload, tc.err)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, tc := range allocSetCases {
		b, _ := EncodeAllocationSet(tc.set)
		f.Add(EncodeMessage(MsgAllocations, b))
	}
	f.Add(EncodeMessage(MsgUserMin, []byte("x")))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, p, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if typ != MsgAllocations {
			return
		}
		s, err := DecodeAllocationSet(p)
		if err != nil {
			return
		}
		re, err := EncodeAllocationSet(s)
		if err != nil {
			t.Fatalf("decoded set does not encode: %v", err)
		}
		s2, err := DecodeAllocationSet(re)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip: %+v -> %+v (%v)", s, s2, err)
		}
		// Whatever decodes must resolve without trouble.
		st := NewAllocationStore()
		st.Merge(s)
		st.Resolve()
	})
}
