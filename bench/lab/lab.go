package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Role is what a namespace is for.
type Role string

// The namespace roles; the second part of a namespace name is the role's letter and a 1-based index.
const (
	RoleSwitch        Role = "switch"         // <prefix>-sw: the two bridges
	RoleNode          Role = "node"           // <prefix>-nN: an appliance node
	RoleClient        Role = "client"         // <prefix>-cN: an external client
	RoleBackend       Role = "backend"        // <prefix>-bN: a backend (endpoint)
	RoleClusterClient Role = "cluster-client" // <prefix>-kN: an in-cluster client
)

// Iface is one interface inside a lab namespace and its port in the switch.
type Iface struct {
	// Name is the interface name inside the namespace (ext0, int0 or eth0).
	Name string
	// Addr is its IPv4 address and segment prefix length.
	Addr netip.Prefix
	// MAC is its hardware address (deterministic per lab).
	MAC net.HardwareAddr
	// SwitchPort is the peer veth's name in the switch namespace.
	SwitchPort string
	// SwitchPortMAC is the peer veth's hardware address.
	SwitchPortMAC net.HardwareAddr
	// Bridge is the switch bridge the port belongs to (brx or brc).
	Bridge string
}

// NS is one network namespace of the lab. Its methods are safe for concurrent use.
type NS struct {
	// Name is the namespace name as `ip netns` shows it, e.g. "l3fa2-n1".
	Name string
	// Short is the name without the prefix, e.g. "n1"; backends and clients are known by it.
	Short string
	// Role is what the namespace is for.
	Role Role
	// Index is the 1-based index within its role (0 for the switch).
	Index int
	// Ifaces are its lab interfaces: nodes have ext0 then int0, other hosts eth0, the switch none.
	Ifaces []Iface

	lab *Lab
}

// Addr is the address of the namespace's first interface (a node's external address).
func (n *NS) Addr() netip.Addr {
	if len(n.Ifaces) == 0 {
		return netip.Addr{}
	}
	return n.Ifaces[0].Addr.Addr()
}

// External is a node's external-segment interface (ext0).
func (n *NS) External() Iface { return n.iface(NodeExternalIface) }

// Cluster is a node's cluster-segment interface (int0).
func (n *NS) Cluster() Iface { return n.iface(NodeClusterIface) }

func (n *NS) iface(name string) Iface {
	for _, i := range n.Ifaces {
		if i.Name == name {
			return i
		}
	}
	return Iface{}
}

// Lab is a running set of namespaces. Methods are safe for concurrent use; Down is idempotent.
type Lab struct {
	// Spec is the normalized spec the lab was built from (Prefix filled in).
	Spec Spec
	// Switch holds the bridges brx (external) and brc (cluster).
	Switch *NS
	// Nodes are the appliance-node namespaces n1.. (198.18.0.11.., 198.18.1.11..).
	Nodes []*NS
	// Clients are the external client namespaces c1.. (198.18.0.100..).
	Clients []*NS
	// Backends are the backend namespaces b1.. (198.18.1.21..).
	Backends []*NS
	// ClusterClients are the in-cluster client namespaces k1.. (198.18.1.50..).
	ClusterClients []*NS

	mu         sync.Mutex
	state      State
	procs      []*Process
	closers    []io.Closer
	transports []*http.Transport
	stops      []func()
	down       bool
	downErr    error
}

// All returns every namespace, switch first.
func (l *Lab) All() []*NS {
	all := []*NS{l.Switch}
	for _, g := range [][]*NS{l.Nodes, l.Clients, l.Backends, l.ClusterClients} {
		all = append(all, g...)
	}
	return all
}

// Prefix is the lab's name prefix.
func (l *Lab) Prefix() string { return l.Spec.Prefix }

// StatePath is the lab's state file.
func (l *Lab) StatePath() string { return statePath(l.Spec.StateDir, l.Spec.Prefix) }

// GatewayAddr is the cluster address of the node that cluster-side namespaces route the service CIDR through.
func (l *Lab) GatewayAddr() netip.Addr { return l.Nodes[l.Spec.GatewayNode-1].Cluster().Addr.Addr() }

func (l *Lab) logf(format string, args ...any) {
	if l.Spec.Logf != nil {
		l.Spec.Logf(format, args...)
	}
}

// plan lays out namespaces, interfaces, addresses and MACs without touching the system.
func plan(spec Spec) *Lab {
	l := &Lab{Spec: spec}
	p := spec.Prefix
	newNS := func(role Role, letter string, i int) *NS {
		short := "sw"
		if role != RoleSwitch {
			short = letter + strconv.Itoa(i)
		}
		return &NS{Name: p + "-" + short, Short: short, Role: role, Index: i, lab: l}
	}
	iface := func(name, port, bridge string, seg netip.Prefix, segNo, host int) Iface {
		return Iface{
			Name: name, Addr: hostAddr(seg, host), MAC: labMAC(p, segNo, host, 0),
			SwitchPort: port, SwitchPortMAC: labMAC(p, segNo, host, 1), Bridge: bridge,
		}
	}
	l.Switch = newNS(RoleSwitch, "", 0)
	for i := 1; i <= spec.Nodes; i++ {
		n := newNS(RoleNode, "n", i)
		host := nodeHostBase + i - 1
		n.Ifaces = []Iface{
			iface(NodeExternalIface, n.Short+"x", ExternalBridge, ExternalSegment, 0, host),
			iface(NodeClusterIface, n.Short+"i", ClusterBridge, ClusterSegment, 1, host),
		}
		l.Nodes = append(l.Nodes, n)
	}
	hosts := func(role Role, letter string, count int, seg netip.Prefix, segNo, base int, bridge string) []*NS {
		var out []*NS
		for i := 1; i <= count; i++ {
			n := newNS(role, letter, i)
			n.Ifaces = []Iface{iface(HostIface, n.Short, bridge, seg, segNo, base+i-1)}
			out = append(out, n)
		}
		return out
	}
	l.Clients = hosts(RoleClient, "c", spec.Clients, ExternalSegment, 0, clientHostBase, ExternalBridge)
	l.Backends = hosts(RoleBackend, "b", spec.Backends, ClusterSegment, 1, backendHostBase, ClusterBridge)
	l.ClusterClients = hosts(RoleClusterClient, "k", spec.ClusterClients, ClusterSegment, 1, clusterClientHostBase, ClusterBridge)
	return l
}

// Up builds the lab: it reserves the state file, creates the namespaces, bridges, veths, addresses and routes,
// and removes everything it made if any step fails. The caller must call Down (lab.New does it for tests).
func Up(ctx context.Context, spec Spec) (*Lab, error) {
	spec, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("lab up: network namespaces need root")
	}
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab up: %s: %w", tool, err)
		}
	}
	var l *Lab
	for attempt := 0; ; attempt++ {
		s := spec
		if s.Prefix == "" {
			s.Prefix = RandomPrefix()
		}
		l = plan(s)
		err = l.reserve()
		if err == nil {
			break
		}
		if spec.Prefix != "" || !errors.Is(err, os.ErrExist) || attempt >= 20 {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}
	l.logf("lab %s: building %d namespaces (state %s)", l.Spec.Prefix, len(l.All()), l.StatePath())
	if err := l.build(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed build: %w", derr))
		}
		return nil, fmt.Errorf("lab %s up: %w", l.Spec.Prefix, err)
	}
	l.logf("lab %s: up", l.Spec.Prefix)
	return l, nil
}

// reserve writes the state file (exclusively) before anything exists, listing every planned namespace.
func (l *Lab) reserve() error {
	for _, n := range l.All() {
		if _, err := os.Stat("/run/netns/" + n.Name); err == nil {
			return fmt.Errorf("namespace %s: %w", n.Name, os.ErrExist)
		}
	}
	st := State{Version: stateVersion, Prefix: l.Spec.Prefix, Created: time.Now().UTC()}
	if !l.Spec.Persistent {
		st.OwnerPID = os.Getpid()
		st.OwnerStartTicks, _ = procStartTicks(st.OwnerPID)
	}
	for _, n := range l.All() {
		st.Namespaces = append(st.Namespaces, n.Name)
	}
	if err := reserveState(l.Spec.StateDir, st); err != nil {
		return err
	}
	l.state = st
	return nil
}

// ip runs the ip command with a bounded time.
func ip(ctx context.Context, args ...string) error {
	return runCmd(ctx, "ip", args...)
}

func runCmd(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// build creates everything of the plan.
func (l *Lab) build(ctx context.Context) error {
	for i, n := range l.All() {
		if l.Spec.failAfterNamespaces > 0 && i == l.Spec.failAfterNamespaces {
			return errors.New("injected failure after creating namespaces (test)")
		}
		if err := ip(ctx, "netns", "add", n.Name); err != nil {
			return err
		}
		if err := n.configureSysctls(); err != nil {
			return err
		}
		if err := ip(ctx, "-n", n.Name, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	sw := l.Switch.Name
	for _, br := range []string{ExternalBridge, ClusterBridge} {
		if err := ip(ctx, "-n", sw, "link", "add", br, "type", "bridge", "stp_state", "0"); err != nil {
			return err
		}
		if err := ip(ctx, "-n", sw, "link", "set", br, "up"); err != nil {
			return err
		}
	}
	for _, n := range l.All()[1:] {
		queues := 1
		if n.Role == RoleNode {
			queues = l.Spec.Queues
		}
		for _, ifc := range n.Ifaces {
			if err := l.addVeth(ctx, n, ifc, queues); err != nil {
				return fmt.Errorf("namespace %s interface %s: %w", n.Name, ifc.Name, err)
			}
		}
	}
	return l.addRoutes(ctx)
}

// configureSysctls sets, inside the namespace and before any link exists (so new links inherit "default"):
// IPv6 off (the lab uses 198.18.0.0/15 only, no link-local chatter), rp_filter off, IP forwarding off (an
// appliance node forwards in userspace, never in the kernel), bridge netfilter off (a switch forwards
// frames as they are).
func (n *NS) configureSysctls() error {
	settings := []struct {
		path, value string
		optional    bool
	}{
		{"net/ipv6/conf/all/disable_ipv6", "1", true},
		{"net/ipv6/conf/default/disable_ipv6", "1", true},
		{"net/ipv4/conf/all/rp_filter", "0", false},
		{"net/ipv4/conf/default/rp_filter", "0", false},
		{"net/ipv4/ip_forward", "0", false},
		// A bridge in a namespace calls iptables on bridged frames when br_netfilter is loaded
		// (Docker loads it), which validates and drops malformed IP headers: a real switch does
		// not, and the appliance must see bad frames to count them.
		{"net/bridge/bridge-nf-call-iptables", "0", true},
		{"net/bridge/bridge-nf-call-ip6tables", "0", true},
		{"net/bridge/bridge-nf-call-arptables", "0", true},
	}
	return n.Do(func() error {
		for _, s := range settings {
			err := os.WriteFile("/proc/sys/"+s.path, []byte(s.value), 0)
			if err != nil && !(s.optional && errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("sysctl %s=%s in %s: %w", s.path, s.value, n.Name, err)
			}
		}
		return nil
	})
}

// addVeth creates one veth pair straight into its two namespaces (nothing touches the root namespace), plugs
// the switch end into its bridge and addresses the inner end. Offloads: TX checksum, TSO and GSO off on both
// ends, so every frame on the wire is complete and at most MTU-sized (ARCHITECTURE.md: otherwise AF_XDP sees
// partial checksums and super-sized frames). GRO on for the switch ends of node interfaces: frames an XDP
// program redirects or XDP_TXes into a veth are dropped unless its peer has XDP or GRO on, and GRO is also what
// allows threaded NAPI on that peer.
func (l *Lab) addVeth(ctx context.Context, n *NS, ifc Iface, queues int) error {
	q := strconv.Itoa(queues)
	sw := l.Switch.Name
	if err := ip(ctx, "-n", sw, "link", "add", ifc.SwitchPort, "numtxqueues", q, "numrxqueues", q,
		"address", ifc.SwitchPortMAC.String(), "type", "veth",
		"peer", "name", ifc.Name, "numtxqueues", q, "numrxqueues", q, "address", ifc.MAC.String(), "netns", n.Name); err != nil {
		return err
	}
	if err := ip(ctx, "-n", sw, "link", "set", ifc.SwitchPort, "master", ifc.Bridge); err != nil {
		return err
	}
	if err := ip(ctx, "-n", n.Name, "addr", "add", ifc.Addr.String(), "dev", ifc.Name); err != nil {
		return err
	}
	portFeatures := []string{"tx", "off", "tso", "off", "gso", "off"}
	if n.Role == RoleNode {
		portFeatures = append(portFeatures, "gro", "on")
	}
	if err := runCmd(ctx, "ip", append([]string{"netns", "exec", sw, "ethtool", "-K", ifc.SwitchPort}, portFeatures...)...); err != nil {
		return err
	}
	if err := runCmd(ctx, "ip", "netns", "exec", n.Name, "ethtool", "-K", ifc.Name, "tx", "off", "tso", "off", "gso", "off"); err != nil {
		return err
	}
	if err := ip(ctx, "-n", sw, "link", "set", ifc.SwitchPort, "up"); err != nil {
		return err
	}
	return ip(ctx, "-n", n.Name, "link", "set", ifc.Name, "up")
}

// addRoutes: external clients reach the LoadBalancer pool on-link (they ARP for VIPs); cluster-side
// namespaces route the service CIDR via the gateway node; backends also get their default route there (for
// externalTrafficPolicy Local replies) while SNAT addresses, on the cluster segment, stay on-link.
func (l *Lab) addRoutes(ctx context.Context) error {
	gw := l.GatewayAddr().String()
	for _, c := range l.Clients {
		if err := ip(ctx, "-n", c.Name, "route", "add", LoadBalancerPool.String(), "dev", HostIface); err != nil {
			return err
		}
	}
	for _, group := range [][]*NS{l.Backends, l.ClusterClients} {
		for _, n := range group {
			if err := ip(ctx, "-n", n.Name, "route", "add", ServiceCIDR.String(), "via", gw, "dev", HostIface); err != nil {
				return err
			}
		}
	}
	for _, b := range l.Backends {
		if err := ip(ctx, "-n", b.Name, "route", "add", "default", "via", gw, "dev", HostIface); err != nil {
			return err
		}
		// LoadBalancer VIPs are also the floating SNAT source of their flows: backends reply to
		// them on-link, ARPing for the VIP on the cluster segment (its holder answers there too).
		if err := ip(ctx, "-n", b.Name, "route", "add", LoadBalancerPool.String(), "dev", HostIface); err != nil {
			return err
		}
	}
	return nil
}

// Down stops everything the lab started, deletes its namespaces and its state file. It is idempotent and
// safe to call after a failed Up step; it returns the first call's result on later calls.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.down {
		err := l.downErr
		l.mu.Unlock()
		return err
	}
	l.down = true
	stops, closers, transports, procs, st := l.stops, l.closers, l.transports, l.procs, l.state
	l.mu.Unlock()

	var errs []error
	for _, t := range transports {
		t.CloseIdleConnections()
	}
	for _, c := range closers {
		_ = c.Close() // sockets inside the namespaces hold them alive; already-closed ones are fine
	}
	for _, stop := range stops {
		stop()
	}
	for _, p := range procs {
		p.Stop()
	}
	if err := Teardown(st, l.Spec.StateDir); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	l.mu.Lock()
	l.downErr = err
	l.mu.Unlock()
	if err == nil {
		l.logf("lab %s: down", l.Spec.Prefix)
	}
	return err
}

// Teardown removes what a state file records: it stops the recorded processes (only if they are still the
// same processes), any other process left inside the lab's namespaces, deletes the namespaces and finally the
// state file. Missing namespaces are not errors, so it can be repeated. dir "" means DefaultStateDir.
func Teardown(st State, dir string) error {
	if dir == "" {
		dir = DefaultStateDir
	}
	stopRecorded(st.Processes, 3*time.Second)
	var errs []error
	for _, ns := range st.Namespaces {
		if err := checkNSName(st.Prefix, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := os.Stat("/run/netns/" + ns); errors.Is(err, os.ErrNotExist) {
			continue
		}
		killNamespacePIDs(ns)
		if err := ip(context.Background(), "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %s down: %w", st.Prefix, errors.Join(errs...))
	}
	if err := os.Remove(statePath(dir, st.Prefix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab %s down: %w", st.Prefix, err)
	}
	return nil
}

// killNamespacePIDs stops programs still running in ns (they were started there by this lab through Run,
// Start or `ip netns exec`); this process itself is never signalled.
func killNamespacePIDs(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	var procs []ProcessRecord
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if t, ok := procStartTicks(pid); ok {
			procs = append(procs, ProcessRecord{PID: pid, StartTicks: t, Namespace: ns})
		}
	}
	stopRecorded(procs, 2*time.Second)
}

// SweepResult says what Sweep did with one state file.
type SweepResult struct {
	// Prefix is the lab's prefix.
	Prefix string
	// Removed is true when the lab's owner was dead and its namespaces were removed.
	Removed bool
	// Reason says why it was kept or removed.
	Reason string
}

// Sweep removes labs left by crashed runs: those whose state file names an owner process that is dead.
// Persistent labs (bench lab up) and labs whose owner runs are kept. Namespaces without a state file are
// never touched: the state file is written before a lab's first namespace, so they are not ours to judge.
func Sweep(dir string) ([]SweepResult, error) {
	states, errs := ListStates(dir)
	var res []SweepResult
	for _, st := range states {
		switch {
		case st.OwnerPID == 0:
			res = append(res, SweepResult{Prefix: st.Prefix, Reason: "persistent (bench lab up)"})
		case st.OwnerAlive():
			res = append(res, SweepResult{Prefix: st.Prefix, Reason: fmt.Sprintf("owner PID %d is running", st.OwnerPID)})
		default:
			if err := Teardown(st, dir); err != nil {
				errs = append(errs, err)
				res = append(res, SweepResult{Prefix: st.Prefix, Reason: err.Error()})
				continue
			}
			res = append(res, SweepResult{Prefix: st.Prefix, Removed: true, Reason: fmt.Sprintf("owner PID %d is dead", st.OwnerPID)})
		}
	}
	return res, errors.Join(errs...)
}

// Run runs argv inside the namespace (ip netns exec) and returns its combined output.
func (n *NS) Run(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %q in %s: %w: %s", strings.Join(argv, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Process is a long-running program started in a namespace. Down stops it by PID.
type Process struct {
	// NS is the namespace it runs in.
	NS *NS
	// Argv is the command line.
	Argv []string
	// PID is its process id.
	PID int

	cmd     *exec.Cmd
	out     *tailBuffer
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// Start starts argv inside the namespace in the background; its output is kept (the last 64 KiB) for
// Output. The lab stops it on Down; Stop stops it earlier.
func (n *NS) Start(argv ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	p := &Process{NS: n, Argv: argv, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := n.lab.startTracked(p.cmd, n, argv, ""); err != nil {
		return nil, err
	}
	p.PID = p.cmd.Process.Pid
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	n.lab.mu.Lock()
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	return p, nil
}

// StartDetached starts argv inside the namespace in its own session, output appended to logPath, and does
// not wait for it: it outlives this process (bench lab up) and is stopped by PID from the state file by
// Down, Teardown or `bench lab down`.
func (n *NS) StartDetached(logPath string, argv ...string) (ProcessRecord, error) {
	if len(argv) == 0 {
		return ProcessRecord{}, errors.New("start: empty command")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return ProcessRecord{}, fmt.Errorf("start %s in %s: %w", argv[0], n.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := n.lab.startTracked(cmd, n, argv, logPath); err != nil {
		return ProcessRecord{}, err
	}
	rec := n.lab.lastRecord()
	// Reap it if it exits while we still run; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	return rec, nil
}

// startTracked starts cmd and records it in the state file before returning.
func (l *Lab) startTracked(cmd *exec.Cmd, n *NS, argv []string, logPath string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return fmt.Errorf("start %s in %s: lab is down", argv[0], n.Name)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s in %s: %w", argv[0], n.Name, err)
	}
	ticks, _ := procStartTicks(cmd.Process.Pid)
	l.state.Processes = append(l.state.Processes, ProcessRecord{
		PID: cmd.Process.Pid, StartTicks: ticks, Namespace: n.Name, Argv: argv, Log: logPath,
	})
	if err := writeState(l.Spec.StateDir, l.state); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	return nil
}

func (l *Lab) lastRecord() ProcessRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.Processes[len(l.state.Processes)-1]
}

// Stop sends SIGTERM, waits up to 3 s, then SIGKILL, and waits for the exit. It is idempotent.
func (p *Process) Stop() {
	p.stop.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(3 * time.Second):
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Output returns the last 64 KiB of the process's combined stdout and stderr.
func (p *Process) Output() string { return p.out.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
