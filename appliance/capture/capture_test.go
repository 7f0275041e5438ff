package capture

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpsvc/lb/packet"
)

func udpFrame(t testing.TB, src, dst string, sport, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var nl gopacket.SerializableLayer
	var udp = &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if a := netip.MustParseAddr(src); a.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
		_ = udp.SetNetworkLayerForChecksum(ip)
		nl = ip
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		nl = ip
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, nl, udp, gopacket.Payload("hello")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func arpFrame(t testing.TB, sender, target string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: net.ParseIP(sender).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, arp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustFilter(t testing.TB, rules ...Rule) Filter {
	t.Helper()
	f, err := NewFilter("test", rules...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustFlow(t testing.TB, s string) Rule {
	t.Helper()
	r, err := ParseFlow(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFilterMatch(t *testing.T) {
	vip := netip.MustParseAddr("198.19.1.1")
	cases := []struct {
		name  string
		rules []Rule
		frame []byte
		want  bool
	}{
		{"no rules keep everything", nil, []byte{1, 2, 3}, true},
		{"address as destination", []Rule{{Addr: vip}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), true},
		{"address as source", []Rule{{Addr: vip}}, udpFrame(t, "198.19.1.1", "198.18.0.100", 53, 4000), true},
		{"other address", []Rule{{Addr: vip}}, udpFrame(t, "198.18.0.100", "198.19.1.2", 4000, 53), false},
		{"frontend port matches", []Rule{{Addr: vip, Port: 53, Proto: ProtoUDP}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), true},
		{"frontend wrong port", []Rule{{Addr: vip, Port: 80, Proto: ProtoUDP}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"frontend wrong protocol", []Rule{{Addr: vip, Port: 53, Proto: ProtoTCP}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"port on the other side does not count", []Rule{{Addr: vip, Port: 4000}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"flow forward", []Rule{mustFlow(t, "udp 198.18.0.100:4000 198.19.1.1:53")}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), true},
		{"flow reverse", []Rule{mustFlow(t, "udp 198.18.0.100:4000 198.19.1.1:53")}, udpFrame(t, "198.19.1.1", "198.18.0.100", 53, 4000), true},
		{"flow other client port", []Rule{mustFlow(t, "udp 198.18.0.100:4001 198.19.1.1:53")}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"flow other protocol", []Rule{mustFlow(t, "tcp 198.18.0.100:4000 198.19.1.1:53")}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"IPv6 address", []Rule{{Addr: netip.MustParseAddr("2001:db8::1")}}, udpFrame(t, "2001:db8::2", "2001:db8::1", 1, 2), true},
		{"IPv6 rule, IPv4 frame", []Rule{{Addr: netip.MustParseAddr("::ffff:198.19.1.2")}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), false},
		{"ARP for the VIP", []Rule{{Addr: vip}}, arpFrame(t, "198.18.0.100", "198.19.1.1"), true},
		{"ARP never matches a port rule", []Rule{{Addr: vip, Port: 53}}, arpFrame(t, "198.18.0.100", "198.19.1.1"), false},
		{"truncated frame", []Rule{{Addr: vip}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53)[:30], false},
		{"any of several rules", []Rule{{Addr: netip.MustParseAddr("198.18.1.21")}, {Addr: vip}}, udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustFilter(t, c.rules...)
			if got := f.Match(c.frame); got != c.want {
				t.Fatalf("Match = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseFlow(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"tcp v4", "tcp 198.18.0.100:40000 198.19.1.1:80", true},
		{"udp upper case", "UDP 198.18.0.100:1 198.19.1.1:53", true},
		{"v6", "tcp [2001:db8::1]:1 [2001:db8::2]:2", true},
		{"numeric protocol", "132 198.18.0.100:1 198.19.1.1:2", true},
		{"mixed families", "tcp 198.18.0.100:1 [2001:db8::2]:2", false},
		{"missing port", "tcp 198.18.0.100 198.19.1.1:80", false},
		{"bad protocol", "foo 198.18.0.100:1 198.19.1.1:2", false},
		{"two fields", "tcp 198.18.0.100:1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFlow(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("ParseFlow(%q) err = %v, want ok=%v", c.in, err, c.ok)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	resolve := func(key string) ([]Rule, error) {
		if key != "default/web" {
			return nil, errors.New("not found")
		}
		return []Rule{{Addr: netip.MustParseAddr("198.19.0.10"), Port: 80, Proto: ProtoTCP}}, nil
	}
	cases := []struct {
		name, query string
		ok          bool
	}{
		{"nothing", "", true},
		{"service", "service=default/web&count=10", true},
		{"unknown service", "service=default/nope", false},
		{"vip", "vip=198.19.1.1&duration=5s", true},
		{"bad vip", "vip=198.19.1", false},
		{"flow", "flow=tcp+198.18.0.100:1+198.19.1.1:80", true},
		{"two filters", "vip=198.19.1.1&flow=tcp+198.18.0.100:1+198.19.1.1:80", false},
		{"bad count", "count=-1", false},
		{"bad duration", "duration=soon", false},
		{"snaplen too small", "snaplen=10", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseRequest(q, resolve)
			if (err == nil) != c.ok {
				t.Fatalf("ParseRequest(%q) err = %v, want ok=%v", c.query, err, c.ok)
			}
		})
	}
}

func TestRing(t *testing.T) {
	match := udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53)
	after := udpFrame(t, "198.18.1.11", "198.18.1.21", 61000, 53)
	reply := udpFrame(t, "198.18.1.21", "198.18.1.11", 53, 61000)
	replyAfter := udpFrame(t, "198.19.1.1", "198.18.0.100", 53, 4000)
	other := udpFrame(t, "198.18.0.100", "198.19.1.9", 4000, 53)
	type step struct {
		before []byte
		sent   bool
		after  []byte
	}
	cases := []struct {
		name        string
		slots       int
		steps       []step
		wantDirs    string // one letter per published record: r (before), t (after)
		wantDropped uint64
	}{
		{"matched and forwarded: before and after", 4, []step{{match, true, after}}, "rt", 0},
		{"matched and dropped: before only", 4, []step{{match, false, nil}}, "r", 0},
		{"not matching: nothing", 4, []step{{other, true, other}}, "", 0},
		{"reply matches only after translation: both kept", 4, []step{{reply, true, replyAfter}}, "rt", 0},
		{"full ring drops and counts", 2, []step{{match, true, after}, {match, true, after}}, "rt", 2},
		{"after of the second frame does not fit", 3, []step{{match, true, after}, {match, true, after}}, "rtr", 1},
		{"unmatched frames never use up space", 2, []step{{other, false, nil}, {other, true, other}, {match, true, after}}, "rt", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustFilter(t, Rule{Addr: netip.MustParseAddr("198.19.1.1")})
			s, err := NewSession(Config{Filter: f, SnapLenBytes: 2048, RingSlots: c.slots}, []string{"ext0"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			r := s.Ring(0)
			// Exact capacity even when not a power of two; these cases never wrap around.
			r.meta, r.mask = r.meta[:c.slots], ^uint64(0)
			for i, st := range c.steps {
				r.Begin(st.before, 0, int64(i))
				r.End(st.sent, st.after, 0)
			}
			var dirs string
			for r.Pop(func(m Record, b []byte) {
				want := c.steps[m.TimeUnixNano].before
				if m.Dir == DirTX {
					want = c.steps[m.TimeUnixNano].after
				}
				if !bytes.Equal(b, want) || int(m.Length) != len(want) {
					t.Errorf("record %+v holds other bytes", m)
				}
				dirs += map[Direction]string{DirRX: "r", DirTX: "t"}[m.Dir]
			}) {
			}
			if dirs != c.wantDirs || r.Dropped() != c.wantDropped {
				t.Fatalf("records %q dropped %d, want %q dropped %d", dirs, r.Dropped(), c.wantDirs, c.wantDropped)
			}
		})
	}
}

func TestRingSnapLenTruncates(t *testing.T) {
	s, err := NewSession(Config{SnapLenBytes: 20, RingSlots: 2}, []string{"p"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	fr := udpFrame(t, "198.18.0.1", "198.18.0.2", 1, 2)
	r := s.Ring(0)
	r.Begin(fr, 0, 1)
	r.End(false, nil, 0)
	if !r.Pop(func(m Record, b []byte) {
		if len(b) != 20 || m.CapLength != 20 || int(m.Length) != len(fr) {
			t.Fatalf("record %+v with %d bytes, want 20 of %d", m, len(b), len(fr))
		}
	}) {
		t.Fatal("nothing recorded")
	}
}

func TestRingAllocatesNothing(t *testing.T) {
	f := mustFilter(t, mustFlow(t, "udp 198.18.0.100:4000 198.19.1.1:53"), Rule{Addr: netip.MustParseAddr("198.19.1.1")})
	s, err := NewSession(Config{Filter: f, RingSlots: 64}, []string{"p"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Ring(0)
	fr := udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Begin(fr, 0, 1)
		r.End(true, fr, 0)
		r.tail.Store(r.head.Load()) // consume
	})
	if allocs != 0 {
		t.Fatalf("Begin/End allocate %v times per frame", allocs)
	}
}

// TestStreamWritesReadablePcapng writes records of two ports and both directions and reads the
// file back with gopacket's pcapng reader.
func TestStreamWritesReadablePcapng(t *testing.T) {
	s, err := NewSession(Config{RingSlots: 16}, []string{"ext0", "int0"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	in := udpFrame(t, "198.18.0.100", "198.19.1.1", 4000, 53)
	out := udpFrame(t, "198.18.1.11", "198.18.1.21", 61000, 53)
	s.Ring(0).Begin(in, 0, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	s.Ring(0).End(true, out, 1)
	s.Ring(1).Begin(in, 1, time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC).UnixNano())
	s.Ring(1).End(false, nil, 0)
	var buf bytes.Buffer
	st, err := Stream(t.Context(), s, &buf, StreamOptions{MaxFrames: 3, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 3 || st.Matched != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 3 written, 2 matched", st)
	}
	recs := readPcapng(t, buf.Bytes())
	want := []struct {
		iface string
		data  []byte
	}{{"ext0:rx", in}, {"int0:tx", out}, {"int0:rx", in}}
	if len(recs) != len(want) {
		t.Fatalf("%d packets read back, want %d", len(recs), len(want))
	}
	for i, w := range want {
		if recs[i].iface != w.iface || !bytes.Equal(recs[i].data, w.data) {
			t.Errorf("packet %d on %s (%d bytes), want %s (%d bytes)", i, recs[i].iface, len(recs[i].data), w.iface, len(w.data))
		}
	}
}

func TestStreamStopsAtDuration(t *testing.T) {
	s, err := NewSession(Config{RingSlots: 4}, []string{"p"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := Stream(t.Context(), s, io.Discard, StreamOptions{Duration: 50 * time.Millisecond})
	if err != nil || st.Written != 0 {
		t.Fatalf("stream: %+v %v", st, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stream ran %v past its 50 ms duration", time.Since(start))
	}
}

type readRec struct {
	iface string
	data  []byte
}

func readPcapng(t testing.TB, b []byte) []readRec {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("pcapng does not open: %v", err)
	}
	var out []readRec
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapng packet %d: %v", len(out), err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, readRec{iface: intf.Name, data: append([]byte(nil), data...)})
	}
	return out
}

func FuzzFilterMatch(f *testing.F) {
	f.Add(udpFrame(f, "198.18.0.100", "198.19.1.1", 4000, 53))
	f.Add(udpFrame(f, "2001:db8::2", "2001:db8::1", 1, 2))
	f.Add(arpFrame(f, "198.18.0.100", "198.19.1.1"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0, 1, 0x08, 0x00, 0x45})
	filt, err := NewFilter("fuzz", Rule{Addr: netip.MustParseAddr("198.19.1.1"), Port: 53, Proto: ProtoUDP},
		mustFlow(f, "udp [2001:db8::2]:1 [2001:db8::1]:2"), Rule{Addr: netip.MustParseAddr("198.18.0.100")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = filt.Match(b)
		// Differential check of the decoder against gopacket: where both decode an IPv4 or
		// IPv6 header, the addresses agree.
		var tu tuple
		if tu.decode(b) {
			p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.NoCopy)
			var src, dst net.IP
			switch l := p.NetworkLayer().(type) {
			case *layers.IPv4:
				src, dst = l.SrcIP, l.DstIP
			case *layers.IPv6:
				src, dst = l.SrcIP, l.DstIP
			}
			if src != nil {
				gs, _ := netip.AddrFromSlice(src)
				gd, _ := netip.AddrFromSlice(dst)
				if gs.Unmap().As16() != tu.src || gd.Unmap().As16() != tu.dst {
					t.Fatalf("decoder read %v -> %v, gopacket %v -> %v", netip.AddrFrom16(tu.src), netip.AddrFrom16(tu.dst), gs, gd)
				}
			}
		}
		s, err := NewSession(Config{Filter: filt, RingSlots: 2, SnapLenBytes: 64}, []string{"p"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		r := s.Ring(0)
		r.Begin(b, 0, 1)
		r.End(true, b, 0)
		r.Pop(func(m Record, data []byte) {
			if int(m.CapLength) != len(data) || len(data) > 64 {
				t.Fatalf("record %+v with %d bytes", m, len(data))
			}
		})
	})
}

// FuzzParseRequest feeds the admin endpoint's query parser arbitrary queries: an error or a
// filter, never a panic, and a parsed filter matches without panicking.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"vip=198.19.1.1&count=4", "flow=tcp+198.18.0.100:1+198.19.1.1:80&duration=5s",
		"service=default/web&snaplen=128", "flow=udp+[2001:db8::1]:1+[2001:db8::2]:2", "count=-1", "vip=::ffff:1.2.3.4"} {
		f.Add(s)
	}
	frame := udpFrame(f, "198.18.0.100", "198.19.1.1", 1, 80)
	resolve := func(key string) ([]Rule, error) {
		if key == "" {
			return nil, errors.New("empty")
		}
		return []Rule{{Addr: netip.MustParseAddr("198.19.0.10"), Port: 80, Proto: ProtoTCP}}, nil
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req, err := ParseRequest(q, resolve)
		if err != nil {
			return
		}
		_ = req.Filter.Match(frame)
		if req.SnapLenBytes != 0 && (req.SnapLenBytes < packet.EthHeaderLen || req.SnapLenBytes > MaxSnapLenBytes) {
			t.Fatalf("snaplen %d accepted", req.SnapLenBytes)
		}
	})
}

// TestSnapLenCappedAtFrameSize: a snap length beyond the longest frame the data plane handles
// (packet.MaxFrameLen) is capped there, and a worker's ring stays within MaxRingBytes whatever
// the snap length and slot count asked for.
func TestSnapLenCappedAtFrameSize(t *testing.T) {
	cases := []struct {
		name           string
		snap, slots    int
		wantSnap       int
		wantSlotsAtMax int // 0: the slots asked for
	}{
		{"default", 0, 0, 2048, 0},
		{"small", 128, 64, 128, 0},
		{"largest frame", packet.MaxFrameLen, 4096, packet.MaxFrameLen, 1024},
		{"pcap's largest snap length", 65535, 4096, packet.MaxFrameLen, 1024},
		{"many slots of default size", 2048, MaxRingSlots, 2048, MaxRingBytes / 2048},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSession(Config{SnapLenBytes: c.snap, RingSlots: c.slots}, []string{"p"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			r := s.Ring(0)
			if s.Config().SnapLenBytes != c.wantSnap || r.snap != c.wantSnap {
				t.Fatalf("snap length %d (ring %d), want %d", s.Config().SnapLenBytes, r.snap, c.wantSnap)
			}
			if len(r.data) > MaxRingBytes || len(r.data) != len(r.meta)*c.wantSnap {
				t.Fatalf("ring of %d slots holds %d bytes, at most %d", len(r.meta), len(r.data), MaxRingBytes)
			}
			if c.wantSlotsAtMax != 0 && len(r.meta) != c.wantSlotsAtMax {
				t.Fatalf("%d slots, want %d", len(r.meta), c.wantSlotsAtMax)
			}
		})
	}
	q := url.Values{"snaplen": {"65535"}}
	req, err := ParseRequest(q, nil)
	if err != nil || req.SnapLenBytes != MaxSnapLenBytes {
		t.Fatalf("?snaplen=65535: %d, %v; want it capped at %d", req.SnapLenBytes, err, MaxSnapLenBytes)
	}
}
