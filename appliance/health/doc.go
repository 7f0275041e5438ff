// Package health probes the TCP endpoints of the served Services and turns the probe verdicts
// of every appliance into one view that all appliances share, so that each builds the same set
// of ready backends and the same Maglev tables (a flow that moves to another appliance lands on
// the same backend).
//
// # Probing
//
// A Prober connects to every distinct TCP endpoint (address, port) it is given with
// SetTargets, once per Config.Interval (jittered by ±JitterFraction), each connect bounded by
// Config.Timeout, at most Config.MaxInFlight at once. Probe goroutines live for one round only;
// nothing runs per endpoint between rounds. Thresholds work as in Kubernetes and Envoy: an
// endpoint turns down after UnhealthyThreshold consecutive failures and up again after
// HealthyThreshold consecutive successes. New endpoints start up (presumed healthy): serving
// never waits for a first probe. Endpoints that leave the target set are forgotten at once.
// UDP endpoints are not given to the Prober (there is no connect to test) and are always up.
// A Dial hook that returns ErrSkip leaves an endpoint's state unchanged (the daemon skips
// endpoints it has no data-plane path to, so that probes never leave through another
// interface).
//
// # One view everywhere
//
// Every appliance probes every endpoint and publishes a Report: the endpoints it sees down,
// with a generation that only increases. Reports travel in a versioned compact binary encoding
// (AppendReport, DecodeReport; bounds-checked, canonical, fuzzed): an appliance sends its
// report to every live appliance when its down set changes and again every few seconds so
// that late joiners converge. A View keeps the newest report per origin.
//
// Reports from others are untrusted. View.Accept merges one only when its origin is the
// sender the cluster's message envelope names and that sender is a live appliance member, and
// when its generation is newer than the one held and at most MaxGenerationLead ahead of the
// receiver's clock (generations start from the sender's clock in Unix nanoseconds), so no
// member can speak for another and no wild generation can lock an origin's later reports out.
// A View holds at most MaxViewOrigins origins; Retain drops those no longer members and Forget
// one that died or left (after a restart it counts again from a lower generation). The
// sender's name is as trustworthy as the holders of the cluster key (see package cluster,
// "Trust"). A report is at most MaxReportBytes long.
//
// Resolution rule (Resolve), the same on every appliance: an endpoint is down when a strict
// majority of the live appliances that have sent a report (this appliance's own included) list
// it as down, up otherwise; with no report from any live appliance it is up. A dead or
// departed member's report is ignored. Because every appliance applies the same rule to the
// same reports and members, all of them reach the same verdicts once the reports have spread
// (a few seconds at most). A majority, not one designated appliance, so that an appliance whose
// own link to the backends is broken (it sees every endpoint down) cannot take endpoints away
// from the whole cluster.
//
// # Concurrency
//
// Prober.Run runs on one goroutine of the caller's choosing until its context ends; SetTargets,
// Down and Stats are safe to call from any goroutine meanwhile. Config.OnChange runs on the Run
// goroutine. View is not safe for concurrent use (the daemon guards it with a mutex); Resolve,
// AppendReport and DecodeReport are pure and safe everywhere.
package health
