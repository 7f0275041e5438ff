package dataplane

import (
	"net/netip"
	"testing"

	"github.com/xdpsvc/lb/packet"
)

// The tests of this file send what a hostile host on the client network can send, and check
// that the data plane does not trust it.

var attackerMAC = [6]byte{0x02, 0xba, 0xd0, 0, 0, 0x66}

// openFlow sends a client's SYN to the VIP and returns the translated SYN as the backend saw it.
func openFlow(t *testing.T, r *rig, sport uint16) ([]byte, decoded) {
	t.Helper()
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, sport, 80, "S", nil))
	r.run(t)
	out := r.int.take()
	if len(out) != 1 {
		t.Fatalf("SYN: %d frames to the backend (drops %v)", len(out), dumpDrops(r.w))
	}
	return out[0], decode(t, out[0])
}

// TestSpoofedSYNDoesNotHijackABackendsMAC: a SYN from the client network with a backend's
// address as source used to teach the data plane the attacker's MAC for that backend, so every
// later packet to the backend went to the attacker. Failed before learning was scoped.
//
// Backends inside clusterCIDRs: the spoofed SYNs are refused outright (a cluster source on an
// external port, wrong_port). Backends outside clusterCIDRs (routed ones): the SYNs open flows,
// but no MAC is learned for a backend's address.
func TestSpoofedSYNDoesNotHijackABackendsMAC(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cidr      string
		wrongPort uint64
	}{
		{"backends in clusterCIDRs", "198.18.1.0/24", 2},
		{"backends outside clusterCIDRs", "198.18.2.0/24", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, testManifests, func(c *Config) { c.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix(tc.cidr)} })
			for _, b := range []string{"198.18.1.21", "198.18.1.22"} {
				r.ext.push(frame(t, attackerMAC, extMAC, b, "198.19.1.1", packet.ProtoTCP, 50000, 80, "S", nil))
			}
			r.run(t)
			r.int.take()
			if got := r.drops(ReasonWrongPort); got != tc.wrongPort {
				t.Fatalf("wrong_port %d, want %d", got, tc.wrongPort)
			}
			// Not even for frames out of the port the SYN came in on.
			r.dp.l2.mu.RLock()
			for _, e := range r.dp.l2.learned {
				if e.mac == attackerMAC {
					t.Errorf("learned %x for %#x", e.mac, e.ip)
				}
			}
			r.dp.l2.mu.RUnlock()
			for sport := uint16(40000); sport < 40016; sport++ {
				_, d := openFlow(t, r, sport)
				if d.dstMAC != backendMAC[d.dst] {
					t.Fatalf("flow to backend %s sent to MAC %x, want %x", d.dst, d.dstMAC, backendMAC[d.dst])
				}
			}
		})
	}
}

// TestLearnedClientMACIsScopedAndAged: a client's MAC learned from its SYN on the external port
// serves its replies there, is not used after the learned-MAC age, and the kernel's neighbour
// table wins over it.
func TestLearnedClientMACIsScopedAndAged(t *testing.T) {
	r := newRig(t, testManifests)
	_, d := openFlow(t, r, 40000)
	reply := func(flags string) []decoded {
		r.int.push(frame(t, backendMAC[d.dst], intMAC, d.dst, "198.18.1.11", packet.ProtoTCP, 8080, d.sport, flags, nil))
		r.run(t)
		var ds []decoded
		for _, b := range r.ext.take() {
			ds = append(ds, decode(t, b))
		}
		return ds
	}
	if got := reply("SA"); len(got) != 1 || got[0].dstMAC != clientMAC {
		t.Fatalf("reply to the client: %+v, want one to the learned MAC", got)
	}
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "A", nil))
	r.run(t)
	if out := r.int.take(); len(out) != 1 {
		t.Fatalf("client's ACK: %d frames", len(out))
	}
	// Past the age the learned MAC is not used (and the flow is still alive: the established
	// timeout is far longer).
	r.now += int64(DefaultLearnedMACMaxAge) + 1e9
	if got := reply("A"); len(got) != 0 || r.drops(ReasonNoNeighbour) == 0 {
		t.Fatalf("after the learned MAC aged out: %d frames, no_neighbour %d", len(got), r.drops(ReasonNoNeighbour))
	}
	// A learned entry is not used for another port.
	if _, _, ok := r.dp.l2.lookup(0xc6120064, 1, r.now); ok {
		t.Fatal("learned entry (or none) answered for the cluster port")
	}
	// With a neighbour source, its answer wins over a learned MAC.
	nb := &fakeNeighbors{mac: [6]byte{2, 0, 0, 0, 9, 9}}
	r2 := newRig(t, testManifests, func(c *Config) { c.Neighbors = nb })
	_, d2 := openFlow(t, r2, 40001)
	r2.int.push(frame(t, backendMAC[d2.dst], intMAC, d2.dst, "198.18.1.11", packet.ProtoTCP, 8080, d2.sport, "SA", nil))
	r2.run(t)
	out := r2.ext.take()
	if len(out) != 1 || decode(t, out[0]).dstMAC != nb.mac {
		t.Fatalf("reply with a neighbour source: %d frames", len(out))
	}
	// A client whose MAC changes (a new gateway) gets its replies at the new MAC once a new
	// flow of its has taught it, also for its older flows (the workers' caches are dropped).
	r3 := newRig(t, testManifests)
	_, d3 := openFlow(t, r3, 40002)
	r3.int.push(frame(t, backendMAC[d3.dst], intMAC, d3.dst, "198.18.1.11", packet.ProtoTCP, 8080, d3.sport, "SA", nil))
	r3.run(t)
	if out := r3.ext.take(); len(out) != 1 || decode(t, out[0]).dstMAC != clientMAC {
		t.Fatalf("SYN-ACK before the client's MAC changed: %d frames", len(out))
	}
	newMAC := [6]byte{0x02, 0, 0, 0, 0, 0x65}
	r3.ext.push(frame(t, newMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40003, 80, "S", nil))
	r3.run(t)
	r3.int.take()
	r3.int.push(frame(t, backendMAC[d3.dst], intMAC, d3.dst, "198.18.1.11", packet.ProtoTCP, 8080, d3.sport, "A", nil))
	r3.run(t)
	if out := r3.ext.take(); len(out) != 1 || decode(t, out[0]).dstMAC != newMAC {
		t.Fatalf("reply after the client's MAC changed: %d frames", len(out))
	}
}

// TestClusterSourceFromTheClientNetworkIsDropped: a ClusterIP answered any port whose frame had
// a source in clusterCIDRs. Failed before ports' roles were enforced.
func TestClusterSourceFromTheClientNetworkIsDropped(t *testing.T) {
	r := newRig(t, testManifests)
	r.ext.push(frame(t, attackerMAC, extMAC, "198.18.1.50", "198.19.0.10", packet.ProtoTCP, 40000, 80, "S", nil))
	r.run(t)
	if out := r.int.take(); len(out) != 0 {
		t.Fatalf("spoofed cluster source reached the ClusterIP: %d frames", len(out))
	}
	if r.drops(ReasonWrongPort) != 1 {
		t.Fatalf("wrong_port %d, want 1 (drops %v)", r.drops(ReasonWrongPort), dumpDrops(r.w))
	}
}

// TestFlowDirectionsOnlyFromTheirPorts: a frame with a flow's reply tuple (a RST, say) sent from
// the client network used to pass and close the flow, and an ICMP error quoting the backend side
// sent from the client network was relayed to the backend. Failed before each direction was tied
// to its port.
func TestFlowDirectionsOnlyFromTheirPorts(t *testing.T) {
	r := newRig(t, testManifests)
	syn, d := openFlow(t, r, 40000)
	// A spoofed RST from the backend's address, on the client port.
	r.ext.push(frame(t, attackerMAC, extMAC, d.dst, "198.18.1.11", packet.ProtoTCP, 8080, d.sport, "R", nil))
	// A spoofed client segment on the cluster port.
	r.int.push(frame(t, attackerMAC, intMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "R", nil))
	// An ICMP error quoting the translated SYN (SNAT -> backend), sent from the client side.
	var h packet.Headers
	if rr := packet.Parse(syn, &h); rr != packet.OK {
		t.Fatal(rr)
	}
	errFrame := make([]byte, 256)
	n, err := packet.BuildPortUnreachable4(errFrame, syn, &h)
	if err != nil {
		t.Fatal(err)
	}
	errFrame = errFrame[:n]
	copy(errFrame[0:6], extMAC[:])
	copy(errFrame[6:12], attackerMAC[:])
	r.ext.push(errFrame)
	r.run(t)
	if out := append(r.int.take(), r.ext.take()...); len(out) != 0 {
		t.Fatalf("%d spoofed frames passed", len(out))
	}
	if got := r.drops(ReasonWrongPort); got != 3 {
		t.Fatalf("wrong_port %d, want 3 (drops %v)", got, dumpDrops(r.w))
	}
	// The flow is untouched: the backend's SYN-ACK still reaches the client.
	r.int.push(frame(t, backendMAC[d.dst], intMAC, d.dst, "198.18.1.11", packet.ProtoTCP, 8080, d.sport, "SA", nil))
	r.run(t)
	if out := r.ext.take(); len(out) != 1 {
		t.Fatalf("SYN-ACK after the spoofed frames: %d frames (drops %v)", len(out), dumpDrops(r.w))
	}
}

// TestMartianSourcesOpenNoFlow: sources no client can have open no flow. Failed before the
// martian check.
func TestMartianSourcesOpenNoFlow(t *testing.T) {
	r := newRig(t, testManifests)
	srcs := []string{"0.1.2.3", "127.0.0.1", "224.0.0.5", "255.255.255.255", "240.0.0.1",
		"198.18.0.11", "198.18.1.11", "198.19.1.1", "198.19.0.10"}
	for i, s := range srcs {
		r.ext.push(frame(t, attackerMAC, extMAC, s, "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "S", nil))
	}
	r.run(t)
	if out := append(r.int.take(), r.ext.take()...); len(out) != 0 {
		t.Fatalf("%d frames from martian sources passed", len(out))
	}
	if got := r.drops(ReasonMartianSource); got != uint64(len(srcs)) {
		t.Fatalf("martian_source %d, want %d (drops %v)", got, len(srcs), dumpDrops(r.w))
	}
	if n := r.dp.Conntrack().Len(); n != 0 {
		t.Fatalf("%d flows opened", n)
	}
}

// TestLocalRepliesAreRateLimited: a flood of SYNs to a port without endpoints gets at most the
// burst of RSTs at once, and a flood of ARP requests the same. Failed before the limiter was
// wired in.
func TestLocalRepliesAreRateLimited(t *testing.T) {
	r := newRig(t, testManifests, func(c *Config) { c.LocalRepliesPerSecond, c.LocalReplyBurst = 100, 10 })
	for i := range 100 {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.2", packet.ProtoTCP, uint16(40000+i), 80, "S", nil))
	}
	r.run(t)
	if out := r.ext.take(); len(out) != 10 {
		t.Fatalf("%d RSTs for 100 SYNs, want the burst of 10", len(out))
	}
	if got := r.drops(ReasonLocalReplyLimit); got != 90 {
		t.Fatalf("local_reply_limit %d, want 90", got)
	}
	// A tenth of a second later the bucket holds 10 tokens again, no more.
	r.now += 1e8
	var b [64]byte
	for range 20 {
		n, err := packet.BuildARPRequest(b[:], clientMAC, [4]byte{198, 18, 0, 100}, [4]byte{198, 19, 1, 1})
		if err != nil {
			t.Fatal(err)
		}
		r.ext.push(append([]byte(nil), b[:n]...))
	}
	r.w.Poll(r.now)
	if out := r.ext.take(); len(out) != 10 {
		t.Fatalf("%d ARP replies for 20 requests, want 10", len(out))
	}
}

// TestNewFlowsPerSourceAreLimited: one source cannot open flows faster than its allowance.
func TestNewFlowsPerSourceAreLimited(t *testing.T) {
	r := newRig(t, testManifests, func(c *Config) { c.NewFlowsPerSourcePerSecond, c.NewFlowsPerSourceBurst = 1, 3 })
	for i := range 10 {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "S", nil))
	}
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.101", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	r.run(t)
	if out := r.int.take(); len(out) != 4 {
		t.Fatalf("%d SYNs passed, want 3 of the flooding source and 1 of another", len(out))
	}
	if got := r.drops(ReasonSourceLimit); got != 7 {
		t.Fatalf("source_limit %d, want 7", got)
	}
}
