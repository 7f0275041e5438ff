// Package nslab builds throw-away network namespace pairs for the privileged tests of the
// steering program and the AF_XDP layer: two namespaces joined by a single-queue veth pair,
// addressed from 198.18.0.0/24, deleted in t.Cleanup even when the test fails.
//
// Only test code uses it. Each Pair belongs to the test that made it; Do may be called from any
// goroutine (it locks the OS thread for the duration of fn).
package nslab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

// Addresses of the two ends.
var (
	AddrA = netip.MustParseAddr("198.18.0.1")
	AddrB = netip.MustParseAddr("198.18.0.2")
)

var seq atomic.Uint32

// Pair is namespace A (the appliance side, interface IfA) and namespace B (the peer, IfB).
type Pair struct {
	NSA, NSB string
	IfA, IfB string
	A, B     netns.NsHandle
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP, AF_XDP): run as root to test on this kernel")
	}
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewPair creates the namespaces and the veth pair (1 RX and 1 TX queue each, checksum and
// segmentation offloads off on both ends so frames look like a wire's), addresses AddrA/24 and
// AddrB/24, links up, IPv6 off. Everything is removed in t.Cleanup.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	RequireRoot(t)
	prefix := fmt.Sprintf("xl%d%d", os.Getpid()%100000, seq.Add(1))
	p := &Pair{NSA: prefix + "a", NSB: prefix + "b", IfA: "xa0", IfB: "xb0"}
	for _, ns := range []string{p.NSA, p.NSB} {
		Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	Run(t, "ip", "-n", p.NSA, "link", "add", p.IfA, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
		"peer", "name", p.IfB, "netns", p.NSB, "numtxqueues", "1", "numrxqueues", "1")
	Run(t, "ip", "-n", p.NSA, "addr", "add", AddrA.String()+"/24", "dev", p.IfA)
	Run(t, "ip", "-n", p.NSB, "addr", "add", AddrB.String()+"/24", "dev", p.IfB)
	for _, x := range [][2]string{{p.NSA, p.IfA}, {p.NSB, p.IfB}} {
		Run(t, "ip", "netns", "exec", x[0], "ethtool", "-K", x[1], "tx", "off", "tso", "off", "gso", "off")
		Run(t, "ip", "-n", x[0], "link", "set", x[1], "up")
		Run(t, "ip", "-n", x[0], "link", "set", "lo", "up")
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

// Do runs fn on a locked OS thread inside ns and restores the thread's namespace afterwards.
// Sockets fn creates stay in ns.
func Do(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it is discarded when this goroutine ends.
		return fmt.Errorf("restore namespace: %w (fn: %v)", err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Ifindex returns the index of interface name inside ns.
func Ifindex(t testing.TB, ns netns.NsHandle, name string) int {
	t.Helper()
	var idx int
	err := Do(ns, func() error {
		ifi, err := netInterfaceByName(name)
		idx = ifi
		return err
	})
	if err != nil {
		t.Fatalf("ifindex of %s: %v", name, err)
	}
	return idx
}
