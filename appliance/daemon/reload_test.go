package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/appliance/steer"
)

// fakeSteerMaps holds what a steering program's maps would, and refuses a frontend set larger
// than maxFrontends as steer.Program does one larger than Config.MaxFrontends.
type fakeSteerMaps struct {
	maxFrontends int
	frontends    []steer.Frontend
	ranges       []steer.PortRange
	vips         []netip.Addr
}

func (f *fakeSteerMaps) SetFrontends(set []steer.Frontend) error {
	if len(set) > f.maxFrontends {
		return fmt.Errorf("set frontends: plan needs %d entries, the maps hold %d (Config.MaxFrontends): previous entries kept", len(set), f.maxFrontends)
	}
	f.frontends = slices.Clone(set)
	return nil
}

func (f *fakeSteerMaps) SetPortRanges(r []steer.PortRange) error {
	f.ranges = slices.Clone(r)
	return nil
}

func (f *fakeSteerMaps) SetVIPs(v []netip.Addr) error {
	f.vips = slices.Clone(v)
	return nil
}

// steeredTCP lists the TCP frontends the maps hold, as "addr:port".
func (f *fakeSteerMaps) steeredTCP() []string {
	var out []string
	for _, fe := range f.frontends {
		if fe.Proto == steer.ProtoTCP {
			out = append(out, netip.AddrPortFrom(fe.Addr, fe.Port).String())
		}
	}
	slices.Sort(out)
	return out
}

func planTCP(p *dataplane.Plan) []string {
	var out []string
	for _, f := range p.Frontends() {
		if f.Proto == steer.ProtoTCP {
			out = append(out, netip.AddrPortFrom(f.Addr, f.Port).String())
		}
	}
	slices.Sort(out)
	return out
}

const oneService = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 198.19.0.10
  ports: [{port: 80}]
`

const threeServices = oneService + `---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: cache}
spec:
  ports: [{port: 6379}]
`

// startReloadNode brings a manifest-mode node up in-process serving manifest, with the AF_XDP
// layer's Sync writing into fake steering maps (one per interface; the test's one port is
// steered by two fakes so that a refusal on the second must undo the first). The test then
// plays the control goroutine: it calls reload itself.
func startReloadNode(t *testing.T, manifest string, first, second *fakeSteerMaps) (*node, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`node: {name: lb-a}
interfaces: [{name: test0}]
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  snat:
    ports: 62000-62999
    addresses: [198.18.1.12]
cluster:
  bind: 127.0.0.1:%d
  insecure: true
  requireQuorum: false
services:
  manifests: [services.yaml]
admin:
  listen: 127.0.0.1:%d
state:
  path: state.json
`, freePort(t), freePort(t))
	for f, data := range map[string]string{"lb.yaml": cfg, "services.yaml": manifest} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{
		ConfigPath: filepath.Join(dir, "lb.yaml"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ports: []dataplane.Port{{Name: "test0", Ifindex: 1 << 20, MAC: [6]byte{2, 0, 0, 0, 0, 1}, Role: dataplane.RoleBoth,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24"), netip.MustParsePrefix("198.18.1.12/24")}}},
		OpenIO: func(ports []dataplane.Port, dp *dataplane.DataPlane, _ *slog.Logger) (IOLayer, error) {
			ctc := dp.ConntrackConfig()
			a := &afxdp{ports: ports, snatLo: ctc.SNATPortMin, snatHi: ctc.SNATPortMax, describe: "fake steering",
				steering: []steeringTarget{{name: "test0", maps: first}, {name: "test0-second", maps: second}}}
			q := Queue{Wait: idleIO{}.wait}
			for range ports {
				q.IO = append(q.IO, idleIO{})
			}
			a.queues = []Queue{q}
			return a, nil
		},
	}
	n, err := newNode(opts)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := n.initialSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	if err := n.start(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	return n, dir
}

// TestReloadRefusedBySteering reloads a plan with more frontends than the second interface's
// steering map holds: the reload fails, the data plane and both interfaces' steering maps keep
// the old plan, the state file is not written and the old manifests stay loaded. Once the map
// has room the same manifests reload. (Before installPlan the steering error was only logged,
// the reload reported success with the new plan in the data plane, and build had saved the
// new state already.)
func TestReloadRefusedBySteering(t *testing.T) {
	first, second := &fakeSteerMaps{maxFrontends: 100}, &fakeSteerMaps{maxFrontends: 5}
	n, dir := startReloadNode(t, oneService, first, second)
	oldTCP := planTCP(n.dp.Plan())
	if want := []string{"198.19.0.10:80"}; !slices.Equal(oldTCP, want) {
		t.Fatalf("serving %v, want %v", oldTCP, want)
	}
	statePath := filepath.Join(dir, "state.json")
	oldState, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatalf("initial state not saved once serving: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(threeServices), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.reload("test"); err == nil {
		t.Fatal("reload of a plan the steering map cannot hold succeeded")
	}
	if got := planTCP(n.dp.Plan()); !slices.Equal(got, oldTCP) {
		t.Errorf("data plane serves %v after the refused reload, want the old %v", got, oldTCP)
	}
	for name, m := range map[string]*fakeSteerMaps{"first": first, "second": second} {
		if got := m.steeredTCP(); !slices.Equal(got, oldTCP) {
			t.Errorf("%s interface steers %v after the refused reload, want the old %v", name, got, oldTCP)
		}
	}
	if got := len(n.snapshot().Services); got != 1 {
		t.Errorf("view shows %d Services after the refused reload, want 1", got)
	}
	if got := len(n.control.objs); got != 1 {
		t.Errorf("%d manifest objects loaded after the refused reload, want the old 1", got)
	}
	if got, err := os.ReadFile(statePath); err != nil || string(got) != string(oldState) {
		t.Errorf("state file changed by the refused reload (err %v):\n%s\nwas:\n%s", err, got, oldState)
	}

	second.maxFrontends = 100
	if err := n.reload("test"); err != nil {
		t.Fatalf("reload with room in the steering maps: %v", err)
	}
	if got := planTCP(n.dp.Plan()); len(got) != 3 || !slices.Equal(second.steeredTCP(), got) {
		t.Fatalf("serving %v, steering %v: want the three Services in both", got, second.steeredTCP())
	}
	st, err := service.LoadState(statePath)
	if err != nil || len(st.Services) != 3 {
		t.Fatalf("state after the accepted reload: %+v, %v: want three Services", st, err)
	}
}

// TestSNATConfigReachesDataPlane: network.snat.ports sets the conntrack table's SNAT ports and
// the steered range of every node address, and network.snat.addresses puts the chosen address
// first on the port (the data plane's SNAT source).
func TestSNATConfigReachesDataPlane(t *testing.T) {
	first, second := &fakeSteerMaps{maxFrontends: 100}, &fakeSteerMaps{maxFrontends: 100}
	n, _ := startReloadNode(t, oneService, first, second)
	ctc := n.dp.ConntrackConfig()
	if ctc.SNATPortMin != 62000 || ctc.SNATPortMax != 62999 {
		t.Errorf("conntrack SNAT ports %d-%d, want 62000-62999", ctc.SNATPortMin, ctc.SNATPortMax)
	}
	if got := n.dp.Ports()[0].Prefixes[0].Addr(); got != netip.MustParseAddr("198.18.1.12") {
		t.Errorf("port's first prefix (SNAT source) %s, want 198.18.1.12", got)
	}
	want := []steer.PortRange{
		{Addr: netip.MustParseAddr("198.18.1.12"), First: 62000, Last: 62999},
		{Addr: netip.MustParseAddr("198.18.1.11"), First: 62000, Last: 62999},
	}
	if !slices.Equal(first.ranges, want) {
		t.Errorf("steered ranges %v, want %v", first.ranges, want)
	}
}
