package neigh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsvc/lb/bench/tstest"
)

var nsCounter atomic.Int32

// lab is two fresh namespaces joined by a veth pair: "a" (the resolver's, a0 198.18.0.1/24,
// route 198.18.1.0/24 via 198.18.0.2) and "b" (the neighbour, b0 198.18.0.2/24). IPv6 is off so
// that nothing leaves 198.18.0.0/15.
type lab struct {
	a, b string
	ns   netns.NsHandle
}

const macB0 = "02:00:5e:12:00:b0"

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newLab(t *testing.T) *lab {
	t.Helper()
	tstest.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	n := nsCounter.Add(1)
	l := &lab{a: fmt.Sprintf("neightest-%d-%d-a", os.Getpid(), n), b: fmt.Sprintf("neightest-%d-%d-b", os.Getpid(), n)}
	for _, ns := range []string{l.a, l.b} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", l.a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", l.b)
	run(t, "ip", "-n", l.b, "link", "set", "b0", "address", macB0)
	run(t, "ip", "-n", l.a, "addr", "add", "198.18.0.1/24", "dev", "a0")
	run(t, "ip", "-n", l.b, "addr", "add", "198.18.0.2/24", "dev", "b0")
	run(t, "ip", "-n", l.a, "link", "set", "a0", "up")
	run(t, "ip", "-n", l.b, "link", "set", "b0", "up")
	run(t, "ip", "-n", l.a, "route", "add", "198.18.1.0/24", "via", "198.18.0.2")
	ns, err := netns.GetFromName(l.a)
	if err != nil {
		t.Fatalf("open namespace %s: %v", l.a, err)
	}
	t.Cleanup(func() { ns.Close() })
	l.ns = ns
	return l
}

// start runs a Resolver in namespace a until the test ends.
func (l *lab) start(t *testing.T, change func(*Config)) *Resolver {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NetNS = &l.ns
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.RefreshInterval = 2 * time.Second
	if change != nil {
		change(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); r.Close() })
	return r
}

// waitMAC waits (bounded) until slot holds want.
func waitMAC(t *testing.T, r *Resolver, slot Slot, want string, timeout time.Duration) {
	t.Helper()
	tstest.Eventually(t, timeout, fmt.Sprintf("slot %d holds MAC %s", slot, want), func() error {
		mac, ok := r.Slots().MAC(slot)
		if !ok {
			return fmt.Errorf("invalid")
		}
		if got := net.HardwareAddr(mac[:]).String(); got != want {
			return fmt.Errorf("MAC %s", got)
		}
		return nil
	})
}

func TestKernelResolvesAnsweringNeighbour(t *testing.T) {
	tests := []struct {
		name    string
		dst     string
		nextHop string
	}{
		{"on-link neighbour", "198.18.0.2", "198.18.0.2"},
		{"behind gateway", "198.18.1.50", "198.18.0.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			r := l.start(t, nil)
			slot, err := r.Resolve(netip.MustParseAddr(tc.dst))
			if err != nil {
				t.Fatal(err)
			}
			waitMAC(t, r, slot, macB0, 5*time.Second)
			if got := r.info[slot.index()].key.ip.String(); got != tc.nextHop {
				t.Fatalf("next hop %s, want %s", got, tc.nextHop)
			}
			h, err := netlink.NewHandleAt(l.ns)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			a0, err := h.LinkByName("a0")
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Slots().LinkIndex(slot); got != a0.Attrs().Index {
				t.Fatalf("slot link %d, want a0 (%d)", got, a0.Attrs().Index)
			}
		})
	}
}

func TestKernelSilentAddressNeverResolves(t *testing.T) {
	l := newLab(t)
	r := l.start(t, nil)
	slot, err := r.Resolve(netip.MustParseAddr("198.18.0.99"))
	if err != nil {
		t.Fatal(err)
	}
	tstest.Never(t, 3*time.Second, 20*time.Millisecond, "silent address got a MAC", func() bool {
		mac, ok := r.Slots().MAC(slot)
		return ok || mac != ([6]byte{})
	})
	if st := r.Stats(); st.ProbesSent < 3 {
		t.Fatalf("only %d probes sent in 3 s at a 200 ms interval", st.ProbesSent)
	}
	// The probes really made the kernel try: its entry exists and is not usable.
	h, err := netlink.NewHandleAt(l.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	neighs, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range neighs {
		if n.IP.Equal(net.ParseIP("198.18.0.99")) {
			found = true
			if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				t.Fatalf("kernel entry state %#x", n.State)
			}
		}
	}
	if !found {
		t.Fatal("kernel has no neighbour entry for the probed address: the probe did not reach it")
	}
}

func TestKernelFollowsChangedMAC(t *testing.T) {
	const newMAC = "02:00:5e:12:00:b1"
	tests := []struct {
		name    string
		prepare func(t *testing.T, l *lab)
		config  func(*Config)
		quiet   bool // change the MAC while the kernel entry is STALE
	}{
		{
			// The neighbour announces its new address (arp_notify): the notification path.
			name: "gratuitous ARP",
			prepare: func(t *testing.T, l *lab) {
				run(t, "ip", "netns", "exec", l.b, "sysctl", "-qw", "net.ipv4.conf.b0.arp_notify=1")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			tc.prepare(t, l)
			r := l.start(t, tc.config)
			slot, err := r.Resolve(netip.MustParseAddr("198.18.0.2"))
			if err != nil {
				t.Fatal(err)
			}
			waitMAC(t, r, slot, macB0, 5*time.Second)
			if tc.quiet {
				// Change the MAC only once the kernel's entry has gone quiet (STALE): from there
				// the kernel sends nothing to the neighbour by itself.
				tstest.EventuallyTrue(t, 10*time.Second, "kernel entry goes STALE", func() bool {
					return r.slotState(slot)&netlink.NUD_STALE != 0
				})
			}
			run(t, "ip", "-n", l.b, "link", "set", "b0", "address", newMAC)
			waitMAC(t, r, slot, newMAC, 15*time.Second)
		})
	}
}

func (r *Resolver) slotState(slot Slot) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info[slot.index()].state
}
