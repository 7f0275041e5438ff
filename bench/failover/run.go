package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/bench/backend"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/outputs"
)

// The lab and the Service under test.
const (
	labNodes       = 3
	labBackends    = 2
	serviceName    = "web"
	vipAddr        = "198.19.1.1"
	httpPort       = 80
	echoPort       = 7000
	adminBase      = "http://127.0.0.1:9100"
	failoverMetric = "appliance_failover_duration_seconds"
	maxAttempts    = 100_000 // per kill; the time bounds end the loop long before
)

// manifests is one LoadBalancer Service with a fixed VIP over the lab's backends: HTTP for the new
// connections, TCP echo for the long-lived ones.
func manifests(eps []netip.Addr) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: %s
  clusterIP: 198.19.0.10
  ports:
    - {name: http, protocol: TCP, port: %d, targetPort: 8080}
    - {name: tcpecho, protocol: TCP, port: %d, targetPort: 7000}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %s-1, namespace: default, labels: {kubernetes.io/service-name: %s}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}, {name: tcpecho, protocol: TCP, port: 7000}]
endpoints:
`, serviceName, vipAddr, httpPort, echoPort, serviceName, serviceName)
	for _, e := range eps {
		fmt.Fprintf(&b, "  - addresses: [%s]\n    conditions: {ready: true}\n", e)
	}
	return []byte(b.String())
}

// applianceNode is the appliance program in one lab node namespace.
type applianceNode struct {
	name    string
	ns      *lab.NS
	cfgPath string
	proc    *lab.Process
	admin   *http.Client
}

// runner holds a run's live state.
type runner struct {
	cfg     Config
	lab     *lab.Lab
	client  *lab.NS
	nodes   []*applianceNode
	res     *Result
	started time.Time
	dir     string
}

func (r *runner) progress(format string, a ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "failover: "+format+"\n", a...)
	}
}

// Run builds the lab, measures cfg.Kills failovers and writes results.json, results.md and the plots into
// cfg.OutDir. It needs root. Everything it creates is removed before it returns, also on error or when ctx
// is cancelled. On error the kills measured so far are returned (and written, when there are any).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("failover: needs root (namespaces, AF_XDP)")
	}
	bin, err := filepath.Abs(cfg.ApplianceBin)
	if err != nil {
		return nil, fmt.Errorf("appliance program %s: %w", cfg.ApplianceBin, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("appliance program: %w (run make build)", err)
	}
	cfg.ApplianceBin = bin
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	r := &runner{cfg: cfg, started: time.Now()}
	r.res = &Result{
		Command: cfg.Command, Machine: DescribeMachine(), Started: time.Now(), Nodes: labNodes, Backends: labBackends,
		Conns: cfg.Conns, AttemptIntervalMillis: ms(cfg.AttemptInterval), AttemptTimeoutMillis: ms(cfg.AttemptTimeout),
		EchoIntervalMillis: ms(cfg.EchoInterval),
		Notes: []string{
			fmt.Sprintf("New connections: an HTTP GET to %s:%d from the external client started every %v (open loop), each bounded by %v; served again = completion of the first successful attempt started at or after the first failed one, relative to the SIGKILL.", vipAddr, httpPort, cfg.AttemptInterval, cfg.AttemptTimeout),
			fmt.Sprintf("Long-lived: %d TCP connections to %s:%d exchanging 2 bytes every %v, opened %v before the kill; broken = an error or an exchange longer than %v.", cfg.Conns, vipAddr, echoPort, cfg.EchoInterval, max(cfg.Warmup, cfg.Lead), cfg.EchoDeadline),
			"Appliance failover metric: the new owner's appliance_failover_duration_seconds observation for the kill (its memberlist detecting the death → VIP announced); it does not include the time until the client's next connection gets through.",
		},
	}
	defer func() {
		if r.dir != "" {
			_ = os.RemoveAll(r.dir)
		}
	}()
	if err := r.setUp(ctx); err != nil {
		if r.lab != nil {
			_ = r.lab.Down()
		}
		return nil, err
	}
	defer func() {
		r.progress("tearing the lab down")
		if err := r.lab.Down(); err != nil {
			r.progress("lab down: %v", err)
		}
	}()
	runErr := r.kills(ctx)
	r.res.Finished = time.Now()
	if runErr != nil {
		if len(r.res.Kills) > 0 {
			r.res.Notes = append(r.res.Notes, "incomplete run: "+runErr.Error())
			if err := WriteOutputs(r.res, cfg.OutDir); err != nil {
				runErr = errors.Join(runErr, err)
			}
		}
		return r.res, runErr
	}
	if err := WriteOutputs(r.res, cfg.OutDir); err != nil {
		return r.res, err
	}
	return r.res, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// setUp builds the lab, starts the backends and the three appliances and waits for one agreed owner.
func (r *runner) setUp(ctx context.Context) error {
	spec := lab.DefaultSpec()
	spec.Nodes, spec.Clients, spec.Backends, spec.ClusterClients = labNodes, 1, labBackends, 0
	r.progress("building the lab (%d appliance nodes, %d backends, 1 client)", labNodes, labBackends)
	upCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	l, err := lab.Up(upCtx, spec)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.lab, r.client = l, l.Clients[0]
	r.res.Lab = l.Prefix()
	if _, err := l.StartBackends(backend.DefaultConfig()); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	var eps []netip.Addr
	for _, b := range l.Backends {
		eps = append(eps, b.Addr())
	}
	if r.dir, err = os.MkdirTemp("", "bench-failover-"); err != nil {
		return fmt.Errorf("config folder: %w", err)
	}
	m := manifests(eps)
	for _, ns := range l.Nodes {
		n := &applianceNode{name: fmt.Sprintf("lb-%d", ns.Index), ns: ns, admin: lab.HTTPClient(ns)}
		n.admin.Timeout = 2 * time.Second
		dir := filepath.Join(r.dir, n.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("config folder: %w", err)
		}
		n.cfgPath = filepath.Join(dir, "lb.yaml")
		text := lab.ApplianceConfig(n.name, ns, l.Nodes, "", "")
		if err := os.WriteFile(n.cfgPath, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write config %s: %w", n.cfgPath, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "services.yaml"), m, 0o644); err != nil {
			return fmt.Errorf("write manifests: %w", err)
		}
		r.nodes = append(r.nodes, n)
	}
	r.progress("starting %d appliances (%s)", len(r.nodes), r.cfg.ApplianceBin)
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Go(func() { errs[i] = r.start(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	owner, err := r.waitSteady(ctx)
	if err != nil {
		return err
	}
	r.progress("cluster up: 3 alive members, VIP %s held by %s", vipAddr, owner)
	return nil
}

// start runs the appliance in the node's namespace and waits for its /healthz.
func (r *runner) start(ctx context.Context, n *applianceNode) error {
	p, err := n.ns.Start(r.cfg.ApplianceBin, "run", "--config", n.cfgPath)
	if err != nil {
		return fmt.Errorf("start appliance %s: %w", n.name, err)
	}
	n.proc = p
	err = poll(ctx, r.cfg.StartTimeout, func() error {
		select {
		case <-p.Done():
			return errPermanent{fmt.Errorf("exited: %v\n%s", p.Err(), tail(p.Output(), 2000))}
		default:
		}
		resp, err := n.admin.Get(adminBase + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appliance %s /healthz: %w", n.name, err)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// errPermanent ends a poll at once.
type errPermanent struct{ error }

// poll calls cond until it returns nil, a permanent error, ctx ends or timeout passes (bounded backoff,
// no bare sleeps).
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := cond()
		if err == nil {
			return nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			return perm.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// getJSON decodes an admin API path of n into out.
func (n *applianceNode) getJSON(path string, out any) error {
	resp, err := n.admin.Get(adminBase + path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", n.name, path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	return nil
}

// vipHolder asks n which node holds the Service's VIP ("" when none).
func (n *applianceNode) vipHolder() (string, error) {
	var svcs []struct {
		Name      string `json:"name"`
		VIPHolder string `json:"vipHolder"`
	}
	if err := n.getJSON("/api/v1/services", &svcs); err != nil {
		return "", err
	}
	for _, s := range svcs {
		if s.Name == serviceName {
			return s.VIPHolder, nil
		}
	}
	return "", fmt.Errorf("%s: no Service %s", n.name, serviceName)
}

// aliveMembers counts the members n sees alive.
func (n *applianceNode) aliveMembers() (int, error) {
	var ms []struct {
		State string `json:"state"`
	}
	if err := n.getJSON("/api/v1/members", &ms); err != nil {
		return 0, err
	}
	alive := 0
	for _, m := range ms {
		if m.State == "alive" {
			alive++
		}
	}
	return alive, nil
}

// failoverHistogram reads n's appliance_failover_duration_seconds.
func (n *applianceNode) failoverHistogram() (Histogram, error) {
	resp, err := n.admin.Get(adminBase + "/metrics")
	if err != nil {
		return Histogram{}, fmt.Errorf("%s /metrics: %w", n.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return Histogram{}, fmt.Errorf("%s /metrics: %w", n.name, err)
	}
	h, err := ParseMetric(b, failoverMetric)
	if err != nil {
		return Histogram{}, fmt.Errorf("%s /metrics: %w", n.name, err)
	}
	return h, nil
}

// waitSteady waits until every node is healthy, sees all nodes alive and names the same VIP holder, and a
// GET through the VIP succeeds, twice in a row 300 ms apart. It returns the holder.
func (r *runner) waitSteady(ctx context.Context) (string, error) {
	var owner string
	streak := 0
	check := func() error {
		holders := map[string]bool{}
		for _, n := range r.nodes {
			alive, err := n.aliveMembers()
			if err != nil {
				return err
			}
			if alive != len(r.nodes) {
				return fmt.Errorf("%s sees %d alive members", n.name, alive)
			}
			h, err := n.vipHolder()
			if err != nil {
				return err
			}
			holders[h] = true
			owner = h
		}
		if len(holders) != 1 || holders[""] {
			return fmt.Errorf("VIP holders disagree: %v", holders)
		}
		if err := r.get(ctx, time.Second); err != nil {
			return err
		}
		return nil
	}
	err := poll(ctx, r.cfg.SteadyTimeout, func() error {
		if err := check(); err != nil {
			streak = 0
			return err
		}
		if streak++; streak < 2 {
			_ = sleep(ctx, 300*time.Millisecond)
			return errors.New("steady once")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("wait for three members and one VIP owner that serves: %w", err)
	}
	return owner, nil
}

// get is one HTTP GET through the VIP from the client on a new connection.
func (r *runner) get(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: r.client.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/", vipAddr, httpPort), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET through the VIP: %s", resp.Status)
	}
	return nil
}

// kills measures every kill, restarting the killed node in between.
func (r *runner) kills(ctx context.Context) error {
	for k := 1; k <= r.cfg.Kills; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		owner, err := r.waitSteady(ctx)
		if err != nil {
			return fmt.Errorf("kill %d: %w", k, err)
		}
		kill, victim, err := r.killOnce(ctx, k, owner)
		if err != nil {
			return fmt.Errorf("kill %d: %w", k, err)
		}
		if k < r.cfg.Kills {
			t0 := time.Now()
			if err := r.start(ctx, victim); err != nil {
				return fmt.Errorf("kill %d: restart: %w", k, err)
			}
			if _, err := r.waitSteady(ctx); err != nil {
				return fmt.Errorf("kill %d: after restarting %s: %w", k, victim.name, err)
			}
			kill.RestartMillis = ms(time.Since(t0))
		}
		r.res.Kills = append(r.res.Kills, kill)
		left := ""
		if k < r.cfg.Kills {
			per := time.Since(r.started) / time.Duration(k)
			left = fmt.Sprintf(" (~%v left)", (per * time.Duration(r.cfg.Kills-k)).Round(time.Second))
		}
		metric := "n/a"
		if kill.ApplianceFailoverMillis != nil {
			metric = fmtMillis(*kill.ApplianceFailoverMillis)
		}
		steady := "never"
		if kill.SteadyMillis != nil {
			steady = fmt.Sprintf("%.0fms", *kill.SteadyMillis)
		}
		r.progress("kill %d/%d: owner %s (pid %d) killed, VIP served again after %.0fms by %s (steady after %s, %d of %d attempts failed; appliance failover metric %s); long-lived connections broken: %d of %d%s",
			k, r.cfg.Kills, kill.Owner, kill.OwnerPID, kill.ServedAgainMillis, kill.NewOwner, steady,
			kill.FailedAttempts, kill.Attempts, metric, kill.Broken, len(kill.LongLived), left)
		if kill.MaxAttemptGapMillis > 10*ms(r.cfg.AttemptInterval) {
			r.progress("kill %d/%d: the client itself stalled for %.0fms between attempts (load average %.1f): this kill's figures include CPU starvation",
				k, r.cfg.Kills, kill.MaxAttemptGapMillis, kill.LoadAvg1)
		}
	}
	return nil
}

// killOnce holds long-lived connections and a stream of new ones through the VIP, SIGKILLs the owner and
// measures. It returns the killed node (not restarted).
func (r *runner) killOnce(ctx context.Context, k int, owner string) (Kill, *applianceNode, error) {
	kill := Kill{Index: k, Owner: owner}
	var victim *applianceNode
	var survivors []*applianceNode
	for _, n := range r.nodes {
		if n.name == owner {
			victim = n
		} else {
			survivors = append(survivors, n)
		}
	}
	if victim == nil {
		return kill, nil, fmt.Errorf("VIP owner %q is not a lab node", owner)
	}
	kill.OwnerPID = victim.proc.PID
	before := map[string]Histogram{}
	var metricErrs []string
	for _, n := range survivors {
		h, err := n.failoverHistogram()
		if err != nil {
			metricErrs = append(metricErrs, err.Error())
			continue
		}
		before[n.name] = h
	}

	// Long-lived connections, then the stream of new ones.
	held, err := r.holdConns(ctx)
	if err != nil {
		return kill, nil, err
	}
	defer held.close()
	attempts := r.startAttempts(ctx)
	defer attempts.stop()
	if err := sleep(ctx, max(r.cfg.Warmup, r.cfg.Lead)); err != nil {
		return kill, nil, err
	}
	for i := range held.conns {
		if st := held.state(i); st.Broken {
			return kill, nil, fmt.Errorf("long-lived connection %d broke before the kill: %s", i+1, st.Err)
		}
	}

	killed := time.Now()
	if err := syscall.Kill(victim.proc.PID, syscall.SIGKILL); err != nil {
		return kill, nil, fmt.Errorf("kill %s (pid %d): %w", owner, victim.proc.PID, err)
	}
	kill.KilledAt = killed
	kill.LoadAvg1 = loadAvg1()

	// New connections until the VIP has served again and Observe has passed (bounded by ServeTimeout).
	var out Outcome
	for {
		out = Analyze(attempts.relative(killed, false))
		since := time.Since(killed)
		if out.Served && since >= time.Duration(out.ServedAgainMillis*float64(time.Millisecond))+r.cfg.Observe && since >= 2*r.cfg.AttemptTimeout {
			break
		}
		if since > r.cfg.ServeTimeout {
			return kill, victim, fmt.Errorf("the VIP did not serve new connections again within %v after %s died", r.cfg.ServeTimeout, owner)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return kill, victim, err
		}
	}
	attempts.stop()
	kill.Timeline = attempts.relative(killed, true)
	// Keep only the lead before the kill.
	lead := -ms(r.cfg.Lead)
	for len(kill.Timeline) > 0 && kill.Timeline[0].StartMillis < lead {
		kill.Timeline = kill.Timeline[1:]
	}
	out = Analyze(kill.Timeline)
	kill.MaxAttemptGapMillis = MaxStartGap(kill.Timeline)
	kill.ServedAgainMillis, kill.NoOutage = out.ServedAgainMillis, out.NoOutage
	if !math.IsNaN(out.SteadyMillis) {
		v := out.SteadyMillis
		kill.SteadyMillis = &v
	}
	kill.Attempts, kill.FailedAttempts, kill.FlapAttempts = out.Attempts, out.FailedAttempts, out.FlapAttempts

	// Long-lived connections: each one must exchange again after the VIP served again, or break.
	servedAt := killed.Add(time.Duration(out.ServedAgainMillis * float64(time.Millisecond)))
	_ = poll(ctx, r.cfg.EchoDeadline+500*time.Millisecond, func() error {
		for i := range held.conns {
			if st := held.state(i); !st.Broken && !st.lastOK.After(servedAt) {
				return errors.New("waiting")
			}
		}
		return nil
	})
	held.close()
	for i := range held.conns {
		st := held.state(i)
		ll := LongLived{Echoes: st.echoes, MaxStallMillis: ms(st.maxStall), Broken: st.Broken, Err: st.Err}
		if !st.Broken && !st.lastOK.After(servedAt) {
			ll.Broken, ll.Err = true, "no exchange after the VIP served again"
		}
		if st.Broken {
			ll.BrokeAtMillis = ms(st.brokeAt.Sub(killed))
		}
		if ll.Broken {
			kill.Broken++
		}
		kill.LongLived = append(kill.LongLived, ll)
	}

	// Who holds the VIP now, and what its failover histogram observed.
	_ = poll(ctx, 3*time.Second, func() error {
		for _, n := range survivors {
			h, err := n.vipHolder()
			if err == nil && h != "" && h != owner {
				kill.NewOwner = h
				return nil
			}
		}
		return errors.New("no new owner reported")
	})
	_ = poll(ctx, 2*time.Second, func() error {
		for _, n := range survivors {
			b, ok := before[n.name]
			if !ok {
				continue
			}
			h, err := n.failoverHistogram()
			if err != nil {
				continue
			}
			if dc := h.Count - b.Count; dc > 0 {
				v := (h.Sum - b.Sum) / dc * 1000
				kill.ApplianceFailoverMillis = &v
				if dc != 1 {
					kill.ApplianceFailoverNote = fmt.Sprintf("%s observed %.0f failovers; the mean is given", n.name, dc)
				} else if n.name != kill.NewOwner {
					kill.ApplianceFailoverNote = "observed by " + n.name
				}
				return nil
			}
		}
		return errors.New("no new observation")
	})
	if kill.ApplianceFailoverMillis == nil {
		kill.ApplianceFailoverNote = "no new appliance_failover_duration_seconds observation on a survivor within 2 s"
		if len(metricErrs) > 0 {
			kill.ApplianceFailoverNote += ": " + strings.Join(metricErrs, "; ")
		}
	}
	select {
	case <-victim.proc.Done():
	case <-time.After(5 * time.Second):
		return kill, victim, fmt.Errorf("%s (pid %d) still running 5 s after SIGKILL", owner, victim.proc.PID)
	}
	return kill, victim, nil
}

// attemptLoop starts new connections through the VIP at a fixed interval (open loop).
type attemptLoop struct {
	mu       sync.Mutex
	recs     []rawAttempt
	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

type rawAttempt struct {
	start, end time.Time
	done       bool
	err        string
}

func (r *runner) startAttempts(ctx context.Context) *attemptLoop {
	a := &attemptLoop{quit: make(chan struct{})}
	hc := &http.Client{Transport: &http.Transport{DialContext: r.client.DialContext, DisableKeepAlives: true}}
	url := fmt.Sprintf("http://%s:%d/", vipAddr, httpPort)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		tick := time.NewTicker(r.cfg.AttemptInterval)
		defer tick.Stop()
		for n := 0; n < maxAttempts; n++ {
			a.mu.Lock()
			i := len(a.recs)
			a.recs = append(a.recs, rawAttempt{start: time.Now()})
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				err := attempt(ctx, hc, url, r.cfg.AttemptTimeout)
				a.mu.Lock()
				a.recs[i].end, a.recs[i].done, a.recs[i].err = time.Now(), true, err
				a.mu.Unlock()
			}()
			select {
			case <-a.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return a
}

// stop ends the loop and waits for the attempts in flight (each bounded by the attempt timeout).
func (a *attemptLoop) stop() {
	a.stopOnce.Do(func() { close(a.quit) })
	a.wg.Wait()
}

// relative returns the finished attempts (all of them when all is set: after stop) relative to t0.
func (a *attemptLoop) relative(t0 time.Time, all bool) []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Attempt, 0, len(a.recs))
	for _, x := range a.recs {
		if !x.done && !all {
			continue
		}
		out = append(out, Attempt{
			StartMillis: ms(x.start.Sub(t0)), DurationMillis: ms(x.end.Sub(x.start)), OK: x.done && x.err == "", Err: x.err,
		})
	}
	return out
}

// attempt is one HTTP GET on a new connection; it returns the failure class, or "" on success.
func attempt(ctx context.Context, hc *http.Client, url string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "other"
	}
	resp, err := hc.Do(req)
	if err != nil {
		return classify(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return classify(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	return ""
}

// classify names a connection error's kind.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// heldConns are the long-lived connections of one kill.
type heldConns struct {
	conns     []net.Conn
	mu        sync.Mutex
	st        []connState
	quit      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type connState struct {
	echoes   int
	lastOK   time.Time
	maxStall time.Duration
	Broken   bool
	Err      string
	brokeAt  time.Time
}

func (h *heldConns) state(i int) connState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st[i]
}

// holdConns dials cfg.Conns connections through the VIP's echo port and exchanges 2 bytes on each every
// EchoInterval until close.
func (r *runner) holdConns(ctx context.Context) (*heldConns, error) {
	h := &heldConns{quit: make(chan struct{})}
	addr := fmt.Sprintf("%s:%d", vipAddr, echoPort)
	for range r.cfg.Conns {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := r.client.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			h.close()
			return nil, fmt.Errorf("long-lived connection: %w", err)
		}
		h.conns = append(h.conns, c)
		h.st = append(h.st, connState{lastOK: time.Now()})
	}
	for i, c := range h.conns {
		h.wg.Go(func() { h.exchange(i, c, r.cfg.EchoInterval, r.cfg.EchoDeadline) })
	}
	return h, nil
}

func (h *heldConns) exchange(i int, c net.Conn, interval, deadline time.Duration) {
	msg, buf := []byte("x\n"), make([]byte, 2)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		_ = c.SetDeadline(time.Now().Add(deadline))
		_, err := c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		now := time.Now()
		select {
		case <-h.quit:
			return // closed by us: not a failure
		default:
		}
		h.mu.Lock()
		if err != nil {
			h.st[i].Broken, h.st[i].Err, h.st[i].brokeAt = true, classify(err), now
			h.mu.Unlock()
			return
		}
		s := &h.st[i]
		s.maxStall = max(s.maxStall, now.Sub(s.lastOK))
		s.echoes++
		s.lastOK = now
		h.mu.Unlock()
	}
}

// close stops the exchanges and closes the connections.
func (h *heldConns) close() {
	h.closeOnce.Do(func() {
		close(h.quit)
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
	h.wg.Wait()
}

// DescribeMachine records the kernel (uname -r), cores, CPU model, Go version and the git commit.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), CPUModel: outputs.CPUModel(), Product: outputs.Product()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
		m.KernelVersion = unix.ByteSliceToString(u.Version[:])
	}
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		m.Nice = 20 - prio // the raw syscall returns 20 - nice
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// loadAvg1 is /proc/loadavg's one-minute figure (0 when unreadable).
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	_, _ = fmt.Sscan(string(b), &v)
	return v
}
