package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/xdpsvc/lb/bench/tstest"
)

// Addresses of the two ends of a Pair.
var (
	PairAddrA = netip.MustParseAddr("198.18.0.1")
	PairAddrB = netip.MustParseAddr("198.18.0.2")
)

var pairSeq atomic.Uint32

// Pair is a throw-away pair of namespaces for the privileged tests of the steering program and the
// AF_XDP layer: namespace A (the appliance side, interface IfA) and namespace B (the peer, IfB),
// joined by one single-queue veth pair. It is much smaller than a Lab: no switch, no state file.
type Pair struct {
	NSA, NSB string
	IfA, IfB string
	A, B     netns.NsHandle
}

// MustRun runs a command and fails the test with its output on error.
func MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewPair creates the namespaces and the veth pair (1 RX and 1 TX queue each, checksum and
// segmentation offloads off on both ends so frames look like a wire's), addresses PairAddrA/24 and
// PairAddrB/24, links up, IPv6 off. It skips the test when not root. Everything is removed in
// t.Cleanup, also when the test fails.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	tstest.RequireRoot(t)
	prefix := fmt.Sprintf("xl%d%d", os.Getpid()%100000, pairSeq.Add(1))
	p := &Pair{NSA: prefix + "a", NSB: prefix + "b", IfA: "xa0", IfB: "xb0"}
	for _, ns := range []string{p.NSA, p.NSB} {
		MustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		MustRun(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	MustRun(t, "ip", "-n", p.NSA, "link", "add", p.IfA, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
		"peer", "name", p.IfB, "netns", p.NSB, "numtxqueues", "1", "numrxqueues", "1")
	MustRun(t, "ip", "-n", p.NSA, "addr", "add", PairAddrA.String()+"/24", "dev", p.IfA)
	MustRun(t, "ip", "-n", p.NSB, "addr", "add", PairAddrB.String()+"/24", "dev", p.IfB)
	for _, x := range [][2]string{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		MustRun(t, "ip", "netns", "exec", x[0], "ethtool", "-K", x[1], "tx", "off", "tso", "off", "gso", "off")
		MustRun(t, "ip", "-n", x[0], "link", "set", x[1], "up")
		MustRun(t, "ip", "-n", x[0], "link", "set", "lo", "up")
	}
	var err error
	if p.A, err = netns.GetFromName(p.NSA); err != nil {
		t.Fatalf("open namespace %s: %v", p.NSA, err)
	}
	if p.B, err = netns.GetFromName(p.NSB); err != nil {
		t.Fatalf("open namespace %s: %v", p.NSB, err)
	}
	t.Cleanup(func() { p.A.Close(); p.B.Close() })
	return p
}

// DoIn runs fn on a locked OS thread of a goroutine of its own, switched into ns, and switches back
// afterwards. Sockets fn creates stay in ns. If the thread cannot be switched back it is left locked,
// so the Go runtime discards it with that goroutine.
func DoIn(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave namespace: %w (fn: %v)", err, ferr) // thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Ifindex returns the index of interface name inside ns, or fails the test.
func Ifindex(t testing.TB, ns netns.NsHandle, name string) int {
	t.Helper()
	var idx int
	err := DoIn(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	})
	if err != nil {
		t.Fatalf("ifindex of %s: %v", name, err)
	}
	return idx
}
