package health

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxViewOrigins bounds the origins a View holds reports from: a report from a new origin is
// refused while the view is full. Retain drops the origins that are no longer members.
const MaxViewOrigins = 1024

// View holds the newest report of each appliance and resolves them into one verdict per
// endpoint with Resolve. It is not safe for concurrent use.
type View struct {
	reports map[string]Report
}

// NewView returns an empty view.
func NewView() *View { return &View{reports: map[string]Report{}} }

// Merge keeps r when it is newer (higher generation) than the report held from r.Origin, and
// reports whether it did. It checks neither the sender nor the generation bound, so it is for
// this appliance's own report: reports received from others go through Accept. r.Down is normalised (sorted, unique) on the way in. A report from a
// new origin is refused while the view holds MaxViewOrigins origins.
func (v *View) Merge(r Report) bool {
	old, ok := v.reports[r.Origin]
	if ok && old.Generation >= r.Generation || !ok && len(v.reports) >= MaxViewOrigins {
		return false
	}
	r.Down = normalise(r.Down)
	v.reports[r.Origin] = r
	return true
}

// Forget drops origin's report (a member that died or left: a restarted member then counts
// again from whatever generation it sends).
func (v *View) Forget(origin string) { delete(v.reports, origin) }

// MaxGenerationLead is how far ahead of the receiver's clock, read as nanoseconds since the
// Unix epoch, a received report's generation may be. An appliance starts its generation from
// its clock and adds one per change, so an honest one stays behind its clock; the lead covers
// clock skew. Further ahead would let one report (up to 2^64-1) lock its origin's later ones out.
const MaxGenerationLead = 10 * time.Minute

// Errors of View.Accept: why a received report was not merged.
var (
	ErrReportForeign = errors.New("health report not from its origin, or its sender is not a live appliance")
	ErrReportFuture  = errors.New("health report generation too far ahead")
	ErrReportStale   = errors.New("health report no newer than the one held")
	ErrViewFull      = errors.New("health view full")
)

// Accept merges r, received from sender (the name the cluster's message envelope gives), under
// the rules for reports from others: sender must be a live appliance member (the caller says
// so in senderIsLiveAppliance, e.g. cluster.Node.IsLiveAppliance) and r must be its own report
// (r.Origin == sender); r.Generation may be at most MaxGenerationLead ahead of now; and it must
// be newer than the report held from sender (Forget a member that died or left, so that after
// a restart it counts again from a lower generation). It returns nil when r was merged, else
// an error wrapping ErrReportForeign, ErrReportFuture, ErrReportStale or ErrViewFull.
func (v *View) Accept(sender string, senderIsLiveAppliance bool, r Report, now time.Time) error {
	switch {
	case !senderIsLiveAppliance || r.Origin != sender:
		return fmt.Errorf("health report from %q for %q: %w", sender, r.Origin, ErrReportForeign)
	case r.Generation > uint64(now.UnixNano())+uint64(MaxGenerationLead):
		return fmt.Errorf("health report from %s: generation %d: %w", sender, r.Generation, ErrReportFuture)
	}
	if old, ok := v.reports[r.Origin]; ok && old.Generation >= r.Generation {
		return fmt.Errorf("health report from %s: generation %d, holding %d: %w", sender, r.Generation, old.Generation, ErrReportStale)
	}
	if !v.Merge(r) {
		return fmt.Errorf("health report from %s: %d origins held: %w", sender, len(v.reports), ErrViewFull)
	}
	return nil
}

// Retain drops the reports of every origin not in members (members that died, left or were
// never appliances), so the view holds no more origins than the cluster has members.
func (v *View) Retain(members []string) {
	keep := make(map[string]bool, len(members))
	for _, m := range members {
		keep[m] = true
	}
	for o := range v.reports {
		if !keep[o] {
			delete(v.reports, o)
		}
	}
}

// Origins returns the origins of the reports held, sorted.
func (v *View) Origins() []string {
	out := make([]string, 0, len(v.reports))
	for o := range v.reports {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// Resolve applies the resolution rule to the reports held, for the live appliances alive
// (this node included). See Resolve.
func (v *View) Resolve(alive []string) map[netip.AddrPort]bool {
	return Resolve(v.reports, alive)
}

// Resolve is the resolution rule, the same on every appliance: an endpoint is down when a
// strict majority of the live appliances that have a report in reports (R: the members of
// alive with a report) list it as down, up otherwise; with no report from any live appliance
// every endpoint is up. Reports of origins not in alive (dead or departed members) are
// ignored. A majority rather than one appliance's word, so that one appliance whose own path
// to the backends is broken (it sees everything down) cannot take endpoints away from the
// others; with one reporter its report decides, with two both must agree. The result holds
// only the endpoints that are down; it depends on the set of reports and alive names, not on
// their order, so appliances that hold the same reports and see the same members compute the
// same ready set (and so the same Maglev tables).
func Resolve(reports map[string]Report, alive []string) map[netip.AddrPort]bool {
	seen := map[string]bool{}
	var reporters []string
	for _, m := range alive {
		if _, ok := reports[m]; ok && !seen[m] {
			seen[m] = true
			reporters = append(reporters, m)
		}
	}
	down := map[netip.AddrPort]bool{}
	votes := map[netip.AddrPort]int{}
	for _, m := range reporters {
		for _, ep := range reports[m].Down {
			votes[ep]++
		}
	}
	for ep, v := range votes {
		if 2*v > len(reporters) {
			down[ep] = true
		}
	}
	return down
}
