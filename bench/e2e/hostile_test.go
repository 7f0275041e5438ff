package e2e

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
	"github.com/xdpsvc/lb/bench/tstest"
)

// synFrame is a TCP SYN from src:sport to dst:dport with gopacket's checksums.
func synFrame(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst string, sport, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// icmpErrorFrame is an ICMP fragmentation-needed error from src to dst quoting a TCP segment
// from qsrc to qdst, as the backend would send it about a packet of the flow.
func icmpErrorFrame(t *testing.T, srcMAC, dstMAC net.HardwareAddr, src, dst string, qsrc, qdst netip.AddrPort) []byte {
	t.Helper()
	qip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP(qsrc.Addr().AsSlice()), DstIP: net.IP(qdst.Addr().AsSlice())}
	qtcp := &layers.TCP{SrcPort: layers.TCPPort(qsrc.Port()), DstPort: layers.TCPPort(qdst.Port()), ACK: true, Seq: 1, Window: 1000}
	qtcp.SetNetworkLayerForChecksum(qip)
	q := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(q, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, qip, qtcp, gopacket.Payload(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	quoted := q.Bytes()[:28] // the IP header and the first 8 bytes of TCP, as routers quote
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: 576}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, ic, gopacket.Payload(quoted)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// sendRaw sends frames from namespace ns through an AF_PACKET socket on its lab interface,
// times times each, and returns how long it took.
func sendRaw(ns *lab.NS, dstMAC net.HardwareAddr, frames [][]byte, times int) (time.Duration, error) {
	start := time.Now()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName(lab.HostIface)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], dstMAC)
		for range times {
			for _, f := range frames {
				if err := unix.Sendto(fd, f, 0, sa); err != nil {
					return fmt.Errorf("sendto: %w", err)
				}
			}
		}
		return nil
	})
	return time.Since(start), err
}

func dropMetric(reason string) string {
	return `appliance_dropped_packets_total{reason="` + reason + `"}`
}

// hostileLab runs one appliance node (manifests with backend 198.18.1.21) with two clients on
// the external segment, the good one holding a live TCP echo flow through the VIP. It returns
// the node, the good and the hostile client, an echo round trip over the live flow, and the
// flow as the admin API shows it.
func hostileLab(t *testing.T) (n *node, good, bad *lab.NS, echo func() error, flow admin.FlowStatus) {
	t.Helper()
	tstest.RequireRoot(t)
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = 1, 2, 1, 0
	l := lab.New(t, spec)
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		t.Fatalf("start backends: %v", err)
	}
	// A single node: no gossip key needed (gossip stays on the lab's cluster segment).
	an, err := appliance.New(appliance.Config{
		Bin: applianceBinary(t), NS: l.Nodes[0], Name: "lb-1", Dir: t.TempDir(), InsecureGossip: true,
		HealthTimeout: 20 * time.Second, AdminTimeout: 10 * time.Second,
	}, manifests("198.18.1.21"))
	if err != nil {
		t.Fatal(err)
	}
	n = &node{Node: an, t: t, ns: l.Nodes[0]}
	t.Cleanup(func() {
		n.Stop()
		if p := n.Process(); p != nil && t.Failed() {
			t.Logf("appliance output:\n%s", p.Output())
		}
	})
	n.start()
	good, bad = l.Clients[0], l.Clients[1]
	tstest.Eventually(t, 10*time.Second, "VIP", func() error { _, err := get(good, "http://198.19.1.1/"); return err })

	// A live flow of the good client, whose backend side the forged ICMP errors quote.
	conn, err := lab.Dial(good, "tcp", "198.19.1.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	echo = func() error {
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 5)
		_, err := io.ReadFull(conn, b)
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("echo over the live flow: %v", err)
	}
	var flows []admin.FlowStatus
	n.api("/api/v1/flows", &flows)
	for _, f := range flows {
		if f.Client == conn.LocalAddr().String() {
			flow = f
		}
	}
	if flow.SNAT == "" {
		t.Fatalf("no SNATed flow for %s in %+v", conn.LocalAddr(), flows)
	}
	return n, good, bad, echo, flow
}

// keepRequesting makes a request to url from ns every 50 ms until the returned function is
// called; that returns how many succeeded and failed, and the first error.
func keepRequesting(ns *lab.NS, url string) func() (ok, failed int64, firstErr any) {
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := get(ns, url); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
		}
	})
	return func() (int64, int64, any) {
		close(stop)
		wg.Wait()
		return ok.Load(), failed.Load(), firstErr.Load()
	}
}

// TestHostileClientNetwork runs a hostile host on the client segment next to a legitimate
// client: it tries to hijack a backend's MAC, reach a ClusterIP with a spoofed cluster source,
// open flows from martian sources, make the appliance reflect a SYN flood as RSTs and relay
// forged ICMP errors about the backend side of a live flow. Every attack is dropped and
// counted, and the legitimate client's requests keep succeeding throughout.
func TestHostileClientNetwork(t *testing.T) {
	n, good, bad, echo, flow := hostileLab(t)
	// The legitimate client keeps making requests while the attacks run.
	stopRequests := keepRequesting(good, "http://198.19.1.1/")

	badMAC, nodeMAC := bad.Ifaces[0].MAC, n.ns.External().MAC
	before := n.metrics()
	const repeat = 5
	// (a) MAC hijack: SYNs with the backend's address as source, from the hostile host's MAC
	// (a cluster source on the external port: wrong_port).
	hijack := [][]byte{synFrame(t, badMAC, nodeMAC, "198.18.1.21", "198.19.1.1", 50000, 80)}
	// (b) A ClusterIP from the client network with a source inside clusterCIDRs.
	clusterIP := [][]byte{synFrame(t, badMAC, nodeMAC, "198.18.1.50", "198.19.0.10", 50001, 80)}
	// (c) Martian sources to the VIP.
	var martians [][]byte
	for i, src := range []string{"0.0.0.1", "127.0.0.1", "224.0.0.1", "255.255.255.255", "198.18.0.11", "198.19.1.1"} {
		martians = append(martians, synFrame(t, badMAC, nodeMAC, src, "198.19.1.1", uint16(50010+i), 80))
	}
	// (e) ICMP errors quoting the live flow's backend side (SNAT → backend), from the client side.
	snat, backendAP := netip.MustParseAddrPort(flow.SNAT), netip.MustParseAddrPort(flow.Backend)
	forged := [][]byte{icmpErrorFrame(t, badMAC, nodeMAC, backendAP.Addr().String(), snat.Addr().String(), snat, backendAP)}
	for _, fs := range [][][]byte{hijack, clusterIP, martians, forged} {
		if _, err := sendRaw(bad, nodeMAC, fs, repeat); err != nil {
			t.Fatal(err)
		}
	}
	// (d) A SYN flood to a Service port without endpoints, from the hostile host's own address.
	var flood [][]byte
	for i := range 1000 {
		flood = append(flood, synFrame(t, badMAC, nodeMAC, "198.18.0.101", "198.19.1.2", uint16(20000+i), 80))
	}
	floodTime, err := sendRaw(bad, nodeMAC, flood, 3)
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]float64{
		dropMetric("wrong_port"):     float64(repeat * (len(hijack) + len(clusterIP) + len(forged))),
		dropMetric("martian_source"): float64(repeat * len(martians)),
	}
	var after string
	tstest.Eventually(t, 10*time.Second, "attacks counted", func() error {
		after = n.metrics()
		for name, d := range want {
			if got := metricValue(t, after, name) - metricValue(t, before, name); got < d {
				return fmt.Errorf("%s rose by %v, want %v", name, got, d)
			}
		}
		if metricValue(t, after, dropMetric("local_reply_limit")) == metricValue(t, before, dropMetric("local_reply_limit")) {
			return fmt.Errorf("local_reply_limit did not rise")
		}
		return nil
	})
	delta := func(name string) float64 { return metricValue(t, after, name) - metricValue(t, before, name) }
	// The flood's RSTs stay within one worker's bucket (the lab has one queue): the burst plus
	// the rate over the time the flood took, with a second of slack for scheduling.
	resets := delta(`appliance_local_replies_total{kind="tcp_reset"}`)
	if limit := 50 + 1000*(floodTime.Seconds()+1); resets > limit {
		t.Fatalf("%v RSTs for a flood of %d SYNs sent in %v, more than the reply limit allows (%v)", resets, 3*len(flood), floodTime, limit)
	}
	if x := delta(`appliance_local_replies_total{kind="icmp_error_translated"}`); x != 0 {
		t.Fatalf("%v forged ICMP errors relayed", x)
	}

	// The live flow survived the forged errors, and new requests still reach the backend
	// (not the hostile host's MAC).
	if err := echo(); err != nil {
		t.Fatalf("echo over the live flow after the attacks: %v", err)
	}
	for range 5 {
		body, err := get(good, "http://198.19.1.1/")
		if err != nil || !strings.HasPrefix(body, "backend") {
			t.Fatalf("request after the attacks: %q, %v", body, err)
		}
	}
	if ok, failed, firstErr := stopRequests(); failed > 0 || ok == 0 {
		t.Fatalf("legitimate requests during the attacks: %d ok, %d failed (first: %v)", ok, failed, firstErr)
	}
	t.Logf("attacks: %v RSTs for %d flood SYNs in %v; drops %v", resets, 3*len(flood), floodTime, map[string]float64{
		"wrong_port": delta(dropMetric("wrong_port")), "martian_source": delta(dropMetric("martian_source")),
		"local_reply_limit": delta(dropMetric("local_reply_limit")), "source_limit": delta(dropMetric("source_limit")),
	})
}
