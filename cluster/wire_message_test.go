package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Message
		err  error
	}{
		{"user", EncodeMessage(MsgUserMin, "lb-a", []byte("hi")), Message{MsgUserMin, "lb-a", []byte("hi")}, nil},
		{"empty payload", EncodeMessage(MsgAllocations, "b", nil), Message{MsgAllocations, "b", []byte{}}, nil},
		{"short", []byte{WireVersion, 16, 1}, Message{}, ErrShort},
		{"version 1 (no sender)", []byte{1, 16, 1, 'x'}, Message{}, ErrVersion},
		{"type zero", []byte{WireVersion, 0, 1, 'x'}, Message{}, ErrInvalid},
		{"empty sender", []byte{WireVersion, 16, 0, 'x'}, Message{}, ErrInvalid},
		{"sender past the end", []byte{WireVersion, 16, 5, 'l', 'b'}, Message{}, ErrShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage(tc.in)
			if !errors.Is(err, tc.err) || !reflect.DeepEqual(m, tc.want) {
				t.Fatalf("got %+v %v, want %+v %v", m, err, tc.want, tc.err)
			}
		})
	}
}

// FuzzDecodeMessage: the message envelope, decoded from any broadcast or stream. What decodes
// encodes back to the same bytes; an allocation payload round-trips and resolves.
func FuzzDecodeMessage(f *testing.F) {
	for _, tc := range allocSetCases {
		b, _ := EncodeAllocationSet(tc.set)
		f.Add(EncodeMessage(MsgAllocations, tc.set.Origin, b))
	}
	f.Add(EncodeMessage(MsgUserMin, "lb-a", []byte("x")))
	f.Add([]byte{WireVersion, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if again := EncodeMessage(m.Type, m.Sender, m.Payload); !bytes.Equal(again, b) {
			t.Fatalf("message %+v encodes to %x, decoded from %x", m, again, b)
		}
		if m.Type != MsgAllocations {
			return
		}
		s, err := DecodeAllocationSet(m.Payload)
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
