package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxListLimit caps the ?limit= of list endpoints (and Config.MaxFlows): a request cannot make
// the node build and encode an unbounded list.
const MaxListLimit = 10000

// Config configures the admin server.
type Config struct {
	// Listen is the TCP address to serve on, e.g. 127.0.0.1:9100.
	Listen string
	// Registry holds the metrics /metrics exposes; nil exposes none.
	Registry *prometheus.Registry
	// Logger receives start/stop messages; nil means slog.Default().
	Logger *slog.Logger
	// MaxFlows is /api/v1/flows's limit when the request gives none; capped at MaxListLimit.
	MaxFlows int
	// Routes are extra handlers by ServeMux pattern (e.g. "GET /api/v1/capture") for authorized
	// callers only, since they stream payloads or change state: served on the Unix socket, and
	// on the TCP listener only with the bearer token of TokenFile (401 without it; 403 when no
	// TokenFile is set). nil: none.
	Routes map[string]http.Handler
	// SocketPath, when set, is a Unix socket (created mode 0600, its directory if missing) that
	// serves every route, Routes included, without a token: the file permissions authorize its
	// callers (root and the daemon's user). Empty: no socket.
	SocketPath string
	// TokenFile, when set, holds the bearer token that opens Routes on the TCP listener (see
	// ReadTokenFile: mode 0600 or 0400, at least MinTokenBytes). It is read once, at Start.
	// Empty: Routes are not served on TCP.
	TokenFile string
	// ReadHeaderTimeout bounds reading a request's headers; 0: the default.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request for this long; 0: the
	// default.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing a response; a handler that streams longer (a capture) sets
	// its own deadline. 0: the default.
	WriteTimeout time.Duration
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:9100", MaxFlows: 1000, ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout: time.Minute, WriteTimeout: 30 * time.Second}
}

func (cfg Config) withDefaults() Config {
	def := DefaultConfig()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = def.MaxFlows
	}
	cfg.MaxFlows = min(cfg.MaxFlows, MaxListLimit)
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = def.ReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
	return cfg
}

// Server is a running admin API.
type Server struct {
	servers []*http.Server
	ln      net.Listener
	done    chan error
	// socket is the Unix socket's path and file (Close removes it if it is still ours).
	socket     string
	socketFile os.FileInfo

	closeOnce sync.Once
	closeErr  error
}

// Handler returns the API's routes over src, each of cfg.Routes wrapped by guard (nil: served
// as they are).
func Handler(src Source, cfg Config, guard func(http.Handler) http.Handler) http.Handler {
	cfg = cfg.withDefaults()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := src.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, src.Services()) })
	mux.HandleFunc("GET /api/v1/endpoints", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, src.Endpoints()) })
	mux.HandleFunc("GET /api/v1/members", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, src.Members()) })
	mux.HandleFunc("GET /api/v1/flows", func(w http.ResponseWriter, r *http.Request) {
		limit, ok := listLimit(w, r, cfg.MaxFlows)
		if ok {
			writeJSON(w, src.Flows(limit))
		}
	})
	for pattern, h := range cfg.Routes {
		if guard != nil {
			h = guard(h)
		}
		mux.Handle(pattern, h)
	}
	return mux
}

// listLimit reads ?limit= (def when absent), capped at MaxListLimit; on a bad value it answers
// 400 and returns false.
func listLimit(w http.ResponseWriter, r *http.Request, def int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		http.Error(w, fmt.Sprintf("limit: invalid value %q (0-%d)", s, MaxListLimit), http.StatusBadRequest)
		return 0, false
	}
	return min(n, MaxListLimit), true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Start listens on cfg.Listen (and cfg.SocketPath) and serves in the background until Close.
func Start(src Source, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	guard := func(http.Handler) http.Handler { return socketOnly(cfg.SocketPath) }
	if cfg.TokenFile != "" {
		token, err := ReadTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		guard = func(h http.Handler) http.Handler { return requireToken(token, h) }
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", cfg.Listen, err)
	}
	s := &Server{ln: ln, done: make(chan error, 2)}
	if cfg.SocketPath != "" {
		uln, fi, err := listenUnix(cfg.SocketPath)
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.socket, s.socketFile = cfg.SocketPath, fi
		s.serve(uln, Handler(src, cfg, nil), cfg)
	}
	s.serve(ln, Handler(src, cfg, guard), cfg)
	cfg.Logger.Info("admin API listening", "addr", ln.Addr().String(), "socket", cfg.SocketPath,
		"tokenFile", cfg.TokenFile)
	return s, nil
}

// serve serves h on ln in a goroutine that reports to s.done when the server closes.
func (s *Server) serve(ln net.Listener, h http.Handler, cfg Config) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout,
		WriteTimeout: cfg.WriteTimeout, MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	s.servers = append(s.servers, hs)
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting up to the context's deadline for requests in flight, and
// removes the Unix socket. Later calls return the first call's result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Server) close(ctx context.Context) error {
	var err error
	// The socket's name goes first: new callers are refused from now on anyway, and a process
	// killed while open connections drain leaves no socket behind.
	if s.socket != "" {
		if fi, serr := os.Lstat(s.socket); serr == nil && os.SameFile(fi, s.socketFile) {
			err = errors.Join(err, os.Remove(s.socket))
		}
	}
	for _, hs := range s.servers {
		err = errors.Join(err, hs.Shutdown(ctx))
	}
	for range s.servers {
		err = errors.Join(err, <-s.done)
	}
	return err
}
