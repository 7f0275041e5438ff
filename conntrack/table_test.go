package conntrack

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/xdpsvc/lb/packet"
)

const sec = int64(time.Second)

func key(src string, sport uint16, dst string, dport uint16, proto uint8) packet.FlowKey {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	k := packet.FlowKey{SrcPort: sport, DstPort: dport, Proto: proto, Family: packet.FamilyIPv6}
	if s.Is4() {
		k.Family = packet.FamilyIPv4
		a, b := s.As4(), d.As4()
		copy(k.SrcAddr[:], a[:])
		copy(k.DstAddr[:], b[:])
	} else {
		k.SrcAddr, k.DstAddr = s.As16(), d.As16()
	}
	return k
}

func addr(s string) [16]byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		var b [16]byte
		v := a.As4()
		copy(b[:], v[:])
		return b
	}
	return a.As16()
}

func testConfig(n int) Config {
	c := DefaultConfig()
	c.MaxEntries = n
	c.MaxEntriesIPv6 = n
	c.HashSeed = 42
	return c
}

func newTable(t testing.TB, c Config) *Table {
	t.Helper()
	tb, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestSizes(t *testing.T) {
	if s := unsafe.Sizeof(entry[key4]{}); s != 64 || int64(s) != entrySize[key4]() {
		t.Errorf("IPv4 entry is %d bytes, want 64 (entrySize %d)", s, entrySize[key4]())
	}
	if s := unsafe.Sizeof(entry[key6]{}); s != 112 || int64(s) != entrySize[key6]() {
		t.Errorf("IPv6 entry is %d bytes, want 112 (entrySize %d)", s, entrySize[key6]())
	}
	if s := unsafe.Sizeof(shard{}); s != 64 {
		t.Errorf("shard is %d bytes, want 64", s)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no entries", func(c *Config) { c.MaxEntries, c.MaxEntriesIPv6 = 0, 0 }, false},
		{"negative", func(c *Config) { c.MaxEntries = -1 }, false},
		{"zero timeout", func(c *Config) { c.UDPTimeout = 0 }, false},
		{"huge timeout", func(c *Config) { c.TCPEstablishedTimeout = 1000 * 24 * time.Hour }, false},
		{"kube-proxy established", func(c *Config) { c.TCPEstablishedTimeout = 24 * time.Hour }, true},
		{"port range reversed", func(c *Config) { c.SNATPortMin, c.SNATPortMax = 2000, 1000 }, false},
		{"port 0", func(c *Config) { c.SNATPortMin = 0 }, false},
		{"no attempts", func(c *Config) { c.SNATAttempts = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.MaxEntries, c.MaxEntriesIPv6 = 64, 64
			tc.mod(&c)
			_, err := New(c)
			if (err == nil) != tc.ok {
				t.Fatalf("New: err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestInsertLookupTranslate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flow      NewFlow
		wantReply packet.FlowKey // with SNAT port 0 when SNAT: filled from the table
		snat      bool
	}{
		{
			name: "tcp4 snat",
			flow: NewFlow{Orig: key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP),
				BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.2"),
				ServiceID: 7, BackendID: 3, TCPFlags: TCPFlagSYN, IngressIfindex: 2, EgressIfindex: 3},
			wantReply: key("198.18.1.10", 8080, "198.18.1.2", 0, packet.ProtoTCP), snat: true,
		},
		{
			name: "udp4 no snat",
			flow: NewFlow{Orig: key("198.18.0.100", 5353, "198.19.0.10", 53, packet.ProtoUDP),
				BackendAddr: addr("198.18.1.11"), BackendPort: 5353, Flags: FlagNoSNAT, ServiceID: 1},
			wantReply: key("198.18.1.11", 5353, "198.18.0.100", 5353, packet.ProtoUDP),
		},
		{
			name: "icmp4 echo",
			flow: NewFlow{Orig: key("198.18.0.100", 77, "198.19.1.1", 77, packet.ProtoICMP),
				BackendAddr: addr("198.18.1.10"), SNATAddr: addr("198.18.1.2")},
			wantReply: key("198.18.1.10", 0, "198.18.1.2", 0, packet.ProtoICMP), snat: true,
		},
		{
			name: "tcp6 snat",
			flow: NewFlow{Orig: key("2001:db8::100", 41000, "2001:db8:1::1", 443, packet.ProtoTCP),
				BackendAddr: addr("2001:db8:2::10"), BackendPort: 8443, SNATAddr: addr("2001:db8:2::2"), TCPFlags: TCPFlagSYN},
			wantReply: key("2001:db8:2::10", 8443, "2001:db8:2::2", 0, packet.ProtoTCP), snat: true,
		},
		{
			name: "icmp6 no snat",
			flow: NewFlow{Orig: key("2001:db8::100", 9, "2001:db8:1::1", 9, packet.ProtoICMPv6),
				BackendAddr: addr("2001:db8:2::10"), Flags: FlagNoSNAT},
			wantReply: key("2001:db8:2::10", 9, "2001:db8::100", 9, packet.ProtoICMPv6),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, testConfig(64))
			now := 1000 * sec
			h, res := tb.Insert(&tc.flow, now)
			if res != Inserted {
				t.Fatalf("Insert = %v", res)
			}
			f, ok := tb.Flow(h, now)
			if !ok {
				t.Fatal("Flow: not found")
			}
			want := tc.wantReply
			if tc.snat {
				p := f.Reply.DstPort
				if p < 61000 {
					t.Fatalf("SNAT port %d outside 61000-65535", p)
				}
				want.DstPort = p
				if tc.flow.Orig.Proto == packet.ProtoICMP || tc.flow.Orig.Proto == packet.ProtoICMPv6 {
					want.SrcPort = p
				}
			}
			if f.Reply != want {
				t.Fatalf("reply key = %+v, want %+v", f.Reply, want)
			}
			if f.Orig != tc.flow.Orig {
				t.Fatalf("orig key = %+v, want %+v", f.Orig, tc.flow.Orig)
			}
			// Original direction: rewritten to SNAT → backend.
			ho, ok := tb.Lookup(&tc.flow.Orig, now)
			if !ok || ho.Dir() != DirOriginal {
				t.Fatalf("Lookup orig = %v %v", ho, ok)
			}
			var out packet.FlowKey
			if !tb.Translate(ho, &out) || out != want.Reverse() {
				t.Fatalf("Translate orig = %+v, want %+v", out, want.Reverse())
			}
			// Reply direction: rewritten to frontend → client.
			hr, ok := tb.Lookup(&want, now)
			if !ok || hr.Dir() != DirReply || hr.Index() != ho.Index() {
				t.Fatalf("Lookup reply = %v %v", hr, ok)
			}
			if !tb.Translate(hr, &out) || out != tc.flow.Orig.Reverse() {
				t.Fatalf("Translate reply = %+v, want %+v", out, tc.flow.Orig.Reverse())
			}
			m, ok := tb.Meta(hr)
			if !ok || m.ServiceID != tc.flow.ServiceID || m.BackendID != tc.flow.BackendID ||
				m.IngressIfindex != tc.flow.IngressIfindex || m.EgressIfindex != tc.flow.EgressIfindex ||
				m.Flags != tc.flow.Flags {
				t.Fatalf("Meta = %+v %v", m, ok)
			}
			if _, res := tb.Insert(&tc.flow, now); res != InsertExists {
				t.Fatalf("second Insert = %v, want exists", res)
			}
			if !tb.Delete(ho) {
				t.Fatal("Delete failed")
			}
			if _, ok := tb.Lookup(&tc.flow.Orig, now); ok {
				t.Fatal("found after Delete")
			}
			if _, ok := tb.Lookup(&want, now); ok {
				t.Fatal("reply found after Delete")
			}
			if tb.Translate(ho, &out) || tb.Update(ho, 0, now) || tb.Delete(ho) {
				t.Fatal("stale handle still works")
			}
			if tb.Len() != 0 {
				t.Fatalf("Len = %d", tb.Len())
			}
		})
	}
}

func TestInsertInvalid(t *testing.T) {
	tb := newTable(t, testConfig(16))
	v4only := testConfig(16)
	v4only.MaxEntriesIPv6 = 0
	tb4 := newTable(t, v4only)
	base := NewFlow{Orig: key("198.18.0.100", 1000, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
	for _, tc := range []struct {
		name string
		tb   *Table
		mod  func(*NewFlow)
	}{
		{"rst first", tb, func(f *NewFlow) { f.TCPFlags = TCPFlagRST }},
		{"synack first", tb, func(f *NewFlow) { f.TCPFlags = TCPFlagSYN | TCPFlagACK }},
		{"no flags", tb, func(f *NewFlow) { f.TCPFlags = 0 }},
		{"gre", tb, func(f *NewFlow) { f.Orig.Proto = 47 }},
		{"icmpv6 on v4", tb, func(f *NewFlow) { f.Orig.Proto = packet.ProtoICMPv6 }},
		{"no family", tb, func(f *NewFlow) { f.Orig.Family = packet.FamilyNone }},
		{"internal flag", tb, func(f *NewFlow) { f.Flags = flagAssured }},
		{"v6 disabled", tb4, func(f *NewFlow) { f.Orig = key("2001:db8::1", 1, "2001:db8::2", 2, packet.ProtoUDP) }},
		{"reply equals orig", tb, func(f *NewFlow) {
			f.Flags = FlagNoSNAT
			f.Orig = key("198.18.0.1", 80, "198.18.0.1", 80, packet.ProtoUDP)
			f.BackendAddr, f.BackendPort = addr("198.18.0.1"), 80
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			tc.mod(&f)
			if _, res := tc.tb.Insert(&f, sec); res != InsertInvalid {
				t.Fatalf("Insert = %v, want invalid", res)
			}
		})
	}
	noLoose := testConfig(16)
	noLoose.TCPLoosePickup = false
	f := base
	f.TCPFlags = TCPFlagACK
	if _, res := newTable(t, noLoose).Insert(&f, sec); res != InsertInvalid {
		t.Fatalf("ACK pickup without loose = %v", res)
	}
	if h, res := tb.Insert(&f, sec); res != Inserted {
		t.Fatalf("ACK pickup with loose = %v", res)
	} else if m, _ := tb.Meta(h); m.State != TCPEstablished {
		t.Fatalf("pickup state %v", m.State)
	}
}

type pkt struct {
	dir   Dir
	flags uint8
}

func TestTCPStateMachine(t *testing.T) {
	const (
		S, A, F, R = TCPFlagSYN, TCPFlagACK, TCPFlagFIN, TCPFlagRST
		o, r       = DirOriginal, DirReply
	)
	for _, tc := range []struct {
		name    string
		first   uint8
		pkts    []pkt
		want    State
		assured bool
	}{
		{"syn", S, nil, TCPSynSent, false},
		{"syn retransmit", S, []pkt{{o, S}}, TCPSynSent, false},
		{"synack", S, []pkt{{r, S | A}}, TCPSynRecv, false},
		{"handshake", S, []pkt{{r, S | A}, {o, A}}, TCPEstablished, true},
		{"data", S, []pkt{{r, S | A}, {o, A}, {o, A | TCPFlagPSH}, {r, A}}, TCPEstablished, true},
		{"client fin", S, []pkt{{r, S | A}, {o, A}, {o, F | A}}, TCPFinWait, true},
		{"fin acked", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, A}}, TCPCloseWait, true},
		{"both fin", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, A}, {r, F | A}}, TCPLastAck, true},
		{"simultaneous fin", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, F | A}}, TCPLastAck, true},
		{"last ack", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, F | A}, {o, A}}, TCPTimeWait, true},
		{"last ack from wrong side", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, F | A}, {r, A}}, TCPLastAck, true},
		{"backend closes first", S, []pkt{{r, S | A}, {o, A}, {r, F | A}, {o, A}, {o, F | A}, {r, A}}, TCPTimeWait, true},
		{"rst", S, []pkt{{r, S | A}, {o, A}, {r, R}}, TCPClose, true},
		{"rst embryonic", S, []pkt{{r, R | A}}, TCPClose, false},
		{"reuse after time wait", S, []pkt{{r, S | A}, {o, A}, {o, F | A}, {r, F | A}, {o, A}, {o, S}}, TCPSynSent, false},
		{"reuse after rst", S, []pkt{{o, R}, {o, S}}, TCPSynSent, false},
		{"ack before synack ignored", S, []pkt{{o, A}}, TCPSynSent, false},
		{"loose pickup", A, nil, TCPEstablished, false},
		{"loose pickup replied", A, []pkt{{r, A}}, TCPEstablished, true},
		{"loose pickup fin", F | A, nil, TCPFinWait, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, testConfig(16))
			f := NewFlow{Orig: key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP),
				BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: tc.first}
			h, res := tb.Insert(&f, sec)
			if res != Inserted {
				t.Fatalf("Insert = %v", res)
			}
			for i, p := range tc.pkts {
				hd := h
				hd.dir = p.dir
				if !tb.Update(hd, p.flags, sec+int64(i+1)*sec) {
					t.Fatalf("Update %d failed", i)
				}
			}
			fl, ok := tb.Flow(h, sec)
			if !ok || fl.State != tc.want || fl.Assured != tc.assured {
				t.Fatalf("state %v assured %v, want %v %v", fl.State, fl.Assured, tc.want, tc.assured)
			}
		})
	}
}

func TestUDPAndICMPStates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proto   uint8
		reply   bool
		want    State
		timeout time.Duration
	}{
		{"udp unreplied", packet.ProtoUDP, false, UDPUnreplied, 30 * time.Second},
		{"udp stream", packet.ProtoUDP, true, UDPStream, 120 * time.Second},
		{"icmp", packet.ProtoICMP, true, ICMPEcho, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, testConfig(16))
			f := NewFlow{Orig: key("198.18.0.100", 1234, "198.19.1.1", 53, tc.proto),
				BackendAddr: addr("198.18.1.10"), BackendPort: 53, SNATAddr: addr("198.18.1.2")}
			if tc.proto == packet.ProtoICMP {
				f.Orig.DstPort = f.Orig.SrcPort
			}
			h, _ := tb.Insert(&f, sec)
			if tc.reply {
				h.dir = DirReply
				tb.Update(h, 0, 2*sec)
			}
			fl, _ := tb.Flow(h, 2*sec)
			if fl.State != tc.want || tb.Timeout(fl.State) < tc.timeout || tb.Timeout(fl.State) > tc.timeout+time.Second/32 {
				t.Fatalf("state %v timeout %v, want %v %v", fl.State, tb.Timeout(fl.State), tc.want, tc.timeout)
			}
		})
	}
}

func TestTimeoutsAndExpire(t *testing.T) {
	c := testConfig(64)
	c.TCPEstablishedTimeout = 24 * time.Hour
	for _, tc := range []struct {
		name    string
		proto   uint8
		pkts    []pkt
		timeout time.Duration
	}{
		{"syn sent", packet.ProtoTCP, nil, 120 * time.Second},
		{"syn recv", packet.ProtoTCP, []pkt{{DirReply, TCPFlagSYN | TCPFlagACK}}, 60 * time.Second},
		{"established", packet.ProtoTCP, []pkt{{DirReply, TCPFlagSYN | TCPFlagACK}, {DirOriginal, TCPFlagACK}}, 24 * time.Hour},
		{"close", packet.ProtoTCP, []pkt{{DirReply, TCPFlagRST}}, 10 * time.Second},
		{"udp", packet.ProtoUDP, nil, 30 * time.Second},
		{"icmp", packet.ProtoICMP, nil, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, c)
			f := NewFlow{Orig: key("198.18.0.100", 7, "198.19.1.1", 7, tc.proto),
				BackendAddr: addr("198.18.1.10"), BackendPort: 7, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
			start := int64(5000) * sec
			h, res := tb.Insert(&f, start)
			if res != Inserted {
				t.Fatal(res)
			}
			for _, p := range tc.pkts {
				hd := h
				hd.dir = p.dir
				tb.Update(hd, p.flags, start)
			}
			before := start + int64(tc.timeout) - int64(time.Second)
			after := start + int64(tc.timeout) + int64(time.Second)
			if _, ok := tb.Lookup(&f.Orig, before); !ok {
				t.Fatal("expired before its timeout")
			}
			if tb.Expire(before, 64) != 0 {
				t.Fatal("Expire removed a live flow")
			}
			if _, ok := tb.Lookup(&f.Orig, after); ok {
				t.Fatal("Lookup found a flow past its timeout (lazy expiry)")
			}
			if tb.Len() != 1 {
				t.Fatal("lazy expiry must not delete")
			}
			if n := tb.Expire(after, 64); n != 1 || tb.Len() != 0 || tb.Stats().Expired != 1 {
				t.Fatalf("Expire = %d, Len %d", n, tb.Len())
			}
		})
	}
}

func TestExpiredFlowReplacedOnInsert(t *testing.T) {
	tb := newTable(t, testConfig(16))
	f := NewFlow{Orig: key("198.18.0.100", 5000, "198.19.1.1", 53, packet.ProtoUDP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 53, SNATAddr: addr("198.18.1.2"), ServiceID: 1}
	if _, res := tb.Insert(&f, sec); res != Inserted {
		t.Fatal(res)
	}
	f.ServiceID = 2
	h, res := tb.Insert(&f, 100*sec)
	if res != Inserted {
		t.Fatalf("Insert over expired flow = %v", res)
	}
	if m, _ := tb.Meta(h); m.ServiceID != 2 || tb.Len() != 1 {
		t.Fatalf("meta %+v len %d", m, tb.Len())
	}
}

func TestExpireAmortised(t *testing.T) {
	tb := newTable(t, testConfig(1000))
	for i := 0; i < 1000; i++ {
		f := NewFlow{Orig: key("198.18.0.100", uint16(1000+i), "198.19.1.1", 53, packet.ProtoUDP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 53, SNATAddr: addr("198.18.1.2")}
		if _, res := tb.Insert(&f, sec); res != Inserted {
			t.Fatalf("insert %d: %v", i, res)
		}
	}
	later := 100 * sec
	total := 0
	for call := 0; call < 1000/64+1; call++ {
		n := tb.Expire(later, 64)
		if n > 64 {
			t.Fatalf("Expire removed %d > budget", n)
		}
		total += n
	}
	if total != 1000 || tb.Len() != 0 {
		t.Fatalf("expired %d, left %d", total, tb.Len())
	}
}

// TestSNATPortsUnique fills a small port range towards one backend and checks that no two live
// flows share a reply key, that a full range refuses, and that (without TIME_WAIT reuse) a
// TIME_WAIT flow keeps its port until it expires.
func TestSNATPortsUnique(t *testing.T) {
	c := testConfig(256)
	c.SNATPortMin, c.SNATPortMax = 40000, 40015
	c.SNATAttempts = 256
	c.TCPTimeWaitReuseAfter = 0
	tb := newTable(t, c)
	now := 10 * sec
	seen := map[uint16]Handle{}
	newFlow := func(i int) NewFlow {
		return NewFlow{Orig: key("198.18.0.100", uint16(20000+i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
	}
	for i := 0; i < 16; i++ {
		f := newFlow(i)
		h, res := tb.Insert(&f, now)
		if res != Inserted {
			t.Fatalf("flow %d: %v", i, res)
		}
		fl, _ := tb.Flow(h, now)
		if _, dup := seen[fl.Reply.DstPort]; dup {
			t.Fatalf("port %d handed out twice", fl.Reply.DstPort)
		}
		seen[fl.Reply.DstPort] = h
		answer(t, tb, h, TCPFlagSYN|TCPFlagACK, now) // answered: never reclaimed by a new flow
	}
	f := newFlow(100)
	if _, res := tb.Insert(&f, now); res != InsertNoPort {
		t.Fatalf("17th flow: %v, want no-port", res)
	}
	// Another backend port has its own range.
	f.BackendPort = 8081
	if _, res := tb.Insert(&f, now); res != Inserted {
		t.Fatalf("other backend: %v", res)
	}
	// Close one flow into TIME_WAIT: its port stays taken until the TIME_WAIT timeout.
	var h Handle
	for _, hh := range seen {
		h = hh
		break
	}
	for _, p := range []pkt{{DirOriginal, TCPFlagACK},
		{DirOriginal, TCPFlagFIN | TCPFlagACK}, {DirReply, TCPFlagFIN | TCPFlagACK}, {DirOriginal, TCPFlagACK}} {
		hd := h
		hd.dir = p.dir
		tb.Update(hd, p.flags, now)
	}
	if fl, _ := tb.Flow(h, now); fl.State != TCPTimeWait {
		t.Fatalf("state %v", fl.State)
	}
	f = newFlow(200)
	if _, res := tb.Insert(&f, now+60*sec); res != InsertNoPort {
		t.Fatalf("port reused during TIME_WAIT: %v", res)
	}
	// After TIME_WAIT (120 s) the port comes back; the SYN_RECV flows (60 s) have expired too.
	if _, res := tb.Insert(&f, now+121*sec); res != Inserted {
		t.Fatalf("after TIME_WAIT: %v", res)
	}
	if st := tb.Stats(); st.NoPort != 2 {
		t.Fatalf("NoPort = %d", st.NoPort)
	}
}

// TestNoSNATClash: without SNAT the reply key is fixed and must still be unique.
func TestNoSNATClash(t *testing.T) {
	tb := newTable(t, testConfig(16))
	f := NewFlow{Orig: key("198.18.0.100", 1000, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 80, Flags: FlagNoSNAT, TCPFlags: TCPFlagSYN}
	if _, res := tb.Insert(&f, sec); res != Inserted {
		t.Fatal(res)
	}
	// Same client port to a different frontend that picks the same backend: same reply key.
	f.Orig = key("198.18.0.100", 1000, "198.19.1.2", 80, packet.ProtoTCP)
	if _, res := tb.Insert(&f, sec); res != InsertClash {
		t.Fatalf("Insert = %v, want clash", res)
	}
}

func establish(t testing.TB, tb *Table, f *NewFlow, now int64) Handle {
	h, res := tb.Insert(f, now)
	if res != Inserted {
		t.Fatalf("insert: %v", res)
	}
	h.dir = DirReply
	tb.Update(h, TCPFlagSYN|TCPFlagACK, now)
	h.dir = DirOriginal
	tb.Update(h, TCPFlagACK, now)
	return h
}

// TestSYNFloodKeepsEstablished fills the table with established flows, then floods SYNs: none
// of the established flows may be evicted; the flood is refused and counted. Embryonic flows
// are evicted first when there are some.
func TestSYNFloodKeepsEstablished(t *testing.T) {
	const n = 512
	tb := newTable(t, testConfig(n))
	now := 100 * sec
	var flows []NewFlow
	for i := 0; i < n; i++ {
		f := NewFlow{Orig: key("198.18.0.100", uint16(1024+i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
		establish(t, tb, &f, now)
		flows = append(flows, f)
	}
	for i := 0; i < 20000; i++ {
		f := NewFlow{Orig: key("198.18.0.200", uint16(i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
		f.Orig.SrcAddr[3] = byte(i >> 16)
		if _, res := tb.Insert(&f, now+sec); res != InsertFull {
			t.Fatalf("SYN %d: %v, want full", i, res)
		}
	}
	for i := range flows {
		if _, ok := tb.Lookup(&flows[i].Orig, now+2*sec); !ok {
			t.Fatalf("established flow %d was evicted", i)
		}
	}
	st := tb.Stats()
	if st.Evicted != 0 || st.Full != 20000 || st.Live != n {
		t.Fatalf("stats %+v", st)
	}
	// Turn half of them back into embryonic flows' places: delete and re-add as SYN-only; the
	// flood may now take exactly those entries and no established one.
	for i := 0; i < n/2; i++ {
		h, _ := tb.Lookup(&flows[i].Orig, now)
		tb.Delete(h)
		f := flows[i]
		if _, res := tb.Insert(&f, now); res != Inserted {
			t.Fatal(res)
		}
	}
	inserted := 0
	for i := 0; i < 4*n; i++ {
		f := NewFlow{Orig: key("198.18.0.201", uint16(i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
		if _, res := tb.Insert(&f, now+sec); res == Inserted {
			inserted++
		}
	}
	if inserted == 0 {
		t.Fatal("no embryonic flow was evicted for the flood")
	}
	for i := n / 2; i < n; i++ {
		if _, ok := tb.Lookup(&flows[i].Orig, now+2*sec); !ok {
			t.Fatalf("established flow %d was evicted", i)
		}
	}
}

func TestIPv6SeparateCapacity(t *testing.T) {
	c := testConfig(4)
	c.MaxEntriesIPv6 = 2
	tb := newTable(t, c)
	for i := 0; i < 3; i++ {
		f := NewFlow{Orig: key("2001:db8::100", uint16(1000+i), "2001:db8:1::1", 53, packet.ProtoUDP),
			BackendAddr: addr("2001:db8:2::10"), BackendPort: 53, SNATAddr: addr("2001:db8:2::2")}
		f.TCPFlags = 0
		_, res := tb.Insert(&f, sec)
		want := Inserted
		if i == 2 {
			want = InsertFull // unreplied UDP is evictable, but only expired/unassured of the same family
		}
		if i == 2 && res == Inserted {
			continue // evicting an unreplied UDP flow is allowed
		}
		if res != want {
			t.Fatalf("flow %d: %v", i, res)
		}
	}
	if tb.MemoryBytes() <= 0 {
		t.Fatal("MemoryBytes")
	}
}

func TestZeroAllocs(t *testing.T) {
	tb := newTable(t, testConfig(1024))
	f := NewFlow{Orig: key("198.18.0.100", 41000, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 80, SNATAddr: addr("198.18.1.2"), TCPFlags: TCPFlagSYN}
	f6 := NewFlow{Orig: key("2001:db8::100", 41000, "2001:db8:1::1", 80, packet.ProtoTCP),
		BackendAddr: addr("2001:db8:2::10"), BackendPort: 80, SNATAddr: addr("2001:db8:2::2"), TCPFlags: TCPFlagSYN}
	h, _ := tb.Insert(&f, sec)
	tb.Insert(&f6, sec)
	var out packet.FlowKey
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"lookup4", func() { tb.Lookup(&f.Orig, sec) }},
		{"lookup6", func() { tb.Lookup(&f6.Orig, sec) }},
		{"update", func() { tb.Update(h, TCPFlagACK, sec) }},
		{"translate", func() { tb.Translate(h, &out) }},
		{"meta", func() { tb.Meta(h) }},
		{"expire", func() { tb.Expire(sec, 64) }},
		{"insert delete", func() {
			g := f
			g.Orig.SrcPort = 1
			hh, _ := tb.Insert(&g, sec)
			tb.Delete(hh)
		}},
		{"insert delete 6", func() {
			g := f6
			g.Orig.SrcPort = 1
			hh, _ := tb.Insert(&g, sec)
			tb.Delete(hh)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(200, tc.fn); a != 0 {
				t.Fatalf("%v allocs per run", a)
			}
		})
	}
}

func TestRange(t *testing.T) {
	tb := newTable(t, testConfig(32))
	for i := 0; i < 5; i++ {
		f := NewFlow{Orig: key("198.18.0.100", uint16(1000+i), "198.19.1.1", 53, packet.ProtoUDP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 53, SNATAddr: addr("198.18.1.2"), ServiceID: 9}
		tb.Insert(&f, sec)
	}
	n := 0
	tb.Range(2*sec, func(f *Flow) bool {
		if f.ServiceID != 9 || f.State != UDPUnreplied || f.ExpiresIn <= 27*time.Second || f.ExpiresIn > 30*time.Second {
			t.Errorf("flow %+v", f)
		}
		n++
		return true
	})
	if n != 5 {
		t.Fatalf("Range saw %d flows", n)
	}
}

// TestSNATPortOfClosedConnectionIsReusedBySYN checks tcp_tw_reuse-style takeover: with every
// port of the range taken and one flow in TIME_WAIT, a new SYN gets that flow's port only after
// the reuse delay, the old flow is gone, and a non-SYN first packet (loose pickup) never takes
// over a closed connection's tuple.
func TestSNATPortOfClosedConnectionIsReusedBySYN(t *testing.T) {
	c := testConfig(256)
	c.SNATPortMin, c.SNATPortMax = 40000, 40003
	c.SNATAttempts = 64
	c.TCPTimeWaitReuseAfter = time.Second
	c.TCPLoosePickup = true
	tb := newTable(t, c)
	now := 10 * sec
	newFlow := func(i int, flags uint8) NewFlow {
		return NewFlow{Orig: key("198.18.0.100", uint16(20000+i), "198.19.1.1", 80, packet.ProtoTCP),
			BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.18.1.2"), TCPFlags: flags}
	}
	var hs []Handle
	for i := range 4 {
		f := newFlow(i, TCPFlagSYN)
		h, res := tb.Insert(&f, now)
		if res != Inserted {
			t.Fatalf("flow %d: %v", i, res)
		}
		hs = append(hs, h)
		answer(t, tb, h, TCPFlagSYN|TCPFlagACK, now) // answered: never reclaimed by a new flow
	}
	closed := hs[2]
	for _, p := range []pkt{{DirOriginal, TCPFlagACK},
		{DirOriginal, TCPFlagFIN | TCPFlagACK}, {DirReply, TCPFlagFIN | TCPFlagACK}, {DirOriginal, TCPFlagACK}} {
		hd := closed
		hd.dir = p.dir
		tb.Update(hd, p.flags, now)
	}
	old, _ := tb.Flow(closed, now)
	if old.State != TCPTimeWait {
		t.Fatalf("state %v, want TIME_WAIT", old.State)
	}
	cases := []struct {
		name  string
		at    int64
		flags uint8
		want  InsertResult
	}{
		{"SYN within the reuse delay is refused", now + sec/2, TCPFlagSYN, InsertNoPort},
		{"non-SYN never takes over a closed tuple", now + 5*sec, TCPFlagACK, InsertNoPort},
		{"SYN after the reuse delay takes the port", now + 2*sec, TCPFlagSYN, Inserted},
	}
	for i, tc := range cases {
		f := newFlow(100+i, tc.flags)
		h, res := tb.Insert(&f, tc.at)
		if res != tc.want {
			t.Fatalf("%s: %v, want %v", tc.name, res, tc.want)
		}
		if res == Inserted {
			nf, _ := tb.Flow(h, tc.at)
			if nf.Reply.DstPort != old.Reply.DstPort {
				t.Fatalf("%s: got port %d, want the closed flow's %d", tc.name, nf.Reply.DstPort, old.Reply.DstPort)
			}
			if _, ok := tb.Flow(closed, tc.at); ok {
				t.Fatalf("%s: the closed flow is still in the table", tc.name)
			}
		}
	}
	// The established flows were never touched.
	for _, h := range []Handle{hs[0], hs[1], hs[3]} {
		if _, ok := tb.Flow(h, now+2*sec); !ok {
			t.Fatal("a live flow lost its entry")
		}
	}
}

// TestPerFlowSNATPortRange checks that a flow's own SNAT range replaces the table's and that an
// inverted range is refused.
func TestPerFlowSNATPortRange(t *testing.T) {
	tb := newTable(t, testConfig(256))
	f := NewFlow{Orig: key("198.18.0.100", 20000, "198.19.1.1", 80, packet.ProtoTCP),
		BackendAddr: addr("198.18.1.10"), BackendPort: 8080, SNATAddr: addr("198.19.1.1"), TCPFlags: TCPFlagSYN,
		SNATPortMin: 1024, SNATPortMax: 1027}
	for i := range 4 {
		f.Orig.SrcPort = uint16(20000 + i)
		h, res := tb.Insert(&f, sec)
		if res != Inserted {
			t.Fatalf("flow %d: %v", i, res)
		}
		if fl, _ := tb.Flow(h, sec); fl.Reply.DstPort < 1024 || fl.Reply.DstPort > 1027 {
			t.Fatalf("port %d outside 1024-1027", fl.Reply.DstPort)
		}
		answer(t, tb, h, TCPFlagSYN|TCPFlagACK, sec) // answered: not reclaimable when the range is full
	}
	f.Orig.SrcPort = 30000
	if _, res := tb.Insert(&f, sec); res != InsertNoPort {
		t.Fatalf("fifth flow in a 4-port range: %v", res)
	}
	f.SNATPortMin, f.SNATPortMax = 2000, 1000
	if _, res := tb.Insert(&f, sec); res != InsertInvalid {
		t.Fatalf("inverted range: %v", res)
	}
}
