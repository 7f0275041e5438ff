package compare

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/pktgen"
	"github.com/xdpsvc/lb/bench/sink"
)

// warmUp sends short UDP bursts (not recorded) until the backends' sinks count some, bounded by
// StartTimeout: the first frames after an XDP attach or a ruleset load can be lost while the path settles.
func (r *runner) warmUp(ctx context.Context, s *system) error {
	deadline := time.Now().Add(r.cfg.StartTimeout)
	sc := Scenario{Name: "warm-up", Kind: KindUDP, Flows: 1, FrameSize: 64}
	for {
		var run Run
		r.packets(ctx, s, sc, &run, 2000, 200*time.Millisecond)
		if run.Error == "" && run.Received > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: no UDP frame reached the backends within %v (%s)", r.cfg.StartTimeout, run.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// packets runs one generator measurement with sinks on every backend.
func (r *runner) packets(ctx context.Context, s *system, sc Scenario, run *Run, maxPackets uint64, d time.Duration) {
	proto, port := pktgen.ProtoUDP, uint16(udpPort)
	switch sc.Kind {
	case KindSYN:
		proto, port = pktgen.ProtoTCPSYN, tcpPort
	case KindACK:
		proto, port = pktgen.ProtoTCPACK, tcpPort
	}
	var sinks []*sink.Sink
	defer func() {
		for _, sk := range sinks {
			_ = sk.Close()
		}
	}()
	for _, b := range r.lab.Backends {
		err := b.Do(func() error {
			l, err := netlink.LinkByName(lab.HostIface)
			if err != nil {
				return err
			}
			sk, err := sink.Attach(l.Attrs().Index, sink.Filter{Proto: proto.IPProto(), DstPort: port})
			if err != nil {
				return err
			}
			sinks = append(sinks, sk)
			return nil
		})
		if err != nil {
			run.Error = fmt.Sprintf("sink in %s: %v", b.Name, err)
			return
		}
	}
	// Start each measurement with an empty kernel conntrack table on the node (nftables' state).
	_ = r.node.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })

	cfg := generatorConfig(r.node.External().MAC, sc, proto, port, maxPackets, d)

	var prof chan string
	if r.cfg.Profile && run.Round == 1 && (sc.Kind == KindUDP || sc.Kind == KindSYN) {
		prof = make(chan string, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			d := r.cfg.Duration * 7 / 10
			if sc.Kind == KindSYN {
				// A flood lasts as long as its SYNs: 0.4 s and more for 100k at the generator's rate.
				d = min(d, 200*time.Millisecond)
			}
			out, err := Profile(ctx, r.cfg.ApplianceCPU, d, r.dir)
			if err != nil {
				out = err.Error()
			}
			prof <- out
		}()
	}
	var before, after cpuSample
	before = r.sample(s)
	var res pktgen.Result
	err := r.client.Do(func() error {
		if err := pinTask(0, r.cfg.GeneratorCPU); err != nil {
			return err
		}
		var err error
		res, err = pktgen.Run(ctx, cfg)
		return err
	})
	after = r.sample(s)
	if prof != nil {
		out := <-prof
		name := "perf-" + string(run.System) + "-" + sc.Name + ".txt"
		_ = os.WriteFile(filepath.Join(r.cfg.OutDir, name), []byte(out), 0o644)
		r.res.Notes = append(r.res.Notes, "perf record -e cpu-clock -g -C "+strconv.Itoa(r.cfg.ApplianceCPU)+" during round 1 "+string(run.System)+" "+sc.Name+": "+name)
	}
	if err != nil {
		run.Error = err.Error()
		return
	}
	recordPackets(run, res, sinks, before, after)

}

// generatorConfig is the packet generator's config of scenario sc toward the VIP through the node's
// external interface (dstMAC).
func generatorConfig(dstMAC net.HardwareAddr, sc Scenario, proto pktgen.Proto, port uint16, maxPackets uint64, d time.Duration) pktgen.Config {
	cfg := pktgen.DefaultConfig()
	cfg.Iface = lab.HostIface
	cfg.DstMAC = dstMAC
	cfg.DstPrefix = netip.PrefixFrom(vip, 32)
	cfg.DstPorts = pktgen.PortRange{First: port}
	cfg.Proto = proto
	cfg.Flows = sc.Flows
	cfg.FrameSize = sc.FrameSize
	cfg.MaxPackets = maxPackets
	cfg.MaxDuration = d
	cfg.TxRingSize = 4096
	cfg.TxSkbBudget = 256
	if sc.Flows > 60_000 {
		// More flows than one source address has ports: spread them over 198.18.0.128/25.
		cfg.SrcPrefix = netip.MustParsePrefix("198.18.0.128/25")
	}
	if sc.Kind == KindSYN {
		// Every SYN from its own 5-tuple: a conntrack insert per packet, for every system.
		cfg.MaxPackets = min(cfg.MaxPackets, uint64(sc.Flows))
	}
	return cfg
}

// recordPackets fills run from the generator's result, the sinks' counts and the CPU samples taken
// before and after.
func recordPackets(run *Run, res pktgen.Result, sinks []*sink.Sink, before, after cpuSample) {
	var pkts, byts uint64
	for _, sk := range sinks {
		p, b, _ := sk.Settled()
		pkts += p
		byts += b
	}
	el := res.Elapsed.Seconds()
	run.Offered = res.Sent - res.Failed
	run.OfferedPPS = res.OfferedPPS
	run.Received = pkts
	run.ElapsedSeconds = el
	run.StoppedBy = res.StoppedBy
	if el > 0 {
		run.ReceivedPPS = float64(pkts) / el
		run.ReceivedBitsPerSecond = float64(byts) * 8 / el
	}
	run.CoreBusySeconds = float64(after.core-before.core) / clockTicks
	run.ProcessCPUSeconds = float64(after.proc-before.proc) / clockTicks
	run.NAPICPUSeconds = float64(after.napi-before.napi) / clockTicks
	if after.counters != nil {
		run.ApplianceCounters = map[string]float64{}
		for k, v := range after.counters {
			if d := v - before.counters[k]; d != 0 {
				run.ApplianceCounters[k] = d
			}
		}
	}
	if pkts > 0 {
		run.NsPerPacket = run.CoreBusySeconds * 1e9 / float64(pkts)
	}
}
