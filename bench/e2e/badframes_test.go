package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpsvc/lb/bench/tstest"
)

// rawFrame builds a TCP SYN from the client to the VIP with gopacket, then lets mutate break it.
func rawFrame(t *testing.T, src, dst net.HardwareAddr, mutate func(ip *layers.IPv4, b []byte) []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IPv4(198, 18, 0, 100).To4(), DstIP: net.IPv4(198, 19, 1, 1).To4()}
	tcp := &layers.TCP{SrcPort: 45000, DstPort: 80, SYN: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload("bad")); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	return mutate(ip, b)
}

// fixIPSum recomputes the IPv4 header checksum of frame b (header at 14).
func fixIPSum(b []byte) {
	ihl := int(b[14]&0xf) * 4
	b[24], b[25] = 0, 0
	var s uint32
	for i := 14; i < 14+ihl && i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(b[24:], ^uint16(s))
}

func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(name) + " ([0-9.e+]+)$")
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBadFramesAreDroppedAndCounted(t *testing.T) {
	l := startLab(t, 1)
	n := startNode(t, l, 0, manifests("198.18.1.21"))
	client := l.Clients[0]
	tstest.Eventually(t, 10*time.Second, "VIP", func() error { _, err := get(client, "http://198.19.1.1/"); return err })

	src := client.Ifaces[0].MAC
	dst := n.ns.External().MAC
	cases := []struct {
		name   string
		mutate func(ip *layers.IPv4, b []byte) []byte
		reason string // "dp:<reason>": dropped by the data plane; "steer:<reason>": passed to the kernel by the steering program
	}{
		{"truncated: IP total length beyond the frame", func(_ *layers.IPv4, b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], 1400)
			fixIPSum(b)
			return b
		}, "dp:truncated"},
		{"bad IPv4 header checksum", func(_ *layers.IPv4, b []byte) []byte { b[24] ^= 0xff; return b }, "dp:bad_checksum"},
		{"bad TCP checksum", func(_ *layers.IPv4, b []byte) []byte { b[14+20+16] ^= 0xff; return b }, "dp:bad_checksum"},
		{"bad total length shorter than the header", func(_ *layers.IPv4, b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:], 12)
			fixIPSum(b)
			return b
		}, "dp:bad_total_length"},
		{"first fragment", func(_ *layers.IPv4, b []byte) []byte { b[20] |= 0x20; fixIPSum(b); return b }, "dp:fragment"},
		{"TTL 1", func(_ *layers.IPv4, b []byte) []byte { b[22] = 1; fixIPSum(b); return b }, "dp:ttl_expired"},
		{"bad header length", func(_ *layers.IPv4, b []byte) []byte { b[14] = 0x44; fixIPSum(b); return b }, "steer:pass_malformed"},
		{"unknown protocol", func(_ *layers.IPv4, b []byte) []byte { b[23] = 99; fixIPSum(b); return b }, "steer:pass_other_l4"},
		{"runt frame", func(_ *layers.IPv4, b []byte) []byte { return b[:20] }, "steer:pass_malformed"},
	}
	var frames [][]byte
	for _, tc := range cases {
		frames = append(frames, rawFrame(t, src, dst, tc.mutate))
	}
	before := n.metrics()
	txBefore := metricValue(t, before, "appliance_transmitted_packets_total")

	// Send every bad frame 10 times through an AF_PACKET socket in the client namespace.
	_, err := sendRaw(client, dst, frames, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Every bad frame is counted where it stopped: dropped by the data plane with its reason, or
	// (headers the steering program cannot even classify, protocols it does not steer) passed to
	// the kernel, which drops them too.
	want := map[string]float64{}
	for _, tc := range cases {
		kind, reason, _ := strings.Cut(tc.reason, ":")
		name := `appliance_dropped_packets_total{reason="` + reason + `"}`
		if kind == "steer" {
			name = `appliance_steering_frames_total{iface="ext0",reason="` + reason + `"}`
		}
		want[name] += 10
	}
	var after string
	tstest.Eventually(t, 5*time.Second, "bad frames counted", func() error {
		after = n.metrics()
		for name, d := range want {
			if got := metricValue(t, after, name) - metricValue(t, before, name); got < d {
				return fmt.Errorf("%s rose by %v, want %v", name, got, d)
			}
		}
		return nil
	})
	// ARP replies for the VIP (a neighbour revalidating its entry meanwhile) are the only frames
	// the data plane may send while only bad frames arrive.
	arp := `appliance_local_replies_total{kind="arp"}`
	arpSent := metricValue(t, after, arp) - metricValue(t, before, arp)
	if tx := metricValue(t, after, "appliance_transmitted_packets_total") - txBefore; tx != arpSent {
		t.Fatalf("the appliance transmitted %v frames (%v of them ARP replies) while only bad frames arrived", tx, arpSent)
	}
	// The node still serves.
	if _, err := get(client, "http://198.19.1.1/"); err != nil {
		t.Fatalf("after bad frames the VIP no longer answers: %v", err)
	}
}
