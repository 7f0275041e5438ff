package pktgen_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/pktgen"
	"github.com/xdpsvc/lb/bench/sink"
)

// testLab is one external client (c1, 198.18.0.100) and one node (n1, ext0 198.18.0.11) on the external
// segment: the generator sends from c1, the sink counts on n1's ext0.
func testLab(t *testing.T) *lab.Lab {
	t.Helper()
	return lab.New(t, lab.Spec{Nodes: 1, Clients: 1})
}

// attachSink attaches a counting sink to n's interface ifc and closes it at cleanup.
func attachSink(t *testing.T, n *lab.NS, ifc string, f sink.Filter) *sink.Sink {
	t.Helper()
	var s *sink.Sink
	err := n.Do(func() error {
		l, err := netlink.LinkByName(ifc)
		if err != nil {
			return err
		}
		s, err = sink.Attach(l.Attrs().Index, f)
		return err
	})
	if err != nil {
		t.Fatalf("attach sink in %s: %v", n.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t *testing.T, n *lab.NS, cfg pktgen.Config) pktgen.Result {
	t.Helper()
	var res pktgen.Result
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := n.Do(func() error {
		var err error
		res, err = pktgen.Run(ctx, cfg)
		return err
	})
	if err != nil {
		t.Fatalf("pktgen in %s: %v", n.Name, err)
	}
	t.Logf("pktgen: submitted %d sent %d failed %d in %v (%.0f pps offered), stopped by %s, %d kicks (%d retried), dst MAC %s",
		res.Submitted, res.Sent, res.Failed, res.Elapsed, res.OfferedPPS, res.StoppedBy, res.Kicks, res.KickRetries, res.DstMAC)
	return res
}

// waitCounts waits (bounded) until the sink's count stops changing, and returns it.
func waitCounts(t *testing.T, s *sink.Sink) (pkts, bytes uint64) {
	t.Helper()
	pkts, bytes, err := s.Settled()
	if err != nil {
		t.Fatal(err)
	}
	return pkts, bytes
}

func udpConfig(dst netip.Addr, port uint16) pktgen.Config {
	c := pktgen.DefaultConfig()
	c.DstPrefix = netip.PrefixFrom(dst, 32)
	c.DstPorts = pktgen.PortRange{First: port}
	return c
}

// TestSendToSink sends 20k frames of 1000 UDP flows from c1 to n1, where the sink counts them.
func TestSendToSink(t *testing.T) {
	l := testLab(t)
	node, client := l.Nodes[0], l.Clients[0]
	ext := node.External()
	s := attachSink(t, node, ext.Name, sink.Filter{Proto: sink.ProtoUDP, DstPort: 9000})

	cfg := udpConfig(ext.Addr.Addr(), 9000)
	cfg.Flows = 1000
	cfg.MaxPackets = 20_000
	cfg.MaxDuration = 5 * time.Second
	res := run(t, client, cfg)
	if res.DstMAC != ext.MAC.String() {
		t.Errorf("resolved destination MAC %s, want n1 ext0's %s", res.DstMAC, ext.MAC)
	}
	if res.Submitted != cfg.MaxPackets || res.StoppedBy != pktgen.StoppedByCount {
		t.Errorf("submitted %d stopped by %s, want %d by count", res.Submitted, res.StoppedBy, cfg.MaxPackets)
	}
	if res.Sent != res.Submitted || res.Undrained != 0 || res.InvalidDescs != 0 {
		t.Errorf("sent %d of %d submitted, %d undrained, %d invalid descriptors", res.Sent, res.Submitted, res.Undrained, res.InvalidDescs)
	}
	pkts, bytes := waitCounts(t, s)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	offered := res.Sent - res.Failed
	t.Logf("sink: received %d frames (%d bytes), %.1f%% of %d offered; %d frames passed to the kernel",
		pkts, bytes, 100*float64(pkts)/float64(offered), offered, st.PassedPackets)
	if pkts*2 <= res.Sent {
		t.Errorf("sink received %d of %d frames, want more than half", pkts, res.Sent)
	}
	if pkts > res.Sent {
		t.Errorf("sink received %d frames, more than the %d sent", pkts, res.Sent)
	}
	if pkts > 0 && bytes != pkts*uint64(res.FrameLen) {
		t.Errorf("sink counted %d bytes for %d frames, want %d each", bytes, pkts, res.FrameLen)
	}
}

// TestBounds checks that a run stops at its packet count and at its duration, whichever comes first.
func TestBounds(t *testing.T) {
	l := testLab(t)
	node, client := l.Nodes[0], l.Clients[0]
	ext := node.External()
	attachSink(t, node, ext.Name, sink.Filter{Proto: sink.ProtoUDP, DstPort: 9000})
	tests := []struct {
		name        string
		maxPackets  uint64
		maxDuration time.Duration
		want        string
	}{
		{"count", 1000, 10 * time.Second, pktgen.StoppedByCount},
		{"duration", 1 << 40, 300 * time.Millisecond, pktgen.StoppedByDuration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := udpConfig(ext.Addr.Addr(), 9000)
			cfg.DstMAC = ext.MAC
			cfg.MaxPackets, cfg.MaxDuration = tc.maxPackets, tc.maxDuration
			start := time.Now()
			res := run(t, client, cfg)
			took := time.Since(start)
			if res.StoppedBy != tc.want {
				t.Errorf("stopped by %s, want %s", res.StoppedBy, tc.want)
			}
			if res.Submitted > tc.maxPackets {
				t.Errorf("submitted %d, more than %d", res.Submitted, tc.maxPackets)
			}
			if tc.want == pktgen.StoppedByCount && (res.Submitted != tc.maxPackets || res.Sent != tc.maxPackets) {
				t.Errorf("submitted %d sent %d, want %d", res.Submitted, res.Sent, tc.maxPackets)
			}
			if limit := tc.maxDuration + cfg.DrainTimeout + 2*time.Second; took > limit {
				t.Errorf("run took %v, more than %v", took, limit)
			}
			if tc.want == pktgen.StoppedByDuration && res.Submitted == 0 {
				t.Error("sent nothing in the duration")
			}
		})
	}
}

// TestRateLimit sends at 10k pps for 0.5 s and expects about 5k frames.
func TestRateLimit(t *testing.T) {
	l := testLab(t)
	node, client := l.Nodes[0], l.Clients[0]
	ext := node.External()
	s := attachSink(t, node, ext.Name, sink.Filter{Proto: sink.ProtoUDP, DstPort: 9000})
	cfg := udpConfig(ext.Addr.Addr(), 9000)
	cfg.RatePPS = 10_000
	cfg.MaxPackets = 1_000_000
	cfg.MaxDuration = 500 * time.Millisecond
	res := run(t, client, cfg)
	if res.StoppedBy != pktgen.StoppedByDuration {
		t.Errorf("stopped by %s, want duration", res.StoppedBy)
	}
	if res.Sent < 3000 || res.Sent > 6500 {
		t.Errorf("sent %d frames at 10k pps in 0.5 s, want about 5000 (3000..6500)", res.Sent)
	}
	pkts, _ := waitCounts(t, s)
	t.Logf("sink received %d", pkts)
	if pkts*2 <= res.Sent {
		t.Errorf("sink received %d of %d", pkts, res.Sent)
	}
}

// TestTCPSynToSink sends SYNs of many flows; the sink counts TCP only.
func TestTCPSynToSink(t *testing.T) {
	l := testLab(t)
	node, client := l.Nodes[0], l.Clients[0]
	ext := node.External()
	s := attachSink(t, node, ext.Name, sink.Filter{Proto: sink.ProtoTCP, DstPort: 80})
	cfg := udpConfig(ext.Addr.Addr(), 80)
	cfg.Proto = pktgen.ProtoTCPSYN
	cfg.SrcPrefix = netip.MustParsePrefix("198.18.0.128/26")
	cfg.Flows = 5000
	cfg.MaxPackets = 5000
	cfg.MaxDuration = 5 * time.Second
	res := run(t, client, cfg)
	pkts, _ := waitCounts(t, s)
	t.Logf("sink received %d of %d SYNs", pkts, res.Sent)
	if pkts*2 <= res.Sent {
		t.Errorf("sink received %d of %d", pkts, res.Sent)
	}
}
