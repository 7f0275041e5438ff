package neigh

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestEntryWord(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x21}
	tests := []struct {
		name   string
		state  int
		lladdr net.HardwareAddr
		usable bool
	}{
		{"reachable", netlink.NUD_REACHABLE, mac, true},
		{"stale", netlink.NUD_STALE, mac, true},
		{"delay", netlink.NUD_DELAY, mac, true},
		{"probe", netlink.NUD_PROBE, mac, true},
		{"permanent", netlink.NUD_PERMANENT, mac, true},
		{"noarp with mac", netlink.NUD_NOARP, mac, true},
		{"noarp zero mac", netlink.NUD_NOARP, net.HardwareAddr{0, 0, 0, 0, 0, 0}, false},
		{"incomplete", netlink.NUD_INCOMPLETE, nil, false},
		{"incomplete with old mac", netlink.NUD_INCOMPLETE, mac, false},
		{"failed with old mac", netlink.NUD_FAILED, mac, false},
		{"none", netlink.NUD_NONE, mac, false},
		{"no entry", 0, nil, false},
		{"reachable zero mac", netlink.NUD_REACHABLE, net.HardwareAddr{0, 0, 0, 0, 0, 0}, false},
		{"reachable broadcast", netlink.NUD_REACHABLE, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
		{"reachable multicast", netlink.NUD_REACHABLE, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, false},
		{"reachable short mac", netlink.NUD_REACHABLE, net.HardwareAddr{2, 0, 0, 0}, false},
		{"reachable infiniband-length mac", netlink.NUD_REACHABLE, make(net.HardwareAddr, 20), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, ok := entryWord(tc.state, tc.lladdr)
			if ok != tc.usable {
				t.Fatalf("usable = %v, want %v", ok, tc.usable)
			}
			s := NewSlots(4)
			s.store(2, w)
			got, gotOK := s.MAC(2)
			if gotOK != tc.usable {
				t.Fatalf("Slots.MAC ok = %v, want %v", gotOK, tc.usable)
			}
			if gotOK && net.HardwareAddr(got[:]).String() != tc.lladdr.String() {
				t.Fatalf("MAC %x, want %v", got, tc.lladdr)
			}
			if !gotOK && got != ([6]byte{}) {
				t.Fatalf("invalid slot returned MAC %x", got)
			}
		})
	}
}

func TestSlotsBounds(t *testing.T) {
	s := NewSlots(3)
	w, _ := entryWord(netlink.NUD_REACHABLE, net.HardwareAddr{2, 1, 2, 3, 4, 5})
	s.store(1, w)
	tests := []struct {
		name string
		slot Slot
		ok   bool
	}{
		{"no slot", NoSlot, false},
		{"set slot", 1, true},
		{"unset slot", 2, false},
		{"past the end", 3, false},
		{"far past the end", ^Slot(0), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := s.MAC(tc.slot); ok != tc.ok {
				t.Fatalf("MAC(%d) ok = %v, want %v", tc.slot, ok, tc.ok)
			}
			_ = s.LinkIndex(tc.slot)
		})
	}
}

// fakeKernel is a route and neighbour table for unit tests.
type fakeKernel struct {
	mu     sync.Mutex
	routes map[netip.Addr]netlink.Route // by destination; missing → ENETUNREACH
	neighs []netlink.Neigh
}

func (f *fakeKernel) RouteGet(dst net.IP) ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, _ := netip.AddrFromSlice(dst)
	rt, ok := f.routes[a.Unmap()]
	if !ok {
		return nil, unix.ENETUNREACH
	}
	return []netlink.Route{rt}, nil
}

func (f *fakeKernel) NeighList(link, fam int) ([]netlink.Neigh, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Neigh
	for _, n := range f.neighs {
		if (link == 0 || n.LinkIndex == link) && n.Family == fam {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeKernel) setNeigh(link int, ip string, state int, mac net.HardwareAddr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := netip.MustParseAddr(ip)
	n := netlink.Neigh{LinkIndex: link, Family: family(a), IP: a.AsSlice(), State: state, HardwareAddr: mac}
	for i := range f.neighs {
		if f.neighs[i].LinkIndex == link && f.neighs[i].IP.Equal(n.IP) {
			f.neighs[i] = n
			return
		}
	}
	f.neighs = append(f.neighs, n)
}

type probeLog struct {
	mu    sync.Mutex
	calls []netip.Addr
}

func (p *probeLog) probe(ip netip.Addr, link int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, ip)
	return nil
}

func (p *probeLog) count(ip string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if c == netip.MustParseAddr(ip) {
			n++
		}
	}
	return n
}

var (
	macA = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 2}
)

func newFake(t *testing.T) (*Resolver, *fakeKernel, *probeLog) {
	t.Helper()
	k := &fakeKernel{routes: map[netip.Addr]netlink.Route{
		netip.MustParseAddr("198.18.1.21"): {LinkIndex: 3, Type: unix.RTN_UNICAST},
		netip.MustParseAddr("198.18.1.22"): {LinkIndex: 3, Type: unix.RTN_UNICAST},
		netip.MustParseAddr("198.18.0.77"): {LinkIndex: 2, Type: unix.RTN_UNICAST, Gw: net.ParseIP("198.18.0.1")},
		netip.MustParseAddr("198.18.0.78"): {LinkIndex: 2, Type: unix.RTN_UNICAST, Gw: net.ParseIP("198.18.0.1")},
		netip.MustParseAddr("198.18.1.1"):  {LinkIndex: 1, Type: unix.RTN_LOCAL},
		netip.MustParseAddr("2001:db8::5"): {LinkIndex: 3, Type: unix.RTN_UNICAST, Gw: net.ParseIP("fe80::1")},
	}}
	p := &probeLog{}
	cfg := DefaultConfig()
	cfg.MaxSlots = 8
	cfg.Probe = p.probe
	cfg.ProbeInterval = time.Nanosecond
	cfg.RevalidateInterval = time.Nanosecond
	return newResolver(cfg, k), k, p
}

func TestResolveRules(t *testing.T) {
	tests := []struct {
		name      string
		dst       string
		kernel    func(k *fakeKernel)
		wantErr   error
		wantNH    string // next hop of the slot
		wantMAC   net.HardwareAddr
		wantProbe bool
	}{
		{"on-link reachable", "198.18.1.21", func(k *fakeKernel) { k.setNeigh(3, "198.18.1.21", netlink.NUD_REACHABLE, macA) }, nil, "198.18.1.21", macA, false},
		{"on-link stale is used and revalidated", "198.18.1.21", func(k *fakeKernel) { k.setNeigh(3, "198.18.1.21", netlink.NUD_STALE, macA) }, nil, "198.18.1.21", macA, true},
		{"on-link missing is probed", "198.18.1.22", nil, nil, "198.18.1.22", nil, true},
		{"on-link failed is probed", "198.18.1.22", func(k *fakeKernel) { k.setNeigh(3, "198.18.1.22", netlink.NUD_FAILED, macA) }, nil, "198.18.1.22", nil, true},
		{"entry on another link does not count", "198.18.1.21", func(k *fakeKernel) { k.setNeigh(4, "198.18.1.21", netlink.NUD_REACHABLE, macA) }, nil, "198.18.1.21", nil, true},
		{"via gateway", "198.18.0.77", func(k *fakeKernel) { k.setNeigh(2, "198.18.0.1", netlink.NUD_REACHABLE, macB) }, nil, "198.18.0.1", macB, false},
		{"ipv6 via link-local gateway", "2001:db8::5", func(k *fakeKernel) { k.setNeigh(3, "fe80::1", netlink.NUD_DELAY, macB) }, nil, "fe80::1", macB, false},
		{"local address", "198.18.1.1", nil, ErrLocal, "", nil, false},
		{"no route", "198.18.9.9", nil, unix.ENETUNREACH, "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, k, p := newFake(t)
			if tc.kernel != nil {
				tc.kernel(k)
			}
			slot, err := r.Resolve(netip.MustParseAddr(tc.dst))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve err = %v, want %v", err, tc.wantErr)
				}
				if _, ok := r.Snapshot().Slot(netip.MustParseAddr(tc.dst)); ok {
					t.Fatal("failed destination is in the snapshot")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.info[slot.index()].key.ip.String(); got != tc.wantNH {
				t.Fatalf("next hop %s, want %s", got, tc.wantNH)
			}
			mac, ok := r.Slots().MAC(slot)
			if ok != (tc.wantMAC != nil) || (ok && net.HardwareAddr(mac[:]).String() != tc.wantMAC.String()) {
				t.Fatalf("MAC %x ok=%v, want %v", mac, ok, tc.wantMAC)
			}
			if got := p.count(tc.wantNH) > 0; got != tc.wantProbe {
				t.Fatalf("probed = %v, want %v", got, tc.wantProbe)
			}
			if s, ok := r.Snapshot().Slot(netip.MustParseAddr(tc.dst)); !ok || s != slot {
				t.Fatalf("snapshot slot %d %v, want %d", s, ok, slot)
			}
		})
	}
}

func TestUpdatesRefreshAndSharing(t *testing.T) {
	r, k, p := newFake(t)
	s77, err := r.Resolve(netip.MustParseAddr("198.18.0.77"))
	if err != nil {
		t.Fatal(err)
	}
	s78, err := r.Resolve(netip.MustParseAddr("198.18.0.78"))
	if err != nil {
		t.Fatal(err)
	}
	if s77 != s78 || s77 == NoSlot {
		t.Fatalf("two clients behind one gateway got slots %d and %d", s77, s78)
	}
	if r.Slots().LinkIndex(s77) != 2 {
		t.Fatalf("link %d, want 2", r.Slots().LinkIndex(s77))
	}
	gw := net.ParseIP("198.18.0.1").To4()
	steps := []struct {
		name string
		u    netlink.NeighUpdate
		mac  net.HardwareAddr
	}{
		{"reachable", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_REACHABLE, HardwareAddr: macA}}, macA},
		{"other link ignored", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 5, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_REACHABLE, HardwareAddr: macB}}, macA},
		{"changed mac", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_STALE, HardwareAddr: macB}}, macB},
		{"probe keeps mac", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_PROBE, HardwareAddr: macB}}, macB},
		{"failed", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_FAILED, HardwareAddr: macB}}, nil},
		{"relearned", netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_REACHABLE, HardwareAddr: macA}}, macA},
		{"deleted", netlink.NeighUpdate{Type: unix.RTM_DELNEIGH, Neigh: netlink.Neigh{LinkIndex: 2, Family: netlink.FAMILY_V4, IP: gw, State: netlink.NUD_REACHABLE, HardwareAddr: macA}}, nil},
	}
	for _, st := range steps {
		r.HandleUpdate(st.u)
		mac, ok := r.Slots().MAC(s77)
		if ok != (st.mac != nil) || (ok && net.HardwareAddr(mac[:]).String() != st.mac.String()) {
			t.Fatalf("after %s: MAC %x ok=%v, want %v", st.name, mac, ok, st.mac)
		}
	}
	// The periodic re-dump picks up an entry the notifications missed.
	k.setNeigh(2, "198.18.0.1", netlink.NUD_REACHABLE, macB)
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if mac, ok := r.Slots().MAC(s77); !ok || net.HardwareAddr(mac[:]).String() != macB.String() {
		t.Fatalf("after refresh: MAC %x ok=%v", mac, ok)
	}
	// A route change moves the destination to a new next hop; the old slot keeps its neighbour.
	k.mu.Lock()
	k.routes[netip.MustParseAddr("198.18.0.78")] = netlink.Route{LinkIndex: 2, Type: unix.RTN_UNICAST, Gw: net.ParseIP("198.18.0.2")}
	k.mu.Unlock()
	before := p.count("198.18.0.2")
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot().Slot(netip.MustParseAddr("198.18.0.78"))
	if s == s77 || s == NoSlot || r.info[s.index()].key.ip.String() != "198.18.0.2" {
		t.Fatalf("re-routed destination has slot %d (%v)", s, r.info[s.index()].key)
	}
	if p.count("198.18.0.2") <= before {
		t.Fatal("new unresolved next hop was not probed")
	}
	if _, ok := r.Slots().MAC(s); ok {
		t.Fatal("unresolved next hop has a MAC")
	}
}

func TestSlotsExhausted(t *testing.T) {
	r, k, _ := newFake(t) // 8 slots: 7 next hops
	for i := range 7 {
		a := netip.AddrFrom4([4]byte{198, 18, 1, byte(100 + i)})
		k.routes[a] = netlink.Route{LinkIndex: 3, Type: unix.RTN_UNICAST}
		if _, err := r.Resolve(a); err != nil {
			t.Fatalf("next hop %d: %v", i, err)
		}
	}
	a := netip.MustParseAddr("198.18.1.21")
	if _, err := r.Resolve(a); !errors.Is(err, ErrNoSlots) {
		t.Fatalf("Resolve beyond MaxSlots = %v, want ErrNoSlots", err)
	}
}

func TestRequestQueue(t *testing.T) {
	r, k, _ := newFake(t)
	k.setNeigh(3, "198.18.1.21", netlink.NUD_REACHABLE, macA)
	if !r.Request(netip.MustParseAddr("198.18.1.21")) {
		t.Fatal("request refused")
	}
	r.serveRequests(<-r.requests)
	s, ok := r.Snapshot().Slot(netip.MustParseAddr("198.18.1.21"))
	if !ok {
		t.Fatal("requested destination not in snapshot")
	}
	if _, ok := r.Slots().MAC(s); !ok {
		t.Fatal("requested destination has no MAC")
	}
	for range r.cfg.RequestQueueLen {
		r.Request(netip.MustParseAddr("198.18.1.22"))
	}
	if r.Request(netip.MustParseAddr("198.18.1.22")) || r.Stats().RequestsDropped != 1 {
		t.Fatalf("full queue: dropped %d", r.Stats().RequestsDropped)
	}
}

func TestDataPathAllocatesNothing(t *testing.T) {
	r, k, _ := newFake(t)
	k.setNeigh(3, "198.18.1.21", netlink.NUD_REACHABLE, macA)
	dst := netip.MustParseAddr("198.18.1.21")
	if _, err := r.Resolve(dst); err != nil {
		t.Fatal(err)
	}
	slots := r.Slots()
	allocs := testing.AllocsPerRun(1000, func() {
		s, ok := r.Snapshot().Slot(dst)
		if !ok {
			t.Fatal("unknown")
		}
		if _, ok := slots.MAC(s); !ok {
			t.Fatal("no MAC")
		}
		_ = slots.LinkIndex(s)
	})
	if allocs != 0 {
		t.Fatalf("data path allocates %v times", allocs)
	}
}

// TestConcurrentReaders runs data-plane readers against control-side writers (for -race): a
// reader must only ever see one of the MACs written, never a torn or zero MAC with ok=true.
func TestConcurrentReaders(t *testing.T) {
	r, _, _ := newFake(t)
	dst := netip.MustParseAddr("198.18.1.21")
	slot, err := r.Resolve(dst)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP("198.18.1.21").To4()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	bad := make(chan [6]byte, 1)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, _ := r.Snapshot().Slot(dst)
				if mac, ok := r.Slots().MAC(s); ok && mac != [6]byte(macA) && mac != [6]byte(macB) {
					select {
					case bad <- mac:
					default:
					}
				}
			}
		}()
	}
	for i := range 2000 {
		mac := macA
		if i%2 == 1 {
			mac = macB
		}
		r.HandleUpdate(netlink.NeighUpdate{Type: unix.RTM_NEWNEIGH, Neigh: netlink.Neigh{LinkIndex: 3, Family: netlink.FAMILY_V4, IP: ip, State: netlink.NUD_REACHABLE, HardwareAddr: mac}})
		if i%7 == 0 {
			r.HandleUpdate(netlink.NeighUpdate{Type: unix.RTM_DELNEIGH, Neigh: netlink.Neigh{LinkIndex: 3, Family: netlink.FAMILY_V4, IP: ip}})
		}
	}
	close(stop)
	wg.Wait()
	select {
	case mac := <-bad:
		t.Fatalf("reader saw MAC %x in slot %d", mac, slot)
	default:
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"one slot", func(c *Config) { c.MaxSlots = 1 }, false},
		{"most slots a handle can name", func(c *Config) { c.MaxSlots = maxSlots }, true},
		{"more slots than a handle can name", func(c *Config) { c.MaxSlots = maxSlots + 1 }, false},
		{"no quarantine", func(c *Config) { c.SlotQuarantine = 0 }, false},
		{"no destinations", func(c *Config) { c.MaxDestinations = 0 }, false},
		{"no queue", func(c *Config) { c.RequestQueueLen = 0 }, false},
		{"zero refresh", func(c *Config) { c.RefreshInterval = 0 }, false},
		{"zero probe interval", func(c *Config) { c.ProbeInterval = 0 }, false},
		{"revalidation off", func(c *Config) { c.RevalidateInterval = 0 }, true},
		{"negative revalidation", func(c *Config) { c.RevalidateInterval = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			if err := c.validate(); (err == nil) != tc.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
