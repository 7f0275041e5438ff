package daemon

import (
	"context"
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
	handlers   map[cluster.MsgType]func(string, []byte)
	limits     map[cluster.MsgType]int
	broadcasts []cluster.MsgType
	sent       map[string][]cluster.MsgType // by member
	meta       cluster.Meta
}

func newFakeGossip(members ...cluster.MemberInfo) *fakeGossip {
	return &fakeGossip{members: members, handlers: map[cluster.MsgType]func(string, []byte){}, limits: map[cluster.MsgType]int{},
		sent: map[string][]cluster.MsgType{}}
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

func (g *fakeGossip) HandleFrom(t cluster.MsgType, fn func(string, []byte)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers[t] = fn
	return nil
}

func (g *fakeGossip) SetMessageLimit(t cluster.MsgType, n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limits[t] = n
	return nil
}

// IsLiveAppliance is cluster.Node's rule over the settable member list.
func (g *fakeGossip) IsLiveAppliance(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		if m.Name == name {
			return m.State == cluster.StateAlive && m.MetaValid && m.Meta.Role == cluster.RoleAppliance
		}
	}
	return false
}

// deliver hands p to the handler of t as a message from member from, as the cluster would:
// only when it fits the type's limit (envelope included).
func (g *fakeGossip) deliver(t cluster.MsgType, from string, p []byte) {
	g.mu.Lock()
	fn, limit := g.handlers[t], g.limits[t]
	g.mu.Unlock()
	if limit > 0 && len(p)+3+len(from) > limit {
		return
	}
	fn(from, p)
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
		h.receive(origin, b)
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
	h.receive("lb-b", []byte{0xff})
	if got := counterValue(t, h.malformed); got != 1 {
		t.Fatalf("malformed reports %v, want 1", got)
	}
}

// TestFlowSyncWithFakeGossip: the peers are the other live appliances; every handler has a
// message limit; a live appliance's request resyncs that appliance (not a name in the payload)
// and its end-of-export mark is passed on; messages from members that are not live appliances
// are dropped and counted; warmup clears the Syncing flag when there is nobody to sync from.
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
	for typ, want := range map[cluster.MsgType]int{msgFlows: msgLimit(flowSyncMaxMessage), msgFlowsRequest: msgLimit(255), msgFlowsDone: msgLimit(0)} {
		if got := g.limits[typ]; got != want {
			t.Errorf("message limit of type %d: %d, want %d", typ, got, want)
		}
	}
	// A request resyncs its sender, whatever member the payload names.
	g.deliver(msgFlowsRequest, "lb-b", []byte("lb-c"))
	if got := <-fs.resync; got != "lb-b" {
		t.Fatalf("resync request from %q, want lb-b", got)
	}
	g.deliver(msgFlowsDone, "lb-b", nil)
	select {
	case <-fs.done:
	default:
		t.Fatal("end of full export not passed on")
	}
	// Nothing from a member that is not a live appliance: an agent, a dead appliance.
	g.deliver(msgFlowsRequest, "agent-1", []byte("lb-b"))
	g.deliver(msgFlowsDone, "lb-c", nil)
	g.deliver(msgFlows, "agent-1", []byte{1})
	if got := counterValue(t, fs.foreign); got != 3 {
		t.Errorf("foreign messages %v, want 3", got)
	}
	select {
	case name := <-fs.resync:
		t.Errorf("resync of %q requested by a non-appliance", name)
	case <-fs.done:
		t.Error("end of full export taken from a dead appliance")
	default:
	}
	if got := counterValue(t, fs.bad); got != 0 {
		t.Errorf("malformed messages %v, want 0 (foreign ones are not imported)", got)
	}

	g.setMembers(appliance("lb-a", cluster.StateAlive))
	g.meta = cluster.Meta{Role: cluster.RoleAppliance, Syncing: true}
	go fs.warmup(t.Context(), fs.done)
	tstest.EventuallyTrue(t, 5*time.Second, "Syncing cleared with no other appliance", func() bool { return !g.Meta().Syncing })
}

// TestHealthReportsFromOthers: start registers the report handler with a limit of one report;
// a report is taken only from a live appliance speaking for itself with a plausible generation,
// refusals are counted by reason (a stale copy is not), and the view keeps only live
// appliances' reports.
func TestHealthReportsFromOthers(t *testing.T) {
	agent := cluster.MemberInfo{Name: "agent-1", State: cluster.StateAlive, MetaValid: true, Meta: cluster.Meta{Role: cluster.RoleBackend}}
	g := newFakeGossip(appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive),
		appliance("lb-c", cluster.StateAlive), agent)
	h, err := newHealthCheck(config.HealthChecksConfig{Enabled: true, Interval: time.Second, Timeout: time.Second,
		HealthyThreshold: 1, UnhealthyThreshold: 1}, "lb-a", nil, &countRefresh{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the handler only: the prober and the loop end at once
	var wg sync.WaitGroup
	if err := h.start(ctx, g, &wg); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got, want := g.limits[msgHealth], msgLimit(health.MaxReportBytes); got != want {
		t.Errorf("msgHealth limit %d, want %d", got, want)
	}
	ep := netip.MustParseAddrPort("198.18.1.21:8080")
	send := func(from, origin string, gen uint64) {
		b, err := health.AppendReport(nil, health.Report{Origin: origin, Generation: gen, Down: []netip.AddrPort{ep}})
		if err != nil {
			t.Fatal(err)
		}
		g.deliver(msgHealth, from, b)
	}
	now := uint64(time.Now().UnixNano())
	send("lb-b", "lb-b", now)                                    // taken
	send("lb-b", "lb-b", now)                                    // stale copy: dropped, not counted
	send("lb-b", "lb-c", now)                                    // speaks for another member
	send("agent-1", "agent-1", now)                              // not an appliance
	send("lb-c", "lb-c", now+uint64(health.MaxGenerationLead)*2) // too far ahead
	send("lb-c", "lb-a", now)                                    // speaks for this node
	for reason, want := range map[string]float64{refusedForeign: 3, refusedFuture: 1, refusedViewFull: 0} {
		if got := counterValue(t, h.refused.WithLabelValues(reason)); got != want {
			t.Errorf("refused %s: %v, want %v", reason, got, want)
		}
	}
	if got := counterValue(t, h.received); got != 1 {
		t.Errorf("received %v, want 1", got)
	}
	origins := func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.view.Origins()
	}
	if got := origins(); !slices.Equal(got, []string{"lb-a", "lb-b"}) {
		t.Fatalf("view origins %v, want [lb-a lb-b]", got)
	}
	g.setMembers(appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateLeft))
	h.update(false)
	if got := origins(); !slices.Equal(got, []string{"lb-a"}) {
		t.Fatalf("view origins after lb-b left %v, want [lb-a]", got)
	}
}
