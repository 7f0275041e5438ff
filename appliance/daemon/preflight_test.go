package daemon

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
)

const allCaps = 1<<capNetAdmin | 1<<capNetRaw | 1<<capSysAdmin | 1<<capPerfmon | 1<<capBPF

func goodReadings() Readings {
	return Readings{
		CapEff: allCaps, CapEffKnown: true, MemlockBytes: math.MaxUint64, KernelRelease: "6.18.0-1-amd64",
		Interfaces: []InterfaceReading{{Name: "eth0", Exists: true, Up: true, Driver: "ixgbe"}},
		LocalPorts: config.PortRange{First: 32768, Last: 60999},
	}
}

func TestPreflight(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Readings)
		umem   uint64
		pcfg   func(*PreflightConfig) // changes the default SNAT ports 61000-65535 and nodePorts 30000-32767
		fatal  []string               // substrings, one per fatal finding, in order
		warn   []string               // substrings, one per warning, in order
	}{
		{name: "all good", change: func(*Readings) {}},
		{name: "root with every capability", change: func(r *Readings) { r.CapEff = 0x000001ffffffffff }},
		{name: "no capabilities", change: func(r *Readings) { r.CapEff = 0 },
			fatal: []string{"CAP_NET_ADMIN (attach XDP programs, bind AF_XDP sockets), CAP_NET_RAW (create AF_XDP sockets, send gratuitous ARP), CAP_BPF"}},
		{name: "CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON", change: func(r *Readings) { r.CapEff = 1<<capNetAdmin | 1<<capNetRaw | 1<<capSysAdmin }},
		{name: "CAP_BPF without CAP_PERFMON warns", change: func(r *Readings) { r.CapEff = 1<<capNetAdmin | 1<<capNetRaw | 1<<capBPF },
			warn: []string{"CAP_PERFMON"}},
		{name: "only CAP_NET_RAW missing", change: func(r *Readings) { r.CapEff = allCaps &^ (1 << capNetRaw) },
			fatal: []string{"missing capabilities: CAP_NET_RAW"}},
		{name: "capabilities unreadable", change: func(r *Readings) { r.CapEffKnown = false }, warn: []string{"/proc/self/status"}},
		{name: "memlock too low", umem: 48 << 20, change: func(r *Readings) { r.MemlockBytes = 8 << 20 },
			fatal: []string{"RLIMIT_MEMLOCK) is 8.0 MiB, AF_XDP needs 48.0 MiB"}},
		{name: "memlock enough", umem: 48 << 20, change: func(r *Readings) { r.MemlockBytes = 64 << 20 }},
		{name: "memlock low but CAP_IPC_LOCK", umem: 48 << 20, change: func(r *Readings) { r.MemlockBytes = 8 << 20; r.CapEff |= 1 << capIPCLock }},
		{name: "kernel too old", change: func(r *Readings) { r.KernelRelease = "5.4.0-150-generic" }, fatal: []string{"kernel 5.4.0-150-generic is older than 5.10"}},
		{name: "kernel 5.10 is enough", change: func(r *Readings) { r.KernelRelease = "5.10.0-28-amd64" }},
		{name: "kernel 4.19", change: func(r *Readings) { r.KernelRelease = "4.19.0" }, fatal: []string{"older than 5.10"}},
		{name: "kernel with suffix on the minor", change: func(r *Readings) { r.KernelRelease = "6.1rc3" }},
		{name: "kernel unparsable", change: func(r *Readings) { r.KernelRelease = "" }, warn: []string{"cannot parse kernel release"}},
		{name: "interface missing", change: func(r *Readings) { r.Interfaces[0] = InterfaceReading{Name: "eth9"} },
			fatal: []string{"interface eth9 does not exist"}},
		{name: "interface down", change: func(r *Readings) { r.Interfaces[0].Up = false }, fatal: []string{"interface eth0 is down"}},
		{name: "veth peer with GRO", change: func(r *Readings) {
			r.Interfaces[0] = InterfaceReading{Name: "v0", Exists: true, Up: true, Driver: "veth", Peer: "v1", PeerGRO: true}
		}},
		{name: "veth peer with XDP", change: func(r *Readings) {
			r.Interfaces[0] = InterfaceReading{Name: "v0", Exists: true, Up: true, Driver: "veth", Peer: "v1", PeerXDP: true}
		}},
		{name: "veth peer with neither", change: func(r *Readings) {
			r.Interfaces[0] = InterfaceReading{Name: "v0", Exists: true, Up: true, Driver: "veth", Peer: "v1"}
		}, warn: []string{"peer v1 has neither an XDP program nor GRO"}},
		{name: "veth peer in another namespace", change: func(r *Readings) {
			r.Interfaces[0] = InterfaceReading{Name: "v0", Exists: true, Up: true, Driver: "veth"}
		}, warn: []string{"its peer in another namespace"}},
		{name: "widened ephemeral range overlaps the SNAT ports", change: func(r *Readings) { r.LocalPorts = config.PortRange{First: 1024, Last: 65535} },
			fatal: []string{"SNAT ports 61000-65535 overlap the host's ephemeral ports 1024-65535"}},
		{name: "SNAT ports moved into the ephemeral range", pcfg: func(c *PreflightConfig) { c.SNATPorts = config.PortRange{First: 60000, Last: 61999} },
			fatal: []string{"SNAT ports 60000-61999 overlap the host's ephemeral ports 32768-60999"}},
		{name: "SNAT ports below the ephemeral range", pcfg: func(c *PreflightConfig) { c.SNATPorts = config.PortRange{First: 20000, Last: 29999} }},
		{name: "ephemeral range unreadable", change: func(r *Readings) { r.LocalPortsErr = errors.New("no /proc") },
			fatal: []string{"cannot check network.snat.ports 61000-65535 against the host's ephemeral ports: no /proc"}},
		{name: "SNAT ports overlap the nodePorts", pcfg: func(c *PreflightConfig) { c.SNATPorts = config.PortRange{First: 32000, Last: 32767} },
			fatal: []string{"network.snat.ports 32000-32767 overlaps network.nodePortRange 30000-32767"}},
		{name: "everything wrong at once", umem: 1 << 30, change: func(r *Readings) {
			r.CapEff, r.MemlockBytes, r.KernelRelease = 0, 64<<10, "5.4.0"
			r.Interfaces = []InterfaceReading{{Name: "eth0", Exists: true}, {Name: "eth1"}}
		}, fatal: []string{"missing capabilities", "RLIMIT_MEMLOCK", "kernel 5.4.0", "eth0 is down", "eth1 does not exist"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := goodReadings()
			if c.change != nil {
				c.change(&r)
			}
			pc := PreflightConfig{UMEMBytes: c.umem, SNATPorts: config.PortRange{First: 61000, Last: 65535},
				NodePorts: config.PortRange{First: 30000, Last: 32767}}
			if c.pcfg != nil {
				c.pcfg(&pc)
			}
			fs := Preflight(r, pc)
			var fatal, warn []Finding
			for _, f := range fs {
				if f.Severity == Fatal {
					fatal = append(fatal, f)
				} else {
					warn = append(warn, f)
				}
				if f.Fix == "" {
					t.Errorf("finding %q has no fix", f.Problem)
				}
				if strings.Contains(f.Problem, "interface ") != (f.Iface != "") {
					t.Errorf("finding %q has iface %q", f.Problem, f.Iface)
				}
			}
			check := func(kind string, got []Finding, want []string) {
				if len(got) != len(want) {
					t.Fatalf("%s findings %v, want %d matching %q", kind, got, len(want), want)
				}
				for i := range want {
					if !strings.Contains(got[i].Problem, want[i]) {
						t.Errorf("%s finding %d %q does not mention %q", kind, i, got[i].Problem, want[i])
					}
				}
			}
			check("fatal", fatal, c.fatal)
			check("warning", warn, c.warn)
			err := PreflightError(fs)
			if (err != nil) != (len(c.fatal) > 0) {
				t.Fatalf("PreflightError = %v with %d fatal findings", err, len(c.fatal))
			}
			if err != nil && (!strings.Contains(err.Error(), "fix:") || !strings.HasPrefix(err.Error(), "AF_XDP cannot run here")) {
				t.Fatalf("error does not say how to fix: %v", err)
			}
		})
	}
}

func TestParseCapEff(t *testing.T) {
	cases := []struct {
		name, status string
		want         uint64
		ok           bool
	}{
		{"root", "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n", 0x1ffffffffff, true},
		{"none", "CapEff:\t0000000000000000\n", 0, true},
		{"missing", "Name:\tx\n", 0, false},
		{"garbage", "CapEff:\tzz\n", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := parseCapEff(c.status)
			if got != c.want || ok != c.ok {
				t.Fatalf("parseCapEff = %#x %v, want %#x %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// TestReadSystem reads this machine: loopback exists and is up, a made-up name does not.
func TestReadSystem(t *testing.T) {
	r := readSystem([]string{"lo", "nosuchif0"})
	if r.KernelRelease == "" || !r.CapEffKnown {
		t.Fatalf("readings %+v: no kernel release or capabilities", r)
	}
	if r.LocalPortsErr != nil || r.LocalPorts.First == 0 || r.LocalPorts.First > r.LocalPorts.Last {
		t.Fatalf("ephemeral port range %v, %v", r.LocalPorts, r.LocalPortsErr)
	}
	if len(r.Interfaces) != 2 || !r.Interfaces[0].Exists || !r.Interfaces[0].Up || r.Interfaces[1].Exists {
		t.Fatalf("interfaces %+v", r.Interfaces)
	}
}

func TestServiceCaptureRules(t *testing.T) {
	cfg, err := config.Parse([]byte(`
node: {name: lb-a}
interfaces: [{name: ext0}]
network: {clusterCIDRs: [198.18.1.0/24], serviceCIDR: 198.19.0.0/24, loadBalancerPools: [{name: default, cidrs: [198.19.1.0/28]}]}
`), "lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := service.ParseManifests([]byte(`
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.1
  clusterIP: 198.19.0.10
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}]
`), "svc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := service.Build(objs, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ports := []dataplane.Port{{Name: "ext0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}}}
	cases := []struct {
		name, key string
		want      []string
	}{
		{"load balancer", "default/web", []string{"198.19.0.10:80/6", "198.19.1.1:80/6", "198.18.0.11:30080/6"}},
		{"unknown", "default/nope", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rules, err := ServiceCaptureRules(snap, ports, c.key)
			if c.want == nil {
				if err == nil {
					t.Fatalf("rules %v for an unknown Service", rules)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rules {
				got = append(got, netip.AddrPortFrom(r.Addr, r.Port).String()+"/"+strconv.Itoa(int(r.Proto)))
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Fatalf("rules %v, want %v", got, c.want)
			}
		})
	}
}
