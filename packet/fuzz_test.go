package packet

import (
	"encoding/binary"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases(f) {
		f.Add(tc.frame)
	}
	// A Headers full of another frame's values, to prove Parse resets what it must.
	var dirty Headers
	if r := Parse(icmpErr6Frame(f, frameOpts{vlan: true}, 1, 4, 0, innerUDP6(f)), &dirty); r != OK {
		f.Fatal(r)
	}
	dirty.ARP = ARP{Op: 9, SenderIP: [4]byte{1, 2, 3, 4}}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var h Headers
		r := Parse(frame, &h)
		if r >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
		reused := dirty
		if r2 := Parse(frame, &reused); r2 != r || (r == OK && normalized(reused) != normalized(h)) {
			t.Fatalf("Parse into a used Headers differs: %v %+v, fresh %v %+v", r2, reused, r, h)
		}
		if r != OK {
			return
		}
		checkOffsets(t, frame, &h)
		if h.Key.Family == FamilyIPv4 && ([12]byte(h.Key.SrcAddr[4:]) != [12]byte{} || [12]byte(h.Key.DstAddr[4:]) != [12]byte{}) {
			t.Fatalf("IPv4 key with bytes beyond 4: %+v", h.Key)
		}
		VerifyChecksums(frame, &h) // must not panic
	})
}

// FuzzRewrite parses a frame, applies one rewrite or builder chosen by op, and checks: no panic,
// a checksum valid before stays valid after, the result still parses to the same shape, and
// builders produce frames that parse with valid checksums.
func FuzzRewrite(f *testing.F) {
	for i, tc := range parseCases(f) {
		if tc.want == OK {
			f.Add(tc.frame, uint8(i), uint32(0xc6120102), uint16(33000), uint32(0xc6120114), uint16(8080))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, op uint8, src uint32, sp uint16, dst uint32, dp uint16) {
		var h Headers
		if Parse(frame, &h) != OK {
			return
		}
		var s4, d4 [4]byte
		binary.BigEndian.PutUint32(s4[:], src)
		binary.BigEndian.PutUint32(d4[:], dst)
		var s6, d6 [16]byte
		copy(s6[:], ip6SNAT.To16())
		copy(d6[:], ip6Back.To16())
		binary.BigEndian.PutUint32(s6[12:], src)
		binary.BigEndian.PutUint32(d6[12:], dst)
		before := refCheck(frame, &h)
		shape := h
		buf := make([]byte, 2048)
		var n int
		var err error
		built := false
		switch op % 12 {
		case 0:
			if h.Key.Family == FamilyIPv4 {
				NAT4(frame, &h, s4, sp, d4, dp)
			} else {
				NAT6(frame, &h, s6, sp, d6, dp)
			}
		case 1:
			SetSrc4(frame, &h, s4)
			SetSrc6(frame, &h, s6)
		case 2:
			SetDst4(frame, &h, d4)
			SetDst6(frame, &h, d6)
		case 3:
			SetPorts(frame, &h, sp, dp)
		case 4:
			DecTTL4(frame, &h)
			DecHopLimit6(frame, &h)
		case 5:
			SetInner4(frame, &h, s4, sp, d4, dp)
			SetInner6(frame, &h, s6, sp, d6, dp)
		case 6:
			_ = EchoReplyInPlace(frame, &h)
		case 7:
			n, err = BuildTCPReset(buf, frame, &h)
			built = true
		case 8:
			n, err = BuildPortUnreachable4(buf, frame, &h)
			built = true
		case 9:
			n, err = BuildPortUnreachable6(buf, frame, &h)
			built = true
		case 10:
			n, err = BuildEchoReply(buf, frame, &h)
			built = true
		case 11:
			if h.EtherType == EtherTypeARP {
				n, err = BuildARPReply(buf, &h.ARP, [6]byte{2})
				built = true
			}
		}
		if built {
			if err != nil {
				return
			}
			var bh Headers
			if r := Parse(buf[:n], &bh); r != OK {
				t.Fatalf("built frame does not parse: %v", r)
			}
			for i, s := range refCheck(buf[:n], &bh) {
				// A quoted packet carries whatever checksum the original had, and an echo reply
				// is the request updated incrementally: valid only if the request was.
				if s == csBad && i < 2 && !(op%12 == 10 && before[i] != csGood) {
					t.Fatalf("built frame checksum %d bad (before: %v)", i, before)
				}
			}
			return
		}
		var after Headers
		if r := Parse(frame, &after); r != OK {
			t.Fatalf("rewritten frame no longer parses: %v", r)
		}
		if after.L3Off != shape.L3Off || after.L4Off != shape.L4Off || after.L3End != shape.L3End ||
			after.Inner.Valid != shape.Inner.Valid || after.Inner.L4Off != shape.Inner.L4Off {
			t.Fatalf("rewrite changed the frame's shape")
		}
		st := refCheck(frame, &after)
		for i := range before {
			if before[i] == csGood && st[i] != csGood {
				t.Fatalf("checksum %d (ip, l4, inner ip, inner l4) valid before op %d, invalid after", i, op%12)
			}
		}
	})
}

// normalized clears the parts of h that are documented as meaningless for this frame.
func normalized(h Headers) Headers {
	if !h.Inner.Valid {
		h.Inner = Inner{}
	}
	if h.EtherType != EtherTypeARP {
		h.ARP = ARP{}
	}
	return h
}
