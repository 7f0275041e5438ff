package dataplane

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

var (
	extMAC     = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	intMAC     = [6]byte{0x02, 0, 0, 0, 1, 0x11}
	clientMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x64}
	clusterMAC = [6]byte{0x02, 0, 0, 0, 1, 0x32}
	backendMAC = map[string][6]byte{
		"198.18.1.21": {0x02, 0, 0, 0, 1, 0x21},
		"198.18.1.22": {0x02, 0, 0, 0, 1, 0x22},
		"198.18.1.23": {0x02, 0, 0, 0, 1, 0x23},
	}
)

const testConfig = `
node: {name: lb-a}
interfaces:
  - {name: ext0, role: external}
  - {name: int0, role: cluster}
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools: [{name: default, cidrs: [198.19.1.0/28]}]
`

const testManifests = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.1
  clusterIP: 198.19.0.10
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
    - {name: echo, protocol: UDP, port: 9000, targetPort: 9000, nodePort: 30900}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}, {name: echo, protocol: UDP, port: 9000}]
endpoints:
  - addresses: [198.18.1.21]
  - addresses: [198.18.1.22]
  - addresses: [198.18.1.23]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.2
  clusterIP: 198.19.0.11
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30081}, {name: dns, protocol: UDP, port: 53, targetPort: 53, nodePort: 30053}]
---
apiVersion: v1
kind: Service
metadata: {name: guarded, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.3
  clusterIP: 198.19.0.12
  loadBalancerSourceRanges: [198.18.0.200/32]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30082}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: guarded-1, namespace: default, labels: {kubernetes.io/service-name: guarded}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints:
  - addresses: [198.18.1.21]
`

func buildSnapshot(t testing.TB, manifests string) *service.Snapshot {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig), "lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := service.ParseManifests([]byte(manifests), "svc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := service.Build(objs, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

type rig struct {
	dp       *DataPlane
	w        *Worker
	ext, int *fakeIO
	now      int64
}

func newRig(t testing.TB, manifests string, opts ...func(*Config)) *rig {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Conntrack.MaxEntries = 1 << 12
	cfg.Conntrack.MaxEntriesIPv6 = 0
	cfg.Conntrack.HashSeed = 1
	cfg.MaxServicePorts = 64
	cfg.FloatingSNAT = false // most cases check SNAT to the node address; TestFloatingSNAT covers the VIP
	cfg.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}
	cfg.Ports = []Port{
		{Name: "ext0", Ifindex: 2, MAC: extMAC, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}, Role: RoleExternal},
		{Name: "int0", Ifindex: 3, MAC: intMAC, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24")}, Role: RoleCluster},
	}
	for _, o := range opts {
		o(&cfg)
	}
	dp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.Apply(buildSnapshot(t, manifests)); err != nil {
		t.Fatal(err)
	}
	for ip, mac := range backendMAC {
		dp.Learn(netip.MustParseAddr(ip), mac)
	}
	dp.Learn(netip.MustParseAddr("198.18.1.50"), clusterMAC)
	r := &rig{dp: dp, ext: &fakeIO{}, int: &fakeIO{}, now: 1e12}
	r.w, err = dp.AddWorker(0, []FrameIO{r.ext, r.int})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// frame builds a golden frame with gopacket.
func frame(t testing.TB, srcMAC, dstMAC [6]byte, src, dst string, proto uint8, sport, dport uint16, flags string, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 7, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	var l4 gopacket.SerializableLayer
	switch proto {
	case packet.ProtoTCP:
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Window: 65535}
		for _, c := range flags {
			switch c {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK, tcp.Ack = true, 5000
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			}
		}
		tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	case packet.ProtoUDP:
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decoded is what a test checks in a sent frame.
type decoded struct {
	srcMAC, dstMAC [6]byte
	src, dst       string
	sport, dport   uint16
	ttl            uint8
	rst, syn       bool
	icmpType       uint8
}

// decode parses a sent frame with gopacket and verifies every checksum against one computed
// from scratch by re-serialising the same layers.
func decode(t testing.TB, b []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("sent frame does not decode: %v", el.Error())
	}
	var d decoded
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	copy(d.srcMAC[:], eth.SrcMAC)
	copy(d.dstMAC[:], eth.DstMAC)
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		t.Fatalf("sent frame is not IPv4")
	}
	d.src, d.dst, d.ttl = ip.SrcIP.String(), ip.DstIP.String(), ip.TTL
	var h packet.Headers
	if r := packet.Parse(b, &h); r != packet.OK {
		t.Fatalf("sent frame fails packet.Parse: %v", r)
	}
	if r := packet.VerifyChecksums(b, &h); r != packet.OK {
		t.Fatalf("sent frame has a bad checksum: %v", r)
	}
	// Independent check with gopacket: re-serialise with computed checksums and compare.
	ipCopy := *ip
	want := gopacket.NewSerializeBuffer()
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		d.sport, d.dport, d.rst, d.syn = uint16(l.SrcPort), uint16(l.DstPort), l.RST, l.SYN
		c := *l
		c.SetNetworkLayerForChecksum(&ipCopy)
		if err := gopacket.SerializeLayers(want, gopacket.SerializeOptions{ComputeChecksums: true}, &ipCopy, &c, gopacket.Payload(l.Payload)); err != nil {
			t.Fatal(err)
		}
		got := want.Bytes()
		if sum := uint16(got[int(ip.IHL)*4+16])<<8 | uint16(got[int(ip.IHL)*4+17]); sum != l.Checksum {
			t.Fatalf("TCP checksum %#04x, gopacket computes %#04x", l.Checksum, sum)
		}
	case *layers.UDP:
		d.sport, d.dport = uint16(l.SrcPort), uint16(l.DstPort)
		c := *l
		c.SetNetworkLayerForChecksum(&ipCopy)
		if err := gopacket.SerializeLayers(want, gopacket.SerializeOptions{ComputeChecksums: true}, &ipCopy, &c, gopacket.Payload(l.Payload)); err != nil {
			t.Fatal(err)
		}
		got := want.Bytes()
		if sum := uint16(got[int(ip.IHL)*4+6])<<8 | uint16(got[int(ip.IHL)*4+7]); sum != l.Checksum {
			t.Fatalf("UDP checksum %#04x, gopacket computes %#04x", l.Checksum, sum)
		}
	}
	if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		d.icmpType = ic.TypeCode.Type()
	}
	if ipSum := ip.Checksum; true {
		c := ipCopy
		b2 := gopacket.NewSerializeBuffer()
		if err := c.SerializeTo(b2, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
			t.Fatal(err)
		}
		if c.Checksum != ipSum {
			t.Fatalf("IPv4 header checksum %#04x, gopacket computes %#04x", ipSum, c.Checksum)
		}
	}
	return d
}

func (r *rig) run(t testing.TB) {
	t.Helper()
	r.now += 1e6
	r.w.Poll(r.now)
}

func (r *rig) drops(reason Reason) uint64 { return r.w.c.drops[reason].Load() }

func TestLoadBalancerFlowIsFullyNATedBothWays(t *testing.T) {
	r := newRig(t, testManifests)
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	r.run(t)
	out := r.int.take()
	if len(out) != 1 {
		t.Fatalf("SYN: %d frames out of the cluster port, want 1 (drops %v)", len(out), dumpDrops(r.w))
	}
	d := decode(t, out[0])
	if d.src != "198.18.1.11" || d.sport < 61000 || (d.dst != "198.18.1.21" && d.dst != "198.18.1.22") || d.dport != 8080 || !d.syn {
		t.Fatalf("SYN translated to %+v", d)
	}
	if d.srcMAC != intMAC || d.dstMAC != backendMAC[d.dst] || d.ttl != 63 {
		t.Fatalf("SYN L2/TTL: %+v", d)
	}
	// The backend answers the SNAT address; the reply goes back to the client from the VIP.
	r.int.push(frame(t, backendMAC[d.dst], intMAC, d.dst, "198.18.1.11", packet.ProtoTCP, 8080, d.sport, "SA", nil))
	r.run(t)
	back := r.ext.take()
	if len(back) != 1 {
		t.Fatalf("SYN-ACK: %d frames to the client, want 1", len(back))
	}
	b := decode(t, back[0])
	if b.src != "198.19.1.1" || b.sport != 80 || b.dst != "198.18.0.100" || b.dport != 40000 || b.dstMAC != clientMAC || b.srcMAC != extMAC {
		t.Fatalf("SYN-ACK translated to %+v", b)
	}
	// Later packets of the flow reuse the same translation.
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", []byte("GET / HTTP/1.1\r\n\r\n")))
	r.run(t)
	again := r.int.take()
	if len(again) != 1 {
		t.Fatalf("ACK: %d frames, want 1", len(again))
	}
	if a := decode(t, again[0]); a.dst != d.dst || a.sport != d.sport {
		t.Fatalf("ACK took another translation: %+v vs %+v", a, d)
	}
	if got := r.dp.Conntrack().Len(); got != 1 {
		t.Fatalf("conntrack holds %d flows, want 1", got)
	}
}

func TestKubernetesRulesOnTheWire(t *testing.T) {
	cases := []struct {
		name     string
		fromPort string // ext or int
		srcMAC   [6]byte
		src, dst string
		proto    uint8
		dport    uint16
		flags    string
		wantOut  string // "int", "ext" (answered back), "" dropped
		wantDrop Reason
		check    func(t *testing.T, d decoded)
	}{
		{name: "clusterIP from inside the cluster is forwarded", fromPort: "int", srcMAC: clusterMAC, src: "198.18.1.50", dst: "198.19.0.10", proto: packet.ProtoTCP, dport: 80, flags: "S", wantOut: "int"},
		{name: "clusterIP from outside the cluster is dropped", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.0.10", proto: packet.ProtoTCP, dport: 80, flags: "S", wantDrop: ReasonOutsideCluster},
		{name: "nodePort on the external node address is forwarded", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.18.0.11", proto: packet.ProtoTCP, dport: 30080, flags: "S", wantOut: "int"},
		{name: "nodePort on the cluster-side node address is forwarded", fromPort: "int", srcMAC: clusterMAC, src: "198.18.1.50", dst: "198.18.1.11", proto: packet.ProtoTCP, dport: 30080, flags: "S", wantOut: "int"},
		{name: "udp to the VIP is forwarded to the echo port", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.1", proto: packet.ProtoUDP, dport: 9000, wantOut: "int",
			check: func(t *testing.T, d decoded) {
				if d.dport != 9000 || d.src != "198.18.1.11" {
					t.Errorf("udp translated to %+v", d)
				}
			}},
		{name: "tcp to a service without endpoints gets a RST", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.2", proto: packet.ProtoTCP, dport: 80, flags: "S", wantOut: "ext",
			check: func(t *testing.T, d decoded) {
				if !d.rst || d.src != "198.19.1.2" || d.dst != "198.18.0.100" || d.dstMAC != clientMAC {
					t.Errorf("reject is %+v, want a RST from the VIP to the client", d)
				}
			}},
		{name: "udp to a service without endpoints gets port unreachable", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.2", proto: packet.ProtoUDP, dport: 53, wantOut: "ext",
			check: func(t *testing.T, d decoded) {
				if d.icmpType != packet.ICMPDestUnreachable || d.src != "198.19.1.2" {
					t.Errorf("reject is %+v, want ICMP unreachable from the VIP", d)
				}
			}},
		{name: "loadBalancerSourceRanges refuses other sources", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.3", proto: packet.ProtoTCP, dport: 80, flags: "S", wantDrop: ReasonSourceRange},
		{name: "loadBalancerSourceRanges admits listed sources", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.200", dst: "198.19.1.3", proto: packet.ProtoTCP, dport: 80, flags: "S", wantOut: "int"},
		{name: "a port no service serves is dropped", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.1", proto: packet.ProtoTCP, dport: 81, flags: "S", wantDrop: ReasonNoFrontend},
		{name: "a mid-stream segment without a flow is picked up loosely (nf_conntrack_tcp_loose)", fromPort: "ext", srcMAC: clientMAC, src: "198.18.0.100", dst: "198.19.1.1", proto: packet.ProtoTCP, dport: 80, flags: "A", wantOut: "int"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testManifests)
			in := r.ext
			if tc.fromPort == "int" {
				in = r.int
			}
			dstMAC := extMAC
			if tc.fromPort == "int" {
				dstMAC = intMAC
			}
			in.push(frame(t, tc.srcMAC, dstMAC, tc.src, tc.dst, tc.proto, 41000, tc.dport, tc.flags, []byte("x")))
			r.run(t)
			extOut, intOut := r.ext.take(), r.int.take()
			switch tc.wantOut {
			case "":
				if len(extOut)+len(intOut) != 0 {
					t.Fatalf("frame was sent, want a drop")
				}
				if r.drops(tc.wantDrop) != 1 {
					t.Fatalf("drop %v counted %d times, want 1 (all: %v)", tc.wantDrop, r.drops(tc.wantDrop), dumpDrops(r.w))
				}
			case "int":
				if len(intOut) != 1 || len(extOut) != 0 {
					t.Fatalf("sent %d on int, %d on ext; want 1 on int (drops %v)", len(intOut), len(extOut), dumpDrops(r.w))
				}
				d := decode(t, intOut[0])
				if tc.check != nil {
					tc.check(t, d)
				}
			case "ext":
				if len(extOut) != 1 || len(intOut) != 0 {
					t.Fatalf("sent %d on ext, %d on int; want 1 on ext (drops %v)", len(extOut), len(intOut), dumpDrops(r.w))
				}
				d := decode(t, extOut[0])
				if tc.check != nil {
					tc.check(t, d)
				}
			}
			if r.ext.held != 0 || r.int.held != 0 {
				t.Fatalf("frames leaked: ext %d, int %d still held", r.ext.held, r.int.held)
			}
		})
	}
}

func TestConnectionsSpreadOverReadyEndpointsOnly(t *testing.T) {
	r := newRig(t, testManifests)
	count := map[string]int{}
	for i := range 3000 {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(20000+i), 80, "S", nil))
		if len(r.ext.rx) == BatchSize {
			r.run(t)
		}
	}
	r.run(t)
	for _, f := range r.int.take() {
		count[decode(t, f).dst]++
	}
	if count["198.18.1.23"] != 0 {
		t.Fatalf("unready endpoint got %d flows", count["198.18.1.23"])
	}
	a, b := count["198.18.1.21"], count["198.18.1.22"]
	if a+b != 3000 || a < 1300 || b < 1300 {
		t.Fatalf("flows per backend %v, want about 1500 each", count)
	}
}

func TestReloadRemovingABackendResetsItsFlowsAndKeepsOthers(t *testing.T) {
	r := newRig(t, testManifests)
	backendOf := map[uint16]string{}
	for i := range 40 {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(30000+i), 80, "S", nil))
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoUDP, uint16(30000+i), 9000, "", nil))
	}
	r.run(t)
	r.run(t)
	for _, f := range r.int.take() {
		d := decode(t, f)
		if d.dport == 8080 {
			backendOf[uint16(d.sport)] = d.dst
		}
	}
	// Remove 198.18.1.22 from the EndpointSlice.
	reloaded := replaceOnce(testManifests, "  - addresses: [198.18.1.22]\n", "")
	if _, err := r.dp.Apply(buildSnapshot(t, reloaded)); err != nil {
		t.Fatal(err)
	}
	resets, kept, udpMoved := 0, 0, 0
	for i := range 40 {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(30000+i), 80, "A", []byte("data")))
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoUDP, uint16(30000+i), 9000, "", []byte("ping")))
	}
	r.run(t)
	r.run(t)
	for _, f := range r.ext.take() {
		if d := decode(t, f); d.rst {
			resets++
		}
	}
	for _, f := range r.int.take() {
		d := decode(t, f)
		switch {
		case d.dst == "198.18.1.22":
			t.Fatalf("a packet still went to the removed backend: %+v", d)
		case d.dport == 8080:
			kept++
		case d.dport == 9000:
			udpMoved++
		}
	}
	if resets == 0 || kept == 0 || resets+kept != 40 {
		t.Fatalf("after removing one of two backends: %d TCP flows reset, %d kept; want both > 0, summing to 40", resets, kept)
	}
	if udpMoved != 40 {
		t.Fatalf("%d of 40 UDP datagrams forwarded after the reload, want all (re-balanced)", udpMoved)
	}
}

func TestARPAndEchoForHeldVIP(t *testing.T) {
	r := newRig(t, testManifests)
	var arp [64]byte
	n, err := packet.BuildARPRequest(arp[:], clientMAC, [4]byte{198, 18, 0, 100}, [4]byte{198, 19, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	r.ext.push(append([]byte(nil), arp[:n]...))
	n2, _ := packet.BuildARPRequest(arp[:], clientMAC, [4]byte{198, 18, 0, 100}, [4]byte{198, 19, 1, 9})
	other := append([]byte(nil), arp[:n2]...)
	r.ext.push(other)
	r.run(t)
	out := r.ext.take()
	if len(out) != 1 {
		for i := range r.w.c.drops {
			if v := r.w.c.drops[i].Load(); v > 0 {
				t.Logf("drop %v: %d", Reason(i), v)
			}
		}
		t.Fatalf("%d ARP answers, want 1 (only the held VIP)", len(out))
	}
	p := gopacket.NewPacket(out[0], layers.LayerTypeEthernet, gopacket.Default)
	a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || a.Operation != layers.ARPReply || net.IP(a.SourceProtAddress).String() != "198.19.1.1" || [6]byte(a.SourceHwAddress) != extMAC {
		t.Fatalf("ARP answer %+v", a)
	}
}

func TestHitPathDoesNotAllocate(t *testing.T) {
	r := newRig(t, testManifests)
	syn := frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil)
	ack := frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", make([]byte, 10))
	r.ext.push(syn)
	r.run(t)
	r.int.take()
	bc := batchContext{plan: r.dp.plan.Load(), now: r.now}
	buf := make([]byte, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		n := copy(buf, ack)
		r.w.process(&bc, 0, buf[:n])
	})
	if allocs != 0 {
		t.Fatalf("conntrack hit allocates %.1f times per packet", allocs)
	}
	port := uint16(1)
	allocs = testing.AllocsPerRun(1000, func() {
		port++
		f := frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoUDP, port, 9000, "", nil)
		_ = f
	})
	_ = allocs // frame building allocates; the miss path is measured by BenchmarkPipeline.
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

var _ = conntrack.DirOriginal

func dumpDrops(w *Worker) map[string]uint64 {
	out := map[string]uint64{}
	for i := range w.c.drops {
		if v := w.c.drops[i].Load(); v > 0 {
			out[Reason(i).String()] = v
		}
	}
	return out
}

func TestSYNReusingAClosedFlowsTupleOpensANewFlow(t *testing.T) {
	r := newRig(t, testManifests)
	send := func(from *fakeIO, b []byte) [][]byte {
		from.push(b)
		r.run(t)
		return append(r.int.take(), r.ext.take()...)
	}
	out := send(r.ext, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	first := decode(t, out[0])
	// Handshake and close both ways into TIME_WAIT.
	send(r.int, frame(t, backendMAC[first.dst], intMAC, first.dst, "198.18.1.11", packet.ProtoTCP, 8080, first.sport, "SA", nil))
	send(r.ext, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", nil))
	send(r.ext, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "FA", nil))
	send(r.int, frame(t, backendMAC[first.dst], intMAC, first.dst, "198.18.1.11", packet.ProtoTCP, 8080, first.sport, "FA", nil))
	send(r.ext, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", nil))
	// Remove the backend the old connection used: a new SYN on the same client port must open a
	// new flow to the remaining backend rather than be reset as a packet of the old one.
	var keep string
	for ip := range backendMAC {
		if ip != first.dst && ip != "198.18.1.23" {
			keep = ip
		}
	}
	m := replaceOnce(testManifests, "  - addresses: ["+first.dst+"]\n", "")
	if _, err := r.dp.Apply(buildSnapshot(t, m)); err != nil {
		t.Fatal(err)
	}
	out = send(r.ext, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	if len(out) != 1 {
		t.Fatalf("reused-port SYN: %d frames out (drops %v)", len(out), dumpDrops(r.w))
	}
	if d := decode(t, out[0]); !d.syn || d.rst || d.dst != keep {
		t.Fatalf("reused-port SYN became %+v, want a SYN to %s", d, keep)
	}
}

func TestICMPErrorAboutATranslatedFlowReachesTheClient(t *testing.T) {
	r := newRig(t, testManifests)
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoUDP, 41000, 9000, "", []byte("hi")))
	r.run(t)
	out := r.int.take()
	if len(out) != 1 {
		t.Fatalf("udp: %d frames", len(out))
	}
	sent := decode(t, out[0])
	// The backend answers the translated datagram with ICMP port unreachable to the SNAT address.
	var h packet.Headers
	if rr := packet.Parse(out[0], &h); rr != packet.OK {
		t.Fatal(rr)
	}
	// Build it as the backend would: swap the frame's direction first.
	errFrame := make([]byte, 256)
	n, err := packet.BuildPortUnreachable4(errFrame, out[0], &h)
	if err != nil {
		t.Fatal(err)
	}
	errFrame = errFrame[:n]
	copy(errFrame[0:6], intMAC[:])
	bm := backendMAC[sent.dst]
	copy(errFrame[6:12], bm[:])
	r.int.push(errFrame)
	r.run(t)
	back := r.ext.take()
	if len(back) != 1 {
		t.Fatalf("ICMP error: %d frames to the client (drops %v)", len(back), dumpDrops(r.w))
	}
	p := gopacket.NewPacket(back[0], layers.LayerTypeEthernet, gopacket.Default)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || ic.TypeCode.Type() != layers.ICMPv4TypeDestinationUnreachable {
		t.Fatalf("client got %v", p)
	}
	if ip.DstIP.String() != "198.18.0.100" || ip.SrcIP.String() != "198.19.1.1" {
		t.Fatalf("outer %s -> %s, want 198.19.1.1 -> 198.18.0.100", ip.SrcIP, ip.DstIP)
	}
	// The quoted datagram is the client's own, as it sent it: client -> VIP:9000.
	var hb packet.Headers
	if rr := packet.Parse(back[0], &hb); rr != packet.OK || !hb.Inner.Valid {
		t.Fatalf("parse translated error: %v", rr)
	}
	if rr := packet.VerifyChecksums(back[0], &hb); rr != packet.OK {
		t.Fatalf("translated error has a bad checksum: %v", rr)
	}
	in := hb.Inner.Key
	if in.SrcAddr4() != [4]byte{198, 18, 0, 100} || in.SrcPort != 41000 || in.DstAddr4() != [4]byte{198, 19, 1, 1} || in.DstPort != 9000 {
		t.Fatalf("quoted packet %+v, want the client's datagram to the VIP", in)
	}
}

func TestEchoToHeldVIPAndClusterIP(t *testing.T) {
	r := newRig(t, testManifests)
	ping := func(srcMAC [6]byte, src, dst string) []byte {
		eth := &layers.Ethernet{SrcMAC: srcMAC[:], DstMAC: extMAC[:], EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, ic, gopacket.Payload("ping")); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	cases := []struct {
		name     string
		src, dst string
		answered bool
		cluster  bool // sent on the cluster-role port
	}{
		{"echo to a held VIP is answered", "198.18.0.100", "198.19.1.1", true, false},
		{"echo to a ClusterIP from inside the cluster is answered", "198.18.1.50", "198.19.0.10", true, true},
		{"echo to a ClusterIP from outside is dropped", "198.18.0.100", "198.19.0.10", false, false},
		{"echo to a ClusterIP from a cluster source on the external port is dropped", "198.18.1.50", "198.19.0.10", false, false},
	}
	for _, tc := range cases {
		io := r.ext
		if tc.cluster {
			io = r.int
		}
		io.push(ping(clientMAC, tc.src, tc.dst))
		r.run(t)
		out := io.take()
		if got := len(out) == 1; got != tc.answered {
			t.Fatalf("%s: %d answers", tc.name, len(out))
		}
		if tc.answered {
			p := gopacket.NewPacket(out[0], layers.LayerTypeEthernet, gopacket.Default)
			ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if !ok || ic.TypeCode.Type() != layers.ICMPv4TypeEchoReply || ip.SrcIP.String() != tc.dst || ip.DstIP.String() != tc.src {
				t.Fatalf("%s: answer %v", tc.name, p)
			}
		}
	}
}

func TestFloatingSNATUsesTheVIPForLoadBalancerFlowsOnly(t *testing.T) {
	r := newRig(t, testManifests)
	r.dp.cfg.FloatingSNAT = true
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	r.int.push(frame(t, clusterMAC, intMAC, "198.18.1.50", "198.19.0.10", packet.ProtoTCP, 40001, 80, "S", nil))
	r.run(t)
	out := r.int.take()
	if len(out) != 2 {
		t.Fatalf("%d frames out, want 2", len(out))
	}
	vip, cip := decode(t, out[0]), decode(t, out[1])
	if vip.src != "198.19.1.1" {
		t.Fatalf("LoadBalancer flow SNATed to %s, want the VIP", vip.src)
	}
	if cip.src != "198.18.1.11" {
		t.Fatalf("ClusterIP flow SNATed to %s, want the node's cluster address", cip.src)
	}
	// The backend's reply to the VIP goes back to the client.
	r.int.push(frame(t, backendMAC[vip.dst], intMAC, vip.dst, "198.19.1.1", packet.ProtoTCP, 8080, vip.sport, "SA", nil))
	r.run(t)
	back := r.ext.take()
	if len(back) != 1 {
		t.Fatalf("reply: %d frames", len(back))
	}
	if b := decode(t, back[0]); b.src != "198.19.1.1" || b.sport != 80 || b.dst != "198.18.0.100" || b.dport != 40000 {
		t.Fatalf("reply translated to %+v", b)
	}
}

func TestEndpointWithoutRouteIsLeftOutNotFatal(t *testing.T) {
	r := newRig(t, testManifests)
	m := replaceOnce(testManifests, "  - addresses: [198.18.1.22]\n", "  - addresses: [198.18.1.22]\n  - addresses: [198.19.200.9]\n")
	plan, err := r.dp.Apply(buildSnapshot(t, m))
	if err != nil {
		t.Fatalf("one unroutable endpoint failed the whole plan: %v", err)
	}
	if len(plan.Warnings) != 2 {
		t.Fatalf("warnings %v, want one per Service port about 198.19.200.9", plan.Warnings)
	}
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	r.run(t)
	if out := r.int.take(); len(out) != 1 {
		t.Fatalf("service with one unroutable endpoint no longer served: %d frames", len(out))
	}
}

// fakeNeighbors is a NeighborSource whose answers a test changes.
type fakeNeighbors struct {
	mac [6]byte
	gen uint64
}

func (f *fakeNeighbors) Lookup(netip.Addr) ([6]byte, bool) { return f.mac, true }
func (f *fakeNeighbors) Probe(netip.Addr)                  {}
func (f *fakeNeighbors) Generation() uint64                { return f.gen }

func TestNeighbourMACChangeReachesTheWorkerCache(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Conntrack.MaxEntries, cfg.Conntrack.MaxEntriesIPv6, cfg.Conntrack.HashSeed = 1<<12, 0, 1
	cfg.MaxServicePorts, cfg.FloatingSNAT = 64, false
	cfg.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}
	nb := &fakeNeighbors{mac: [6]byte{2, 0, 0, 0, 9, 1}}
	cfg.Neighbors = nb
	cfg.Ports = []Port{
		{Name: "ext0", MAC: extMAC, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}, Role: RoleExternal},
		{Name: "int0", MAC: intMAC, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24")}, Role: RoleCluster},
	}
	dp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.Apply(buildSnapshot(t, testManifests)); err != nil {
		t.Fatal(err)
	}
	ext, int0 := &fakeIO{}, &fakeIO{}
	w, err := dp.AddWorker(0, []FrameIO{ext, int0})
	if err != nil {
		t.Fatal(err)
	}
	send := func(now int64) decoded {
		ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoUDP, 41000, 9000, "", nil))
		w.Poll(now)
		out := int0.take()
		if len(out) != 1 {
			t.Fatalf("%d frames out", len(out))
		}
		return decode(t, out[0])
	}
	if d := send(1e12); d.dstMAC != nb.mac {
		t.Fatalf("first packet to %x, want %x", d.dstMAC, nb.mac)
	}
	nb.mac, nb.gen = [6]byte{2, 0, 0, 0, 9, 2}, 1 // the backend's MAC changed in the kernel's table
	if d := send(2e12); d.dstMAC != nb.mac {
		t.Fatalf("after the MAC change the packet went to %x, want %x", d.dstMAC, nb.mac)
	}
}

// TestVIPConflictReported checks that another MAC answering for a held VIP (an ARP reply or a
// gratuitous ARP in either form) is reported on Conflicts and not answered, that our own
// gratuitous ARP and ARP about VIPs we don't hold are not conflicts, and that the report path
// does not allocate.
func TestVIPConflictReported(t *testing.T) {
	r := newRig(t, testManifests)
	other := [6]byte{2, 0xee, 0, 0, 0, 7}
	vip, notHeld := [4]byte{198, 19, 1, 1}, [4]byte{198, 19, 1, 9}
	var b [64]byte
	push := func(mac [6]byte, ip [4]byte, reply bool) {
		n, err := packet.BuildGratuitousARP(b[:], mac, ip, reply)
		if err != nil {
			t.Fatal(err)
		}
		r.ext.push(append([]byte(nil), b[:n]...))
	}
	push(other, vip, true)     // conflict: reply form
	push(other, vip, false)    // conflict: request form
	push(extMAC, vip, false)   // our own announcement: not a conflict
	push(other, notHeld, true) // a VIP we don't hold: not ours to judge
	r.run(t)
	if out := r.ext.take(); len(out) != 0 {
		t.Fatalf("answered %d conflicting ARP frames", len(out))
	}
	var got []VIPConflict
	for len(r.dp.Conflicts()) > 0 {
		got = append(got, <-r.dp.Conflicts())
	}
	want := VIPConflict{VIP: netip.AddrFrom4(vip), MAC: other, Port: 0}
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Fatalf("conflicts %+v, want 2 × %+v", got, want)
	}
	if c := r.w.c.drops[ReasonVIPConflict].Load(); c != 2 {
		t.Fatalf("vip_conflict drops %d, want 2", c)
	}
	n, _ := packet.BuildGratuitousARP(b[:], other, vip, true)
	frame := append([]byte(nil), b[:n]...)
	bc := batchContext{plan: r.dp.plan.Load(), now: r.now}
	buf := make([]byte, 2048)
	allocs := testing.AllocsPerRun(200, func() {
		k := copy(buf, frame)
		r.w.process(&bc, 0, buf[:k])
		select {
		case <-r.dp.Conflicts():
		default:
		}
	})
	if allocs != 0 {
		t.Fatalf("conflict path allocates %.1f per frame", allocs)
	}
}
