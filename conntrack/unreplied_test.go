package conntrack

import (
	"testing"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// answer applies one reply-direction packet (the backend answering) to the flow of h.
func answer(t *testing.T, tb *Table, h Handle, tcpFlags uint8, now int64) {
	t.Helper()
	fl, ok := tb.Flow(h, now)
	if !ok {
		t.Fatal("flow gone before its reply")
	}
	rh, ok := tb.Lookup(&fl.Reply, now)
	if !ok || rh.Dir() != DirReply {
		t.Fatalf("reply key %v not found", fl.Reply)
	}
	if !tb.Update(rh, tcpFlags, now) {
		t.Fatal("reply update failed")
	}
}

// TestUnrepliedTCPTimeout: a loose pickup (from a bare ACK) whose backend never answered lives
// TCPUnrepliedTimeout, not the established timeout; once answered, the state's timeout applies
// again. A SYN keeps the SYN_SENT timeout. Without the cap a bare ACK held its SNAT port for the established
// timeout (5 days).
func TestUnrepliedTCPTimeout(t *testing.T) {
	c := testConfig(64)
	tb := newTable(t, c)
	limit := int64(c.TCPUnrepliedTimeout)
	for _, tc := range []struct {
		name     string
		flags    uint8
		answered bool
		alive    bool // still there after the unreplied timeout has passed
	}{
		{"loose pickup, never answered", TCPFlagACK, false, false},
		{"SYN, never answered (keeps the SYN_SENT timeout)", TCPFlagSYN, false, true},
		{"loose pickup, answered", TCPFlagACK, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFlow{Orig: key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP),
				BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.1"), TCPFlags: tc.flags}
			f.Orig.SrcPort += uint16(len(tc.name))
			h, res := tb.Insert(&f, sec)
			if res != Inserted {
				t.Fatalf("Insert = %v", res)
			}
			if tc.answered {
				answer(t, tb, h, TCPFlagACK, sec)
			}
			fl, _ := tb.Flow(h, sec)
			if tc.flags == TCPFlagACK && !tc.answered && fl.ExpiresIn > c.TCPUnrepliedTimeout+time.Second/10 {
				t.Errorf("ExpiresIn = %v, want at most %v", fl.ExpiresIn, c.TCPUnrepliedTimeout)
			}
			if _, ok := tb.Lookup(&f.Orig, sec+limit/2); !ok {
				t.Fatal("flow gone within the unreplied timeout")
			}
			_, ok := tb.Lookup(&f.Orig, sec+limit/2+limit+sec)
			if ok != tc.alive {
				t.Fatalf("after the unreplied timeout: found = %v, want %v", ok, tc.alive)
			}
		})
	}
}

// TestFullSNATRangeReclaimsUnreplied: bare ACKs from one client (loose pickups that the backend
// never answers) take every SNAT port of a backend; a legitimate client's SYN must still get a
// port, taken from one of them, once they have been idle for the reclaim grace (a second).
// Flows that did get a reply are never reclaimed. Without the
// reclaim, the SYN was refused (InsertNoPort) until the pickups expired.
func TestFullSNATRangeReclaimsUnreplied(t *testing.T) {
	const ports = 4
	base := NewFlow{Orig: key("198.18.0.66", 1000, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.1"),
		SNATPortMin: 2000, SNATPortMax: 2000 + ports - 1}
	legit := base
	legit.Orig = key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP)
	legit.TCPFlags = TCPFlagSYN

	fill := func(t *testing.T, tb *Table, answered bool) []Handle {
		var hs []Handle
		for i := 0; len(hs) < ports && i < 64; i++ {
			f := base
			f.Orig.SrcPort = uint16(1000 + i)
			f.TCPFlags = TCPFlagACK
			h, res := tb.Insert(&f, sec)
			if res == InsertNoPort {
				continue // the candidate ports of this tuple happened to be taken
			}
			if res != Inserted {
				t.Fatalf("pickup %d: %v", i, res)
			}
			if answered {
				answer(t, tb, h, TCPFlagACK, sec)
			}
			hs = append(hs, h)
		}
		if len(hs) != ports {
			t.Fatalf("filled %d of %d ports", len(hs), ports)
		}
		return hs
	}

	t.Run("unanswered pickups give way", func(t *testing.T) {
		tb := newTable(t, testConfig(64))
		fill(t, tb, false)
		if _, res := tb.Insert(&legit, sec+sec/2); res != InsertNoPort {
			t.Fatalf("SYN within the reclaim grace: %v, want %v", res, InsertNoPort)
		}
		h, res := tb.Insert(&legit, 2*sec+sec/10)
		if res != Inserted {
			t.Fatalf("legitimate SYN with the range full of unanswered pickups: %v", res)
		}
		if got := tb.Stats().SNATReclaimed; got != 1 {
			t.Fatalf("SNATReclaimed = %d, want 1", got)
		}
		if tb.Len() != ports {
			t.Fatalf("Len = %d, want %d (one pickup gave up its port)", tb.Len(), ports)
		}
		fl, _ := tb.Flow(h, 2*sec+sec/10)
		if fl.Reply.DstPort < 2000 || fl.Reply.DstPort >= 2000+ports {
			t.Fatalf("reclaimed port %d outside the range", fl.Reply.DstPort)
		}
	})
	t.Run("answered flows keep their ports", func(t *testing.T) {
		tb := newTable(t, testConfig(64))
		fill(t, tb, true)
		if _, res := tb.Insert(&legit, 3*sec); res != InsertNoPort {
			t.Fatalf("SYN with the range full of answered flows: %v, want %v", res, InsertNoPort)
		}
		if got := tb.Stats().SNATReclaimed; got != 0 {
			t.Fatalf("SNATReclaimed = %d, want 0", got)
		}
	})
}

// TestBareACKFloodAtDefaultRange is the attack at the default SNAT range: one client sends a
// bare ACK from every source port it has, more than the range holds. Every later SYN of a
// legitimate client still gets a port at once, and an hour later the pickups are gone.
func TestBareACKFloodAtDefaultRange(t *testing.T) {
	c := testConfig(1 << 14)
	tb := newTable(t, c)
	rangeSize := int(c.SNATPortMax) - int(c.SNATPortMin) + 1
	f := NewFlow{Orig: key("198.18.0.66", 0, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.1"), TCPFlags: TCPFlagACK}
	for p := 1; p <= rangeSize+500; p++ {
		f.Orig.SrcPort = uint16(p)
		tb.Insert(&f, sec)
	}
	legit := f
	legit.Orig = key("198.18.0.100", 0, "198.19.1.1", 80, packet.ProtoTCP)
	legit.TCPFlags = TCPFlagSYN
	for p := 41000; p < 41100; p++ {
		legit.Orig.SrcPort = uint16(p)
		if _, res := tb.Insert(&legit, 3*sec); res != Inserted {
			t.Fatalf("legitimate SYN %d during the flood: %v", p-41000, res)
		}
	}
	later := 3*sec + int64(time.Hour)
	tb.Expire(later, 1<<20)
	if n := tb.Len(); n != 0 {
		t.Fatalf("%d flows left an hour later, want 0 (none was answered)", n)
	}
}
