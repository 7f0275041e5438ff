package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/asavie/xdp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// testConfig is a complete config that needs no interface.
func testConfig() Config {
	c := DefaultConfig()
	c.SrcMAC, c.DstMAC = testSrcMAC, testDstMAC
	c.SrcPrefix = netip.MustParsePrefix("198.18.0.100/32")
	c.DstPrefix = netip.MustParsePrefix("198.18.0.11/32")
	c.DstPorts = PortRange{First: 8080}
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" = valid
	}{
		{"default with destination", func(*Config) {}, ""},
		{"largest frame", func(c *Config) { c.FrameSize = MaxFrameSize }, ""},
		{"no destination", func(c *Config) { c.DstPrefix = netip.Prefix{} }, "destination prefix: required"},
		{"destination outside the bench range", func(c *Config) { c.DstPrefix = netip.MustParsePrefix("10.0.0.1/32") }, "outside 198.18.0.0/15"},
		{"source prefix wider than the bench range", func(c *Config) { c.SrcPrefix = netip.MustParsePrefix("198.16.0.0/12") }, "outside 198.18.0.0/15"},
		{"ipv6 destination", func(c *Config) { c.DstPrefix = netip.MustParsePrefix("2001:db8::1/128") }, "outside"},
		{"no packet bound", func(c *Config) { c.MaxPackets = 0 }, "max packets: required"},
		{"no time bound", func(c *Config) { c.MaxDuration = 0 }, "max duration: required"},
		{"frame too small", func(c *Config) { c.FrameSize = 63 }, "frame size"},
		{"frame too large", func(c *Config) { c.FrameSize = 1519 }, "frame size"},
		{"port zero", func(c *Config) { c.DstPorts = PortRange{} }, "port 0"},
		{"empty port range", func(c *Config) { c.SrcPorts = PortRange{First: 2000, Last: 1000} }, "is empty"},
		{"more flows than tuples", func(c *Config) { c.SrcPorts = PortRange{First: 1000, Last: 1009}; c.Flows = 11 }, "do not fit"},
		{"flows fit exactly", func(c *Config) { c.SrcPorts = PortRange{First: 1000, Last: 1009}; c.Flows = 10 }, ""},
		{"ring not a power of two", func(c *Config) { c.TxRingSize = 1000 }, "TX ring size"},
		{"batch larger than ring", func(c *Config) { c.BatchSize = 4096 }, "batch size"},
		{"negative rate", func(c *Config) { c.RatePPS = -1 }, "rate"},
		{"bad MAC", func(c *Config) { c.DstMAC = net.HardwareAddr{1, 2} }, "destination MAC"},
		{"no proto", func(c *Config) { c.Proto = 0 }, "proto"},
		{"UMEM too big", func(c *Config) { c.FrameSize = MaxFrameSize; c.Flows = 60000; c.MaxUMEMBytes = 64 << 20 }, "UMEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseProto(t *testing.T) {
	tests := []struct {
		in      string
		want    Proto
		wantErr bool
	}{
		{"udp", ProtoUDP, false}, {"UDP", ProtoUDP, false}, {"tcp-syn", ProtoTCPSYN, false}, {"syn", ProtoTCPSYN, false},
		{"tcp-ack", ProtoTCPACK, false}, {"icmp", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseProto(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseProto(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
			if err == nil {
				if back, _ := ParseProto(got.String()); back != got {
					t.Fatalf("String %q does not parse back", got)
				}
			}
		})
	}
}

// onesSum is the RFC 1071 one's-complement sum of b folded to 16 bits, plus initial.
func onesSum(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// checkFrame decodes frame with gopacket, verifies its checksums and returns its flow.
func checkFrame(t *testing.T, c Config, frame []byte) Flow {
	t.Helper()
	if len(frame) != c.FrameSize-4 {
		t.Fatalf("frame of %d bytes, want %d", len(frame), c.FrameSize-4)
	}
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil && p.TransportLayer() == nil {
		// (gopacket guesses application protocols from ports, e.g. RADIUS on 1812; only L2-L4 matter here.)
		t.Fatalf("decode: %v", el.Error())
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth.SrcMAC.String() != c.SrcMAC.String() || eth.DstMAC.String() != c.DstMAC.String() {
		t.Errorf("MACs %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, c.SrcMAC, c.DstMAC)
	}
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		t.Fatal("no IPv4 layer")
	}
	if ip.TTL != 64 || ip.IHL != 5 || ip.Flags != layers.IPv4DontFragment {
		t.Errorf("IPv4 header TTL %d IHL %d flags %v", ip.TTL, ip.IHL, ip.Flags)
	}
	hdr := frame[14:34]
	if s := onesSum(hdr, 0); s != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#x)", s)
	}
	l4 := frame[14+20 : 14+int(ip.Length)]
	pseudo := uint32(binary.BigEndian.Uint16(hdr[12:])) + uint32(binary.BigEndian.Uint16(hdr[14:])) +
		uint32(binary.BigEndian.Uint16(hdr[16:])) + uint32(binary.BigEndian.Uint16(hdr[18:])) +
		uint32(hdr[9]) + uint32(len(l4))
	if s := onesSum(l4, pseudo); s != 0xffff {
		t.Errorf("L4 checksum does not verify (sum %#x)", s)
	}
	f := Flow{SrcAddr: netip.AddrFrom4([4]byte(ip.SrcIP.To4())), DstAddr: netip.AddrFrom4([4]byte(ip.DstIP.To4()))}
	switch c.Proto {
	case ProtoUDP:
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Fatal("no UDP layer")
		}
		if int(udp.Length) != len(frame)-34 {
			t.Errorf("UDP length %d, want %d", udp.Length, len(frame)-34)
		}
		f.SrcPort, f.DstPort = uint16(udp.SrcPort), uint16(udp.DstPort)
	default:
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			t.Fatal("no TCP layer")
		}
		if tcp.SYN != (c.Proto == ProtoTCPSYN) || tcp.ACK != (c.Proto == ProtoTCPACK) {
			t.Errorf("TCP flags SYN %v ACK %v for %v", tcp.SYN, tcp.ACK, c.Proto)
		}
		if c.Proto == ProtoTCPSYN && int(ip.Length) != 40 {
			t.Errorf("SYN IP length %d, want 40 (no payload)", ip.Length)
		}
		f.SrcPort, f.DstPort = uint16(tcp.SrcPort), uint16(tcp.DstPort)
	}
	if f != c.Flow(0) && !benchRange.Contains(f.SrcAddr) {
		t.Errorf("source %s outside %s", f.SrcAddr, benchRange)
	}
	return f
}

func TestBuildFrames(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"udp 64 one flow", func(*Config) {}},
		{"udp 64 1000 flows", func(c *Config) { c.Flows = 1000 }},
		{"udp 1518 3 flows", func(c *Config) { c.FrameSize = 1518; c.Flows = 3 }},
		{"tcp syn 64 over addresses and ports", func(c *Config) {
			c.Proto = ProtoTCPSYN
			c.SrcPrefix = netip.MustParsePrefix("198.18.2.0/24")
			c.SrcPorts = PortRange{First: 1000, Last: 1009}
			c.DstPorts = PortRange{First: 80, Last: 81}
			c.Flows = 10 * 254 * 2
		}},
		{"tcp syn 128 padded", func(c *Config) { c.Proto = ProtoTCPSYN; c.FrameSize = 128 }},
		{"tcp ack 512", func(c *Config) { c.Proto = ProtoTCPACK; c.FrameSize = 512; c.Flows = 7 }},
		{"ring smaller than flows", func(c *Config) { c.TxRingSize = 64; c.Flows = 100 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.edit(&c)
			im, err := BuildFrames(c)
			if err != nil {
				t.Fatalf("BuildFrames: %v", err)
			}
			if len(im.Slots) < c.TxRingSize || len(im.Slots)%c.Flows != 0 {
				t.Fatalf("%d slots for %d flows and a ring of %d", len(im.Slots), c.Flows, c.TxRingSize)
			}
			seen := make(map[Flow]int, c.Flows)
			for i := 0; i < c.Flows; i++ {
				f := checkFrame(t, c, im.Frame(i))
				if f != c.Flow(i) {
					t.Fatalf("slot %d carries %+v, want flow %+v", i, f, c.Flow(i))
				}
				if j, dup := seen[f]; dup {
					t.Fatalf("flows %d and %d share the 5-tuple %+v", j, i, f)
				}
				seen[f] = i
			}
			if len(seen) != c.Flows {
				t.Fatalf("%d distinct 5-tuples, want %d", len(seen), c.Flows)
			}
			// Repeated slots carry their flow's frame; slots never overlap or cross a chunk.
			for i := c.Flows; i < len(im.Slots); i += 1 + len(im.Slots)/97 {
				if string(im.Frame(i)) != string(im.Frame(i%c.Flows)) {
					t.Fatalf("slot %d differs from flow %d's frame", i, i%c.Flows)
				}
			}
			for i, d := range im.Slots {
				if d.Addr/chunkSize != (d.Addr+uint64(d.Len)-1)/chunkSize {
					t.Fatalf("slot %d (%d+%d) crosses a chunk boundary", i, d.Addr, d.Len)
				}
				if i > 0 && d.Addr < im.Slots[i-1].Addr+uint64(im.Slots[i-1].Len) {
					t.Fatalf("slot %d overlaps slot %d", i, i-1)
				}
			}
		})
	}
}

func TestBuildFramesNeedsMACs(t *testing.T) {
	c := testConfig()
	c.DstMAC = nil
	if _, err := BuildFrames(c); err == nil {
		t.Fatal("BuildFrames without a destination MAC succeeded")
	}
}

func TestFlowSpreadsAddresses(t *testing.T) {
	c := testConfig()
	c.SrcPrefix = netip.MustParsePrefix("198.18.4.0/30") // .1 and .2
	c.SrcPorts = PortRange{First: 5000, Last: 5001}
	want := []Flow{
		{netip.MustParseAddr("198.18.4.1"), netip.MustParseAddr("198.18.0.11"), 5000, 8080},
		{netip.MustParseAddr("198.18.4.1"), netip.MustParseAddr("198.18.0.11"), 5001, 8080},
		{netip.MustParseAddr("198.18.4.2"), netip.MustParseAddr("198.18.0.11"), 5000, 8080},
		{netip.MustParseAddr("198.18.4.2"), netip.MustParseAddr("198.18.0.11"), 5001, 8080},
	}
	for i, w := range want {
		if got := c.Flow(i); got != w {
			t.Errorf("Flow(%d) = %+v, want %+v", i, got, w)
		}
	}
}

func TestTokenBucket(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name    string
		rate    float64
		run     time.Duration
		step    time.Duration
		wantMin int
		wantMax int
	}{
		{"10k pps for 0.5 s in 1 ms steps", 10_000, 500 * time.Millisecond, time.Millisecond, 4990, 5070},
		{"10k pps woken every 5 ms", 10_000, 500 * time.Millisecond, 5 * time.Millisecond, 4900, 5070},
		{"10k pps woken every 50 ms loses beyond the burst", 10_000, 500 * time.Millisecond, 50 * time.Millisecond, 900, 1300},
		{"1 Mpps for 0.1 s in 50 us steps", 1_000_000, 100 * time.Millisecond, 50 * time.Microsecond, 99_000, 100_100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTokenBucket(tc.rate, 64, start)
			total := 0
			for now := start; now.Before(start.Add(tc.run)); now = now.Add(tc.step) {
				for {
					n := b.take(now, 64)
					total += n
					if n < 64 {
						break
					}
				}
			}
			if total < tc.wantMin || total > tc.wantMax {
				t.Fatalf("sent %d, want %d..%d", total, tc.wantMin, tc.wantMax)
			}
		})
	}
}

func TestTokenBucketWait(t *testing.T) {
	start := time.Unix(1000, 0)
	b := newTokenBucket(1000, 64, start)
	if n := b.take(start, 64); n != 64 {
		t.Fatalf("first batch %d, want 64 (the bucket starts with a batch)", n)
	}
	if w := b.wait(64); w != 64*time.Millisecond {
		t.Fatalf("wait %v, want 64ms", w)
	}
	if n := b.take(start.Add(32*time.Millisecond), 64); n != 32 {
		t.Fatalf("after 32 ms %d tokens, want 32", n)
	}
}

func TestDescRingRecycles(t *testing.T) {
	slots := make([]xdp.Desc, 5)
	for i := range slots {
		slots[i] = xdp.Desc{Addr: uint64(i) * 64, Len: 60}
	}
	r := descRing{slots: slots}
	batch := make([]xdp.Desc, 3)
	var got []uint64
	for range 4 {
		r.fill(batch)
		for _, d := range batch {
			got = append(got, d.Addr/64)
		}
	}
	want := []uint64{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slot order %v, want %v", got, want)
		}
	}
	w := window{capacity: 4}
	w.submitted(3)
	if w.room() != 1 {
		t.Fatalf("room %d, want 1", w.room())
	}
	w.completed(3)
	if w.room() != 4 {
		t.Fatalf("room %d, want 4", w.room())
	}
}

// TestRecycleAllocatesNothing proves the per-batch path (descriptor hand-out and window) allocates nothing.
func TestRecycleAllocatesNothing(t *testing.T) {
	im, err := BuildFrames(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := descRing{slots: im.Slots}
	w := window{capacity: 2048}
	b := newTokenBucket(1e6, 64, time.Unix(0, 0))
	batch := make([]xdp.Desc, 64)
	now := time.Unix(0, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(100 * time.Microsecond)
		n := b.take(now, min(len(batch), w.room()))
		r.fill(batch[:n])
		w.submitted(n)
		w.completed(n)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

func BenchmarkBuildFramePerFlow(b *testing.B) {
	c := testConfig()
	c.Flows = 1000
	buf := gopacket.NewSerializeBuffer()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := buildFrame(buf, c, i%c.Flows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/flow")
}

// BenchmarkDescriptorRecycling is the send loop's per-batch bookkeeping without the kernel: hand out a
// batch of prebuilt descriptors, submit, complete.
func BenchmarkDescriptorRecycling(b *testing.B) {
	c := testConfig()
	c.Flows = 1000
	im, err := BuildFrames(c)
	if err != nil {
		b.Fatal(err)
	}
	r := descRing{slots: im.Slots}
	w := window{capacity: c.TxRingSize}
	batch := make([]xdp.Desc, 64)
	var sum uint64
	b.ReportAllocs()
	for b.Loop() {
		r.fill(batch)
		w.submitted(len(batch))
		for _, d := range batch {
			sum += d.Addr
		}
		w.completed(len(batch))
	}
	pkts := float64(b.N) * float64(len(batch))
	b.ReportMetric(pkts/b.Elapsed().Seconds(), "pkt/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pkts, "ns/pkt")
	if sum == 1 {
		b.Log(sum)
	}
}
