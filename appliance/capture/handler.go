package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/xdpsvc/lb/packet"
)

// Target is the data plane as a capture needs it: arm a session on every worker, and disarm it.
type Target interface {
	// StartCapture arms a new session; it fails if one is armed already.
	StartCapture(cfg Config) (*Session, error)
	// StopCapture disarms s (no-op if s is not the armed session).
	StopCapture(s *Session)
}

// ErrBusy is returned by a Target when a capture is already running.
var ErrBusy = errors.New("a capture is already running")

// HandlerConfig configures the admin API's capture endpoint.
type HandlerConfig struct {
	// Target is the data plane to capture on.
	Target Target
	// ResolveService turns "namespace/name" into rules matching the Service's frontends
	// (ClusterIPs, external IP, node addresses with nodePorts); nil: ?service= is refused.
	ResolveService func(key string) ([]Rule, error)
	// MaxDuration caps every capture; 0: DefaultMaxDuration.
	MaxDuration time.Duration
	// TailWriteTimeout is how long after a capture's duration its response may still take to
	// deliver the last frames and the trailers; a client that stops reading loses its connection
	// then. 0: DefaultTailWriteTimeout.
	TailWriteTimeout time.Duration
	// Logger receives start/stop messages; nil: slog.Default().
	Logger *slog.Logger
	// Done, when closed, ends every running capture (the daemon closes it on shutdown, so
	// that a capture in progress does not hold the admin server open); nil: never.
	Done <-chan struct{}
}

// Defaults of HandlerConfig.
const (
	DefaultMaxDuration      = 10 * time.Minute
	DefaultTailWriteTimeout = 5 * time.Second
)

// Trailer names carrying a capture's counters at the end of the HTTP response.
const (
	TrailerMatched = "Appliance-Capture-Matched"
	TrailerDropped = "Appliance-Capture-Dropped"
	TrailerWritten = "Appliance-Capture-Written"
)

// Request is a parsed capture request.
type Request struct {
	// Filter selects the frames.
	Filter Filter
	// MaxFrames stops after this many records; 0: no limit.
	MaxFrames uint64
	// Duration stops after this long; 0: the handler's MaxDuration.
	Duration time.Duration
	// SnapLenBytes is the bytes kept per frame; 0: the default.
	SnapLenBytes int
}

// ParseRequest reads ?service=ns/name | ?vip=IP | ?flow=PROTO SRC:PORT DST:PORT, and
// ?count=N, ?duration=D (Go duration), ?snaplen=N (at least an Ethernet header; above
// MaxSnapLenBytes it is capped there).
func ParseRequest(q url.Values, resolve func(string) ([]Rule, error)) (Request, error) {
	var req Request
	given := 0
	for _, k := range []string{"service", "vip", "flow"} {
		if q.Has(k) {
			given++
		}
	}
	if given > 1 {
		return req, errors.New("capture: give at most one of service, vip and flow")
	}
	var (
		rules []Rule
		desc  string
	)
	switch {
	case q.Has("service"):
		key := q.Get("service")
		if resolve == nil {
			return req, errors.New("capture: service filter not supported here")
		}
		rs, err := resolve(key)
		if err != nil {
			return req, fmt.Errorf("capture service %s: %w", key, err)
		}
		if len(rs) == 0 {
			return req, fmt.Errorf("capture service %s: it has no frontends", key)
		}
		rules, desc = rs, "service "+key
	case q.Has("vip"):
		a, err := netip.ParseAddr(q.Get("vip"))
		if err != nil {
			return req, fmt.Errorf("capture vip: %w", err)
		}
		rules, desc = []Rule{{Addr: a}}, "host "+a.String()
	case q.Has("flow"):
		r, err := ParseFlow(q.Get("flow"))
		if err != nil {
			return req, fmt.Errorf("capture: %w", err)
		}
		rules, desc = []Rule{r}, "flow "+q.Get("flow")
	}
	f, err := NewFilter(desc, rules...)
	if err != nil {
		return req, err
	}
	req.Filter = f
	if s := q.Get("count"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return req, fmt.Errorf("capture count: invalid value %q", s)
		}
		req.MaxFrames = n
	}
	if s := q.Get("duration"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return req, fmt.Errorf("capture duration: invalid value %q", s)
		}
		req.Duration = d
	}
	if s := q.Get("snaplen"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < packet.EthHeaderLen {
			return req, fmt.Errorf("capture snaplen: invalid value %q (%d-%d)", s, packet.EthHeaderLen, MaxSnapLenBytes)
		}
		req.SnapLenBytes = min(n, MaxSnapLenBytes)
	}
	return req, nil
}

// Handler serves GET /api/v1/capture: it arms a session, streams pcapng
// (application/vnd.tcpdump.pcapng) until the count, the duration or the client ends it, disarms,
// and reports the counters in trailers.
//
// The duration holds whatever the client does: a timer disarms the session when it ends, even
// while a write is blocked on a client that stopped reading, and every write of the response has
// a deadline TailWriteTimeout after it, so the handler (and its connection) is released too.
func Handler(cfg HandlerConfig) http.Handler {
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.TailWriteTimeout <= 0 {
		cfg.TailWriteTimeout = DefaultTailWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := ParseRequest(r.URL.Query(), cfg.ResolveService)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Duration == 0 || req.Duration > cfg.MaxDuration {
			req.Duration = cfg.MaxDuration
		}
		end := time.Now().Add(req.Duration)
		ccfg := DefaultConfig()
		ccfg.Filter = req.Filter
		if req.SnapLenBytes > 0 {
			ccfg.SnapLenBytes = req.SnapLenBytes
		}
		s, err := cfg.Target.StartCapture(ccfg)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrBusy) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		defer cfg.Target.StopCapture(s)
		disarm := time.AfterFunc(time.Until(end), func() { cfg.Target.StopCapture(s) })
		defer disarm.Stop()
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(end.Add(cfg.TailWriteTimeout)); err != nil {
			// Only a ResponseWriter without a connection (a test recorder) lacks deadlines; the
			// timer above still disarms the session on time.
			cfg.Logger.Warn("capture: response without a write deadline", "err", err)
		}
		cfg.Logger.Info("capture started", "filter", req.Filter.String(), "count", req.MaxFrames, "duration", req.Duration.String())
		w.Header().Set("Content-Type", "application/vnd.tcpdump.pcapng")
		w.Header().Set("Trailer", TrailerMatched+", "+TrailerDropped+", "+TrailerWritten)
		w.WriteHeader(http.StatusOK)
		ctx := r.Context()
		if cfg.Done != nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-cfg.Done:
					cancel()
				case <-ctx.Done():
				}
			}()
		}
		st, err := Stream(ctx, s, w, StreamOptions{MaxFrames: req.MaxFrames, Duration: max(time.Until(end), time.Nanosecond),
			Flush: func() { _ = rc.Flush() }})
		w.Header().Set(TrailerMatched, strconv.FormatUint(st.Matched, 10))
		w.Header().Set(TrailerDropped, strconv.FormatUint(st.Dropped, 10))
		w.Header().Set(TrailerWritten, strconv.FormatUint(st.Written, 10))
		if err != nil {
			cfg.Logger.Warn("capture ended", "err", err, "written", st.Written, "dropped", st.Dropped)
			return
		}
		cfg.Logger.Info("capture ended", "written", st.Written, "matched", st.Matched, "dropped", st.Dropped)
	})
}
