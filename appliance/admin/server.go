package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the admin server.
type Config struct {
	// Listen is the TCP address to serve on, e.g. 127.0.0.1:9100.
	Listen string
	// Registry holds the metrics /metrics exposes; nil exposes none.
	Registry *prometheus.Registry
	// Logger receives start/stop messages; nil means slog.Default().
	Logger *slog.Logger
	// MaxFlows caps /api/v1/flows when the request gives no limit.
	MaxFlows int
	// Routes are extra handlers by ServeMux pattern (e.g. "GET /api/v1/capture"); nil: none.
	Routes map[string]http.Handler
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:9100", MaxFlows: 1000}
}

// Server is a running admin API.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Handler returns the API's routes over src.
func Handler(src Source, cfg Config) http.Handler {
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
		limit := cfg.MaxFlows
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				http.Error(w, fmt.Sprintf("limit: invalid value %q", s), http.StatusBadRequest)
				return
			}
			limit = n
		}
		writeJSON(w, src.Flows(limit))
	})
	for pattern, h := range cfg.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Start listens on cfg.Listen and serves in the background until Close.
func Start(src Source, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultConfig().MaxFlows
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", cfg.Listen, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: Handler(src, cfg), ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	cfg.Logger.Info("admin API listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting up to the context's deadline for requests in flight.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; err == nil {
		err = serr
	}
	return err
}
