package failover

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
)

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
			if err := victim.Start(ctx); err != nil {
				return fmt.Errorf("kill %d: restart: %w", k, err)
			}
			if _, err := r.waitSteady(ctx); err != nil {
				return fmt.Errorf("kill %d: after restarting %s: %w", k, victim.Name(), err)
			}
			kill.RestartMillis = ms(time.Since(t0))
		}
		r.res.Kills = append(r.res.Kills, kill)
		r.reportKill(k, kill)
	}
	return nil
}

// reportKill writes kill k's progress line (and a warning when the client itself stalled).
func (r *runner) reportKill(k int, kill Kill) {
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

// survivorHistograms are the failover histograms of the nodes that survive a kill, read before it.
type survivorHistograms struct {
	before map[string]Histogram
	errs   []string
}

// killOnce holds long-lived connections and a stream of new ones through the VIP, SIGKILLs the owner and
// measures. It returns the killed node (not restarted).
func (r *runner) killOnce(ctx context.Context, k int, owner string) (Kill, *appliance.Node, error) {
	kill := Kill{Index: k, Owner: owner}
	var victim *appliance.Node
	var survivors []*appliance.Node
	for _, n := range r.nodes {
		if n.Name() == owner {
			victim = n
		} else {
			survivors = append(survivors, n)
		}
	}
	if victim == nil {
		return kill, nil, fmt.Errorf("VIP owner %q is not a lab node", owner)
	}
	kill.OwnerPID = victim.Process().PID
	hist := survivorHistograms{before: map[string]Histogram{}}
	for _, n := range survivors {
		h, err := failoverHistogram(n)
		if err != nil {
			hist.errs = append(hist.errs, err.Error())
			continue
		}
		hist.before[n.Name()] = h
	}

	// Long-lived connections, then the stream of new ones.
	held, err := r.holdConns(ctx)
	if err != nil {
		return kill, nil, err
	}
	defer held.close()
	attempts := r.startAttempts(ctx)
	defer attempts.stop()
	if err := lab.Sleep(ctx, max(r.cfg.Warmup, r.cfg.Lead)); err != nil {
		return kill, nil, err
	}
	for i := range held.conns {
		if st := held.state(i); st.Broken {
			return kill, nil, fmt.Errorf("long-lived connection %d broke before the kill: %s", i+1, st.Err)
		}
	}

	killed := time.Now()
	if err := victim.Kill(); err != nil {
		return kill, nil, err
	}
	kill.KilledAt = killed
	kill.LoadAvg1 = loadAvg1()

	if err := r.waitServedAgain(ctx, attempts, killed, owner); err != nil {
		return kill, victim, err
	}
	attempts.stop()
	servedAt := r.recordTimeline(&kill, attempts, killed)
	r.judgeLongLived(ctx, &kill, held, killed, servedAt)
	r.observeFailover(ctx, &kill, survivors, hist)
	select {
	case <-victim.Process().Done():
	case <-time.After(5 * time.Second):
		return kill, victim, fmt.Errorf("%s (pid %d) still running 5 s after SIGKILL", owner, kill.OwnerPID)
	}
	return kill, victim, nil
}

// waitServedAgain keeps the new connections going until the VIP has served again and Observe has passed
// (bounded by ServeTimeout).
func (r *runner) waitServedAgain(ctx context.Context, attempts *attemptLoop, killed time.Time, owner string) error {
	for {
		out := Analyze(attempts.relative(killed, false))
		since := time.Since(killed)
		if out.Served && since >= time.Duration(out.ServedAgainMillis*float64(time.Millisecond))+r.cfg.Observe && since >= 2*r.cfg.AttemptTimeout {
			return nil
		}
		if since > r.cfg.ServeTimeout {
			return fmt.Errorf("the VIP did not serve new connections again within %v after %s died", r.cfg.ServeTimeout, owner)
		}
		if err := lab.Sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// recordTimeline keeps the stopped attempt loop's timeline (from Lead before the kill) in kill with its
// analysis, and returns when the VIP served again.
func (r *runner) recordTimeline(kill *Kill, attempts *attemptLoop, killed time.Time) time.Time {
	kill.Timeline = attempts.relative(killed, true)
	lead := -ms(r.cfg.Lead)
	for len(kill.Timeline) > 0 && kill.Timeline[0].StartMillis < lead {
		kill.Timeline = kill.Timeline[1:]
	}
	out := Analyze(kill.Timeline)
	kill.MaxAttemptGapMillis = MaxStartGap(kill.Timeline)
	kill.ServedAgainMillis, kill.NoOutage = out.ServedAgainMillis, out.NoOutage
	if !math.IsNaN(out.SteadyMillis) {
		v := out.SteadyMillis
		kill.SteadyMillis = &v
	}
	kill.Attempts, kill.FailedAttempts, kill.FlapAttempts = out.Attempts, out.FailedAttempts, out.FlapAttempts
	return killed.Add(time.Duration(out.ServedAgainMillis * float64(time.Millisecond)))
}

// judgeLongLived waits (bounded) until each long-lived connection exchanged again after the VIP served
// again, or broke, closes them and records each in kill.
func (r *runner) judgeLongLived(ctx context.Context, kill *Kill, held *heldConns, killed, servedAt time.Time) {
	_ = lab.Poll(ctx, r.cfg.EchoDeadline+500*time.Millisecond, func() error {
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
}

// observeFailover records who holds the VIP now, and what a survivor's failover histogram observed.
func (r *runner) observeFailover(ctx context.Context, kill *Kill, survivors []*appliance.Node, hist survivorHistograms) {
	_ = lab.Poll(ctx, 3*time.Second, func() error {
		for _, n := range survivors {
			h, err := n.VIPHolder(serviceName)
			if err == nil && h != "" && h != kill.Owner {
				kill.NewOwner = h
				return nil
			}
		}
		return errors.New("no new owner reported")
	})
	_ = lab.Poll(ctx, 2*time.Second, func() error {
		for _, n := range survivors {
			b, ok := hist.before[n.Name()]
			if !ok {
				continue
			}
			h, err := failoverHistogram(n)
			if err != nil {
				continue
			}
			if dc := h.Count - b.Count; dc > 0 {
				v := (h.Sum - b.Sum) / dc * 1000
				kill.ApplianceFailoverMillis = &v
				if dc != 1 {
					kill.ApplianceFailoverNote = fmt.Sprintf("%s observed %.0f failovers; the mean is given", n.Name(), dc)
				} else if n.Name() != kill.NewOwner {
					kill.ApplianceFailoverNote = "observed by " + n.Name()
				}
				return nil
			}
		}
		return errors.New("no new observation")
	})
	if kill.ApplianceFailoverMillis == nil {
		kill.ApplianceFailoverNote = "no new appliance_failover_duration_seconds observation on a survivor within 2 s"
		if len(hist.errs) > 0 {
			kill.ApplianceFailoverNote += ": " + strings.Join(hist.errs, "; ")
		}
	}
}
