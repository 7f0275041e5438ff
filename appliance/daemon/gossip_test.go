package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/health"
	"github.com/xdpsvc/lb/appliance/service"
	"github.com/xdpsvc/lb/bench/tstest"
	"github.com/xdpsvc/lb/cluster"
)

// fakeGossip is a cluster for health checking and flow sync: a settable member list, the
// registered handlers, and what was sent.
type fakeGossip struct {
	mu         sync.Mutex
	members    []cluster.MemberInfo
	handlers   map[cluster.MsgType]func([]byte)
	broadcasts []cluster.MsgType
	sent       map[string][]cluster.MsgType // by member
	meta       cluster.Meta
}

func newFakeGossip(members ...cluster.MemberInfo) *fakeGossip {
	return &fakeGossip{members: members, handlers: map[cluster.MsgType]func([]byte){}, sent: map[string][]cluster.MsgType{}}
}

func appliance(name string, state cluster.MemberState) cluster.MemberInfo {
	return cluster.MemberInfo{Name: name, State: state, MetaValid: true, Meta: cluster.Meta{Role: cluster.RoleAppliance}}
}

func (g *fakeGossip) setMembers(m ...cluster.MemberInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = m
}

func (g *fakeGossip) Members() []cluster.MemberInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.members)
}

func (g *fakeGossip) Handle(t cluster.MsgType, fn func([]byte)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers[t] = fn
	return nil
}

func (g *fakeGossip) deliver(t cluster.MsgType, p []byte) {
	g.mu.Lock()
	fn := g.handlers[t]
	g.mu.Unlock()
	fn(p)
}

func (g *fakeGossip) Broadcast(t cluster.MsgType, _ string, _ []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.broadcasts = append(g.broadcasts, t)
	return nil
}

func (g *fakeGossip) SendTo(m string, t cluster.MsgType, _ []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sent[m] = append(g.sent[m], t)
	return nil
}

func (g *fakeGossip) Meta() cluster.Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.meta
}

func (g *fakeGossip) SetMeta(m cluster.Meta, _ time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.meta = m
	return nil
}

// countRefresh counts refresh requests.
type countRefresh struct {
	mu  sync.Mutex
	why []string
}

func (c *countRefresh) requestRefresh(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.why = append(c.why, why)
}

func (c *countRefresh) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.why)
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestHealthCheckWithFakeGossip: reports from the other appliances decide by majority, a dead
// member's report stops counting, every change of the resolved set asks for a refresh, the own
// report goes out as a broadcast once there is a peer, and a malformed report is counted.
func TestHealthCheckWithFakeGossip(t *testing.T) {
	g := newFakeGossip(appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive),
		appliance("lb-c", cluster.StateAlive))
	refresh := &countRefresh{}
	h, err := newHealthCheck(config.HealthChecksConfig{Enabled: true, Interval: time.Second, Timeout: time.Second,
		HealthyThreshold: 1, UnhealthyThreshold: 1}, "lb-a", nil, refresh, discard)
	if err != nil {
		t.Fatal(err)
	}
	h.gossip = g
	ep := netip.MustParseAddrPort("198.18.1.21:8080")
	raw := snapWith(&service.Service{Namespace: "default", Name: "web", Ports: []service.Port{{Name: "http",
		Protocol: service.TCP, Port: 80, Endpoints: []service.Endpoint{{Addr: ep.Addr(), Port: ep.Port(), Ready: true, Serving: true}}}}})
	ready := func() bool { return h.apply(raw).Services[0].Ports[0].Endpoints[0].Ready }
	report := func(origin string) {
		b, err := health.AppendReport(nil, health.Report{Origin: origin, Generation: 1, Down: []netip.AddrPort{ep}})
		if err != nil {
			t.Fatal(err)
		}
		h.receive(b)
	}

	h.update(true)
	if len(g.broadcasts) != 1 || g.broadcasts[0] != msgHealth {
		t.Fatalf("own report: broadcasts %v, want one msgHealth", g.broadcasts)
	}
	report("lb-b")
	h.update(false)
	if !ready() || refresh.count() != 0 {
		t.Fatalf("one of three says down: ready %v, refreshes %d; want ready, none", ready(), refresh.count())
	}
	report("lb-c")
	h.update(false)
	if ready() || refresh.count() != 1 {
		t.Fatalf("two of three say down: ready %v, refreshes %d; want not ready, one", ready(), refresh.count())
	}
	g.setMembers(appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive), appliance("lb-c", cluster.StateDead))
	h.update(false)
	if !ready() || refresh.count() != 2 {
		t.Fatalf("lb-c dead, one of two says down: ready %v, refreshes %d; want ready, two", ready(), refresh.count())
	}
	h.receive([]byte{0xff})
	if got := counterValue(t, h.malformed); got != 1 {
		t.Fatalf("malformed reports %v, want 1", got)
	}
}

// TestFlowSyncWithFakeGossip: the peers are the other live appliances; the handlers pass a
// peer's request for the full export and its end-of-export mark on, and refuse a bad request;
// warmup clears the Syncing flag when there is nobody to sync from.
func TestFlowSyncWithFakeGossip(t *testing.T) {
	agent := cluster.MemberInfo{Name: "agent-1", State: cluster.StateAlive, MetaValid: true, Meta: cluster.Meta{Role: cluster.RoleBackend}}
	g := newFakeGossip(appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive),
		appliance("lb-c", cluster.StateDead), agent)
	fs, _ := newFlowSync("lb-a", 1<<20, discard)
	if err := fs.handle(g); err != nil {
		t.Fatal(err)
	}
	if got := fs.peers(); !slices.Equal(got, []string{"lb-b"}) {
		t.Fatalf("peers %v, want [lb-b]", got)
	}
	g.deliver(msgFlowsRequest, []byte("lb-b"))
	if got := <-fs.resync; got != "lb-b" {
		t.Fatalf("resync request from %q, want lb-b", got)
	}
	g.deliver(msgFlowsRequest, nil)
	if got := counterValue(t, fs.bad); got != 1 {
		t.Fatalf("bad messages %v, want 1", got)
	}
	g.deliver(msgFlowsDone, nil)
	select {
	case <-fs.done:
	default:
		t.Fatal("end of full export not passed on")
	}

	g.setMembers(appliance("lb-a", cluster.StateAlive))
	g.meta = cluster.Meta{Role: cluster.RoleAppliance, Syncing: true}
	go fs.warmup(t.Context(), fs.done)
	tstest.EventuallyTrue(t, 5*time.Second, "Syncing cleared with no other appliance", func() bool { return !g.Meta().Syncing })
}
