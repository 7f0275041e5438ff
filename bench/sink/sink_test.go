package sink

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/xdpsvc/lb/bench/tstest"
)

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	src4   = net.IP{198, 18, 0, 100}
	dst4   = net.IP{198, 18, 0, 11}
	src6   = net.ParseIP("2001:db8::1")
	dst6   = net.ParseIP("2001:db8::2")
)

// frame serializes layers with lengths and checksums filled in.
func frame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		switch l4 := l.(type) {
		case *layers.UDP:
			l4.SetNetworkLayerForChecksum(ls[1].(gopacket.NetworkLayer))
		case *layers.TCP:
			l4.SetNetworkLayerForChecksum(ls[1].(gopacket.NetworkLayer))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: typ}
}

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src4, DstIP: dst4}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: src6, DstIP: dst6}
}

type frameCase struct {
	name  string
	frame []byte
}

// sampleFrames covers every branch of the program.
func sampleFrames(t testing.TB) []frameCase {
	payload := gopacket.Payload(make([]byte, 18))
	udp4 := frame(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 40000, DstPort: 8080}, payload)
	withOptions := ip4(layers.IPProtocolUDP)
	withOptions.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	fragment := ip4(layers.IPProtocolUDP)
	fragment.FragOffset = 100
	badIHL := append([]byte(nil), udp4...)
	badIHL[14] = 0x44
	return []frameCase{
		{"udp4 port 8080", udp4},
		{"udp4 port 53", frame(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 40000, DstPort: 53}, payload)},
		{"udp4 with IP options", frame(t, eth(layers.EthernetTypeIPv4), withOptions, &layers.UDP{SrcPort: 40000, DstPort: 8080}, payload)},
		{"udp4 later fragment", frame(t, eth(layers.EthernetTypeIPv4), fragment, gopacket.Payload(make([]byte, 26)))},
		{"udp4 IHL below 5", badIHL},
		{"tcp4 syn port 8080", frame(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 8080, SYN: true, Window: 1024})},
		{"icmp4 echo", frame(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, payload)},
		{"udp6 port 8080", frame(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 40000, DstPort: 8080}, payload)},
		{"tcp6 port 9", frame(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 9, ACK: true})},
		{"arp request", frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: srcMAC, SourceProtAddress: src4,
			DstHwAddress: make([]byte, 6), DstProtAddress: dst4})},
		{"ethernet header only", udp4[:14]},
		{"udp4 truncated in IP header", udp4[:30]},
		{"udp4 truncated before ports", udp4[:35]},
	}
}

var filters = []struct {
	name   string
	filter Filter
}{
	{"any", Filter{}},
	{"udp", Filter{Proto: ProtoUDP}},
	{"udp 8080", Filter{Proto: ProtoUDP, DstPort: 8080}},
	{"tcp 8080", Filter{Proto: ProtoTCP, DstPort: 8080}},
	{"tcp or udp 8080", Filter{DstPort: 8080}},
	{"icmp", Filter{Proto: 1}},
}

// TestMatch pins the reference decision for a few cases by hand.
func TestMatch(t *testing.T) {
	frames := map[string][]byte{}
	for _, c := range sampleFrames(t) {
		frames[c.name] = c.frame
	}
	tests := []struct {
		name   string
		filter Filter
		frame  string
		want   bool
	}{
		{"any matches udp", Filter{}, "udp4 port 53", true},
		{"any matches icmp", Filter{}, "icmp4 echo", true},
		{"any passes arp", Filter{}, "arp request", false},
		{"any passes a bare ethernet header", Filter{}, "ethernet header only", false},
		{"udp 8080 matches", Filter{Proto: ProtoUDP, DstPort: 8080}, "udp4 port 8080", true},
		{"udp 8080 with options", Filter{Proto: ProtoUDP, DstPort: 8080}, "udp4 with IP options", true},
		{"udp 8080 passes port 53", Filter{Proto: ProtoUDP, DstPort: 8080}, "udp4 port 53", false},
		{"udp 8080 passes tcp", Filter{Proto: ProtoUDP, DstPort: 8080}, "tcp4 syn port 8080", false},
		{"port passes later fragment", Filter{DstPort: 8080}, "udp4 later fragment", false},
		{"proto matches later fragment", Filter{Proto: ProtoUDP}, "udp4 later fragment", true},
		{"port passes bad IHL", Filter{DstPort: 8080}, "udp4 IHL below 5", false},
		{"port passes truncated", Filter{DstPort: 8080}, "udp4 truncated before ports", false},
		{"any passes truncated IP header", Filter{}, "udp4 truncated in IP header", false},
		{"udp6 8080", Filter{Proto: ProtoUDP, DstPort: 8080}, "udp6 port 8080", true},
		{"tcp or udp 8080 takes tcp", Filter{DstPort: 8080}, "tcp4 syn port 8080", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := frames[tc.frame]
			if !ok {
				t.Fatalf("no frame %q", tc.frame)
			}
			if got := tc.filter.Match(f); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	tests := []struct {
		name    string
		filter  Filter
		wantErr bool
	}{
		{"zero", Filter{}, false},
		{"udp port", Filter{Proto: ProtoUDP, DstPort: 1}, false},
		{"port only", Filter{DstPort: 1}, false},
		{"icmp", Filter{Proto: 1}, false},
		{"icmp with port", Filter{Proto: 1, DstPort: 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.filter.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// runProgram runs the loaded program once on frame and returns its verdict.
func runProgram(t testing.TB, prog *ebpf.Program, f []byte) uint32 {
	t.Helper()
	data := f
	if len(data) < 14 {
		t.Fatalf("frame of %d bytes: the kernel needs at least 14", len(data))
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: data})
	if err != nil {
		t.Fatalf("run program: %v", err)
	}
	return ret
}

// TestProgramAgreesWithMatch runs the real program (BPF_PROG_TEST_RUN) on every sample frame with every filter
// and checks verdict and counters against Filter.Match.
func TestProgramAgreesWithMatch(t *testing.T) {
	tstest.RequireRoot(t)
	frames := sampleFrames(t)
	for _, fc := range filters {
		t.Run(fc.name, func(t *testing.T) {
			prog, counts, err := load(fc.filter)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer prog.Close()
			defer counts.Close()
			var want Stats
			for _, c := range frames {
				got := runProgram(t, prog, c.frame)
				match := fc.filter.Match(c.frame)
				wantVerdict := uint32(xdpPass)
				if match {
					wantVerdict = xdpDrop
					want.Packets++
					want.Bytes += uint64(len(c.frame))
				} else {
					want.PassedPackets++
					want.PassedBytes += uint64(len(c.frame))
				}
				if got != wantVerdict {
					t.Errorf("%s: verdict %d, want %d (Match %v)", c.name, got, wantVerdict, match)
				}
			}
			st, err := readCounts(counts)
			if err != nil {
				t.Fatal(err)
			}
			if st != want {
				t.Errorf("counters %+v, want %+v", st, want)
			}
		})
	}
}

// FuzzProgram checks the loaded program against Filter.Match on arbitrary bytes.
func FuzzProgram(f *testing.F) {
	for _, c := range sampleFrames(f) {
		f.Add(c.frame, uint8(ProtoUDP), uint16(8080))
		f.Add(c.frame, uint8(0), uint16(0))
	}
	tstest.RequireRoot(f)
	progs := map[Filter]*ebpf.Program{}
	f.Cleanup(func() {
		for _, p := range progs {
			p.Close()
		}
	})
	var maps []*ebpf.Map
	f.Cleanup(func() {
		for _, m := range maps {
			m.Close()
		}
	})
	f.Fuzz(func(t *testing.T, data []byte, proto uint8, port uint16) {
		// Keep the program cache small: a few protocols, ports folded onto three values.
		switch proto % 4 {
		case 0:
			proto = 0
		case 1:
			proto = ProtoTCP
		case 2:
			proto = ProtoUDP
		case 3:
			proto = 1
		}
		port = []uint16{0, 8080, 9}[port%3]
		filter := Filter{Proto: proto, DstPort: port}
		if filter.Validate() != nil {
			filter.DstPort = 0
		}
		if len(data) < 14 || len(data) > 4096 {
			return
		}
		prog, ok := progs[filter]
		if !ok {
			p, m, err := load(filter)
			if err != nil {
				t.Fatalf("load %v: %v", filter, err)
			}
			progs[filter], prog = p, p
			maps = append(maps, m)
		}
		want := uint32(xdpPass)
		if filter.Match(data) {
			want = xdpDrop
		}
		if got := runProgram(t, prog, data); got != want {
			t.Fatalf("filter %v frame %x: verdict %d, want %d", filter, data, got, want)
		}
	})
}

func TestLe16(t *testing.T) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], 0x86dd)
	if got, want := le16(0x86dd), int32(binary.LittleEndian.Uint16(b[:])); got != want {
		t.Fatalf("le16 = %#x, want %#x", got, want)
	}
}

// BenchmarkProgram measures the program's time per frame in the kernel (BPF_PROG_TEST_RUN with repeats).
func BenchmarkProgram(b *testing.B) {
	tstest.RequireRoot(b)
	frames := sampleFrames(b)
	prog, counts, err := load(Filter{Proto: ProtoUDP, DstPort: 8080})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	defer counts.Close()
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		_, d, err := prog.Benchmark(frames[0].frame, 1000, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	perPkt := float64(total.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perPkt, "ns/pkt")
	b.ReportMetric(1e9/perPkt, "pkt/s")
}
