package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/steer"
	"github.com/xdpsvc/lb/appliance/xsk"
)

// Linux capability numbers the appliance needs (include/uapi/linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capIPCLock  = 14
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// MinKernel is the oldest kernel the appliance runs on: AF_XDP with need-wakeup, shared UMEM
// fixes and BPF_PROG_TEST_RUN for XDP are all in 5.10 (the 5.10 LTS).
var MinKernel = [2]int{5, 10}

// Readings are what the preflight decides on. readSystem takes them from the running system;
// tests inject them.
type Readings struct {
	// CapEff is the effective capability set (CapEff in /proc/self/status).
	CapEff uint64
	// CapEffKnown is false when CapEff could not be read.
	CapEffKnown bool
	// MemlockBytes is RLIMIT_MEMLOCK's soft limit; math.MaxUint64 means unlimited.
	MemlockBytes uint64
	// KernelRelease is uname -r.
	KernelRelease string
	// Interfaces are the configured interfaces, in config order.
	Interfaces []InterfaceReading
	// LocalPorts is the host's ephemeral port range (net.ipv4.ip_local_port_range) in the
	// node's network namespace, the one the daemon runs in; LocalPortsErr says why it could
	// not be read.
	LocalPorts    config.PortRange
	LocalPortsErr error
}

// InterfaceReading is one configured interface as the kernel shows it.
type InterfaceReading struct {
	// Name from the config.
	Name string
	// Exists is false when the kernel has no such interface here.
	Exists bool
	// Up is the administrative state (IFF_UP).
	Up bool
	// Driver is ethtool's driver name ("veth", "ixgbe", ...); empty when unknown.
	Driver string
	// Peer is a veth's other end; empty when unknown (for example in another namespace).
	Peer string
	// PeerXDP is true when the peer has an XDP program attached.
	PeerXDP bool
	// PeerGRO is true when the peer has generic receive offload on.
	PeerGRO bool
}

// Severity of a preflight finding.
type Severity uint8

const (
	// Warning: the appliance starts, but something will not work as the operator may expect.
	Warning Severity = iota
	// Fatal: AF_XDP cannot work; the appliance refuses to start.
	Fatal
)

// Finding is one problem the preflight found.
type Finding struct {
	// Severity says whether the appliance refuses to start.
	Severity Severity
	// Problem is what is missing.
	Problem string
	// Fix is how to fix it.
	Fix string
	// Iface is the interface concerned; empty for the whole system.
	Iface string
}

func (f Finding) String() string { return f.Problem + "; fix: " + f.Fix }

// Attrs are the finding's slog attributes (fixed keys: iface, fix).
func (f Finding) Attrs() []any {
	if f.Iface == "" {
		return []any{"fix", f.Fix}
	}
	return []any{"iface", f.Iface, "fix", f.Fix}
}

// PreflightConfig is what the data plane will need.
type PreflightConfig struct {
	// UMEMBytes is the memory AF_XDP will lock (all sockets' UMEMs and rings).
	UMEMBytes uint64
	// SNATPorts is network.snat.ports, steered to the appliance on every node address; zero:
	// not checked.
	SNATPorts config.PortRange
	// NodePorts is network.nodePortRange.
	NodePorts config.PortRange
}

// Preflight decides, from readings alone, whether AF_XDP can work here.
func Preflight(r Readings, cfg PreflightConfig) []Finding {
	var out []Finding
	fatal := func(problem, fix string) { out = append(out, Finding{Severity: Fatal, Problem: problem, Fix: fix}) }
	warn := func(problem, fix string) { out = append(out, Finding{Severity: Warning, Problem: problem, Fix: fix}) }

	has := func(c uint) bool { return r.CapEff&(1<<c) != 0 }
	if r.CapEffKnown {
		var missing []string
		if !has(capNetAdmin) {
			missing = append(missing, "CAP_NET_ADMIN (attach XDP programs, bind AF_XDP sockets)")
		}
		if !has(capNetRaw) {
			missing = append(missing, "CAP_NET_RAW (create AF_XDP sockets, send gratuitous ARP)")
		}
		if !has(capBPF) && !has(capSysAdmin) {
			missing = append(missing, "CAP_BPF (load the steering program and its maps)")
		}
		if len(missing) > 0 {
			fatal("missing capabilities: "+strings.Join(missing, ", "),
				"run as root, or as a systemd service with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_SYS_ADMIN CAP_PERFMON (configs/appliance.service)")
		} else if !has(capPerfmon) && !has(capSysAdmin) {
			warn("missing CAP_PERFMON: the BPF verifier applies its unprivileged restrictions to the steering program",
				"add CAP_PERFMON to AmbientCapabilities")
		}
	} else {
		warn("cannot read the effective capabilities from /proc/self/status", "check that /proc is mounted")
	}

	if cfg.UMEMBytes > 0 && r.MemlockBytes != math.MaxUint64 && r.MemlockBytes < cfg.UMEMBytes &&
		!(r.CapEffKnown && has(capIPCLock)) {
		fatal(fmt.Sprintf("locked-memory limit (RLIMIT_MEMLOCK) is %s, AF_XDP needs %s for its UMEMs",
			humanBytes(r.MemlockBytes), humanBytes(cfg.UMEMBytes)),
			"set LimitMEMLOCK=infinity in the systemd unit, or run `ulimit -l unlimited` before starting")
	}

	if maj, min, ok := parseKernel(r.KernelRelease); !ok {
		warn(fmt.Sprintf("cannot parse kernel release %q", r.KernelRelease), fmt.Sprintf("make sure the kernel is %d.%d or newer", MinKernel[0], MinKernel[1]))
	} else if maj < MinKernel[0] || (maj == MinKernel[0] && min < MinKernel[1]) {
		fatal(fmt.Sprintf("kernel %s is older than %d.%d (AF_XDP features the appliance uses are missing)", r.KernelRelease, MinKernel[0], MinKernel[1]),
			fmt.Sprintf("boot a kernel %d.%d or newer with CONFIG_XDP_SOCKETS=y", MinKernel[0], MinKernel[1]))
	}

	out = append(out, checkSNATPorts(r, cfg)...)

	for _, in := range r.Interfaces {
		n := len(out)
		switch {
		case !in.Exists:
			fatal(fmt.Sprintf("interface %s does not exist", in.Name),
				"check interfaces[].name in the config against `ip link show`")
		case !in.Up:
			fatal(fmt.Sprintf("interface %s is down", in.Name), fmt.Sprintf("ip link set %s up", in.Name))
		}
		if in.Exists && in.Driver == "veth" {
			switch {
			case in.Peer == "":
				warn(fmt.Sprintf("interface %s is a veth with its peer in another namespace: frames XDP-redirected or XDP_TXed into %s are dropped unless the peer has an XDP program or GRO on (AF_XDP copy-mode transmit is not affected)", in.Name, in.Name),
					"ethtool -K PEER gro on, in the peer's namespace")
			case !in.PeerXDP && !in.PeerGRO:
				warn(fmt.Sprintf("interface %s is a veth whose peer %s has neither an XDP program nor GRO: frames XDP-redirected or XDP_TXed into %s are dropped", in.Name, in.Peer, in.Name),
					fmt.Sprintf("ethtool -K %s gro on", in.Peer))
			}
		}
		for i := n; i < len(out); i++ {
			out[i].Iface = in.Name
		}
	}
	return out
}

// checkSNATPorts refuses an SNAT port range that overlaps the host's ephemeral ports (replies
// to the host's own connections would be steered away from the kernel) or the nodePort range
// (the same ports would be both frontends and SNAT sources).
func checkSNATPorts(r Readings, cfg PreflightConfig) []Finding {
	sn := cfg.SNATPorts
	if sn.First == 0 {
		return nil
	}
	var out []Finding
	if r.LocalPortsErr != nil {
		out = append(out, Finding{Severity: Fatal, Problem: fmt.Sprintf("cannot check network.snat.ports %s against the host's ephemeral ports: %v", sn, r.LocalPortsErr),
			Fix: "run the appliance where " + steer.LocalPortRangePath + " is readable (a mounted /proc in the node's network namespace)"})
	} else if err := steer.CheckSNATRange(sn.First, sn.Last, r.LocalPorts.First, r.LocalPorts.Last); err != nil {
		problem, fix, ok := strings.Cut(err.Error(), "; ")
		if !ok {
			fix = "move network.snat.ports outside net.ipv4.ip_local_port_range"
		}
		out = append(out, Finding{Severity: Fatal, Problem: problem, Fix: fix})
	}
	if np := cfg.NodePorts; np.First != 0 && sn.First <= np.Last && np.First <= sn.Last {
		out = append(out, Finding{Severity: Fatal,
			Problem: fmt.Sprintf("network.snat.ports %s overlaps network.nodePortRange %s: a port would be both a nodePort and an SNAT source", sn, np),
			Fix:     fmt.Sprintf("move network.snat.ports outside %s, or network.nodePortRange outside %s", np, sn)})
	}
	return out
}

// PreflightError joins the fatal findings into one error that says what is missing and how
// to fix each; nil when none is fatal.
func PreflightError(fs []Finding) error {
	var msgs []string
	for _, f := range fs {
		if f.Severity == Fatal {
			msgs = append(msgs, "  - "+f.String())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New("AF_XDP cannot run here:\n" + strings.Join(msgs, "\n"))
}

// parseKernel reads "6.18.0-13-amd64" as 6, 18.
func parseKernel(rel string) (int, int, bool) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, false
	}
	m := parts[1]
	if i := strings.IndexFunc(m, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		m = m[:i]
	}
	min, err := strconv.Atoi(m)
	if err != nil {
		return 0, 0, false
	}
	return maj, min, true
}

func humanBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// parseCapEff reads CapEff from the text of /proc/self/status.
func parseCapEff(status string) (uint64, bool) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// KernelRelease returns uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// readSystem takes the readings of the running system for the named interfaces.
func readSystem(ifaces []string) Readings {
	var r Readings
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		r.CapEff, r.CapEffKnown = parseCapEff(string(b))
	}
	var lim unix.Rlimit
	r.MemlockBytes = math.MaxUint64
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
		r.MemlockBytes = lim.Cur
	}
	r.KernelRelease = KernelRelease()
	if first, last, err := steer.ReadLocalPortRange(steer.LocalPortRangePath); err != nil {
		r.LocalPortsErr = err
	} else {
		r.LocalPorts = config.PortRange{First: first, Last: last}
	}
	fd, ferr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if ferr == nil {
		defer unix.Close(fd)
	}
	for _, name := range ifaces {
		in := InterfaceReading{Name: name}
		link, err := netlink.LinkByName(name)
		if err != nil {
			r.Interfaces = append(r.Interfaces, in)
			continue
		}
		a := link.Attrs()
		in.Exists, in.Up = true, a.Flags&net.FlagUp != 0
		if ferr == nil {
			if di, err := unix.IoctlGetEthtoolDrvinfo(fd, name); err == nil {
				in.Driver = unix.ByteSliceToString(di.Driver[:])
			}
		}
		if in.Driver == "" && link.Type() == "veth" {
			in.Driver = "veth"
		}
		if in.Driver == "veth" {
			in.Peer, in.PeerXDP, in.PeerGRO = vethPeer(fd, link)
		}
		r.Interfaces = append(r.Interfaces, in)
	}
	return r
}

// vethPeer finds a veth's peer in this namespace and reads its XDP and GRO state; an empty name
// when the peer lives in another namespace.
func vethPeer(fd int, link netlink.Link) (string, bool, bool) {
	a := link.Attrs()
	if a.ParentIndex == 0 || a.NetNsID >= 0 {
		return "", false, false // IFLA_LINK_NETNSID set: the peer's index is in another namespace
	}
	peer, err := netlink.LinkByIndex(a.ParentIndex)
	if err != nil {
		return "", false, false
	}
	pa := peer.Attrs()
	xdp := pa.Xdp != nil && pa.Xdp.Attached
	gro := false
	if fd >= 0 {
		gro, _ = ethtoolGRO(fd, pa.Name)
	}
	return pa.Name, xdp, gro
}

// checkAFXDP runs the preflight on the running system before any socket is opened: warnings
// are logged, fatal findings refuse the start with what is missing and how to fix it.
func checkAFXDP(cfg *config.Config, log *slog.Logger) error {
	var names []string
	var umem uint64
	xc := xsk.DefaultConfig()
	for _, ic := range cfg.Interfaces {
		names = append(names, ic.Name)
		q, err := xsk.QueueCount(ic.Name)
		if err != nil {
			q = 1
		}
		umem += uint64(q) * uint64(xc.NumFrames) * uint64(xc.FrameSizeBytes)
	}
	findings := Preflight(readSystem(names), PreflightConfig{UMEMBytes: umem,
		SNATPorts: cfg.Network.SNAT.Ports, NodePorts: cfg.Network.NodePortRange})
	for _, f := range findings {
		if f.Severity == Warning {
			log.Warn("preflight: "+f.Problem, f.Attrs()...)
		}
	}
	if err := PreflightError(findings); err != nil {
		return err
	}
	log.Info("preflight passed", "kernel", KernelRelease(), "interfaces", len(names))
	return nil
}
