package failover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/lab/appliance"
	"github.com/xdpsvc/lb/bench/outputs"
)

// runner holds a run's live state.
type runner struct {
	cfg     Config
	lab     *lab.Lab
	client  *lab.NS
	nodes   []*appliance.Node
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
	bin, err := appliance.Preflight(cfg.ApplianceBin, cfg.OutDir, "failover: needs root (namespaces, AF_XDP)")
	if err != nil {
		return nil, err
	}
	cfg.ApplianceBin = bin
	r := &runner{cfg: cfg, started: time.Now()}
	r.res = newResult(cfg)
	defer func() {
		if r.dir != "" {
			_ = os.RemoveAll(r.dir)
		}
	}()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	defer r.tearDown()
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

// newResult is an empty Result with cfg's bounds and the notes a reader needs.
func newResult(cfg Config) *Result {
	return &Result{
		Provenance: outputs.Provenance{Command: cfg.Command, Machine: outputs.DescribeMachine(), Started: time.Now()}, Nodes: labNodes, Backends: labBackends,
		Conns: cfg.Conns, AttemptIntervalMillis: ms(cfg.AttemptInterval), AttemptTimeoutMillis: ms(cfg.AttemptTimeout),
		EchoIntervalMillis: ms(cfg.EchoInterval),
		Notes: []string{
			fmt.Sprintf("New connections: an HTTP GET to %s:%d from the external client started every %v (open loop), each bounded by %v; served again = completion of the first successful attempt started at or after the first failed one, relative to the SIGKILL.", vipAddr, httpPort, cfg.AttemptInterval, cfg.AttemptTimeout),
			fmt.Sprintf("Long-lived: %d TCP connections to %s:%d exchanging 2 bytes every %v, opened %v before the kill; broken = an error or an exchange longer than %v.", cfg.Conns, vipAddr, echoPort, cfg.EchoInterval, max(cfg.Warmup, cfg.Lead), cfg.EchoDeadline),
			"Appliance failover metric: the new owner's appliance_failover_duration_seconds observation for the kill (its memberlist detecting the death → VIP announced); it does not include the time until the client's next connection gets through.",
		},
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// tearDown removes the lab and everything in it.
func (r *runner) tearDown() {
	r.progress("tearing the lab down")
	if err := r.lab.Down(); err != nil {
		r.progress("lab down: %v", err)
	}
}
