package compare

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
)

// manifests is the v1 Service and EndpointSlice both the appliance and the nftables generator read.
func manifests(eps []netip.Addr) string {
	return lab.Manifests(lab.Service{
		Name: "bench", LoadBalancerIP: vipAddr, ClusterIP: "198.19.0.10", Endpoints: lab.ReadyEndpoints(eps),
		Ports: []lab.ServicePort{
			{Name: "udp", Protocol: "UDP", Port: udpPort, TargetPort: udpPort},
			{Name: "tcp", Protocol: "TCP", Port: tcpPort, TargetPort: tcpPort},
			{Name: "echo", Protocol: "TCP", Port: echoPort, TargetPort: echoPort},
		},
	})
}

// setUp builds the lab and everything that stays for the whole comparison.
// On failure it removes what it built.
func (r *runner) setUp(ctx context.Context) (err error) {
	defer func() {
		if err != nil && r.lab != nil {
			_ = r.lab.Down()
		}
	}()
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients, spec.Queues = 1, 1, backends, 0, 1
	r.progress("building the lab (1 node, 1 client, %d backends)", backends)
	upCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	l, err := lab.Up(upCtx, spec)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab, r.node, r.client = l, l.Nodes[0], l.Clients[0]
	r.res.Lab = l.Prefix()
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	m := manifests(l.BackendAddrs())
	fronts, err := ParseManifests([]byte(m))
	if err != nil {
		return err
	}
	var rs bytes.Buffer
	if err := NFTRuleset(&rs, fronts); err != nil {
		return err
	}
	r.ruleset, r.res.Nftables = rs.String(), rs.String()
	if r.dir, err = os.MkdirTemp("", "bench-compare-"); err != nil {
		return err
	}
	l.Spec.Logf = nil
	if err := os.WriteFile(filepath.Join(r.dir, "nft.conf"), rs.Bytes(), 0o644); err != nil {
		return err
	}
	r.appliance, err = appliance.New(appliance.Config{
		Bin: r.cfg.ApplianceBin, NS: r.node, Name: "bench-lb", Dir: r.dir, AdminListen: adminAt, Wrapper: r.pinned(),
		FreshState: true, HealthTimeout: r.cfg.StartTimeout, AdminTimeout: 2 * time.Second,
	}, m)
	if err != nil {
		return err
	}
	// The client reaches the VIP through a static neighbour: every system then gets the same frames, and
	// the kernel system needs no VIP address on ext0.
	ext := r.node.External()
	if _, err := r.client.Run(ctx, "ip", "neigh", "replace", vipAddr, "lladdr", ext.MAC.String(), "dev", lab.HostIface, "nud", "permanent"); err != nil {
		return err
	}
	// Threaded NAPI on the node's interfaces, pinned with the system under test (ARCHITECTURE.md). veth has NAPI
	// only with XDP or GRO on: GRO on both node interfaces (the kernel path keeps it, as a NIC would).
	r.baseline = map[int]bool{}
	for _, t := range napiThreads([]string{lab.NodeExternalIface, lab.NodeClusterIface}, nil) {
		r.baseline[t] = true
	}
	for _, ifc := range []string{lab.NodeExternalIface, lab.NodeClusterIface} {
		if _, err := r.node.Run(ctx, "ethtool", "-K", ifc, "gro", "on"); err != nil {
			return err
		}
		if _, err := r.node.Run(ctx, "sh", "-c", "echo 1 > /sys/class/net/"+ifc+"/threaded"); err != nil {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("threaded NAPI on %s: %v", ifc, err))
		}
	}
	r.res.Notes = append(r.res.Notes,
		"CPU per packet is the busy time of the system-under-test core (/proc/stat) over the generator's run divided by the packets the sinks counted; it includes the veth/bridge path to the backends and the sinks' XDP programs, which run in softirq on that core for every system alike.",
		"The ceiling forwarder and the XDP redirect program do no NAT, so they have no TCP round trip (latency scenario skipped); their frames fan out over the backends (ceiling: a hash of the source address and port; XDP program: the source port).",
		"The in-kernel XDP redirect reaches close to what the generator offers: its figures are near, not exactly at, its saturation rate.")
	return nil
}

// pinNAPI pins this lab's NAPI threads (they come and go with XDP attach/detach) to the system's core
// and sets their niceness: Config.NAPINice for the user-space systems, 0 for the kernel's.
func (r *runner) pinNAPI(sys System) {
	nice := 0
	if sys == SystemAppliance || sys == SystemCeiling {
		nice = r.cfg.NAPINice
	}
	r.napi = napiThreads([]string{lab.NodeExternalIface, lab.NodeClusterIface}, r.baseline)
	for _, t := range r.napi {
		_ = pinTask(t, r.cfg.ApplianceCPU)
		if err := unix.Setpriority(unix.PRIO_PROCESS, t, nice); err != nil {
			r.progress("nice of NAPI thread %d: %v", t, err)
		}
	}
}
