package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures one backend's servers. Empty addresses mean that server is not run by ListenAndServe.
type Config struct {
	// Name is the backend's name in every answer (e.g. "b1"); required.
	Name string
	// HTTPAddr is the HTTP listen address (e.g. ":8080").
	HTTPAddr string
	// UDPAddr is the UDP echo listen address (e.g. ":9000").
	UDPAddr string
	// TCPEchoAddr is the TCP echo listen address (e.g. ":7000").
	TCPEchoAddr string
	// IdleTimeout closes an echo or stream connection with no traffic for this long.
	IdleTimeout time.Duration
	// MaxConns bounds concurrent TCP echo and HTTP connections each; more are closed at once.
	MaxConns int
	// MaxDatagramBytes is the largest UDP datagram read; longer ones are truncated by the kernel.
	MaxDatagramBytes int
	// Logger receives start, stop and error lines (nil: discard). Never per request.
	Logger *slog.Logger
}

// DefaultConfig is a backend named "b1" on the ports of configs/services.yaml.
func DefaultConfig() Config {
	return Config{
		Name: "b1", HTTPAddr: ":8080", UDPAddr: ":9000", TCPEchoAddr: ":7000",
		IdleTimeout: 2 * time.Minute, MaxConns: 1024, MaxDatagramBytes: 65535,
	}
}

// Listeners are already-open sockets for Serve; nil ones are not served.
type Listeners struct {
	// HTTP serves /, /whoami, /stream and /healthz.
	HTTP net.Listener
	// TCPEcho echoes every byte back.
	TCPEcho net.Listener
	// UDP answers each datagram with "<name> <payload>".
	UDP net.PacketConn
}

// Stats counts what a Server has answered.
type Stats struct {
	// HTTPRequests is the number of HTTP requests handled.
	HTTPRequests uint64
	// EchoConns is the number of TCP echo connections accepted.
	EchoConns uint64
	// UDPDatagrams is the number of UDP datagrams answered.
	UDPDatagrams uint64
	// Rejected is the number of connections closed because MaxConns was reached.
	Rejected uint64
}

// WhoAmI is the JSON body of GET /whoami.
type WhoAmI struct {
	// Backend is the backend's name.
	Backend string `json:"backend"`
	// Local is the address the request arrived on.
	Local string `json:"local"`
	// Remote is the client address the backend saw (after any NAT).
	Remote string `json:"remote"`
}

// Server is one backend. Serve may be called once; Stats from any goroutine.
type Server struct {
	cfg                                   Config
	log                                   *slog.Logger
	httpReqs, echoConns, udpDgs, rejected atomic.Uint64
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("backend config: name is empty")
	}
	if cfg.IdleTimeout <= 0 || cfg.MaxConns <= 0 || cfg.MaxDatagramBytes <= 0 {
		return nil, fmt.Errorf("backend config %s: idle timeout, max conns and max datagram bytes must be positive", cfg.Name)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("backend", cfg.Name)}, nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{HTTPRequests: s.httpReqs.Load(), EchoConns: s.echoConns.Load(), UDPDatagrams: s.udpDgs.Load(), Rejected: s.rejected.Load()}
}

// ListenAndServe opens the configured addresses and serves them until ctx is done.
func ListenAndServe(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	var ls Listeners
	closeAll := func() {
		for _, c := range []io.Closer{ls.HTTP, ls.TCPEcho, ls.UDP} {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	if cfg.HTTPAddr != "" {
		if ls.HTTP, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("backend %s http: %w", cfg.Name, err)
		}
	}
	if cfg.TCPEchoAddr != "" {
		if ls.TCPEcho, err = net.Listen("tcp", cfg.TCPEchoAddr); err != nil {
			closeAll()
			return fmt.Errorf("backend %s tcp echo: %w", cfg.Name, err)
		}
	}
	if cfg.UDPAddr != "" {
		if ls.UDP, err = net.ListenPacket("udp", cfg.UDPAddr); err != nil {
			closeAll()
			return fmt.Errorf("backend %s udp echo: %w", cfg.Name, err)
		}
	}
	return s.Serve(ctx, ls)
}

// Serve serves the given sockets until ctx is done, then closes them and every open connection and returns
// nil; it returns an error early only if a listener fails.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	var closers []func()
	if ls.HTTP != nil {
		hs := s.httpServer(ctx)
		ln := limitListener(ls.HTTP, s.cfg.MaxConns, &s.rejected)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A closed listener is a stop, as for the echo listener: the lab closes the sockets it
			// handed out before it stops the servers.
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("backend %s http: %w", s.cfg.Name, err)
			}
		}()
		closers = append(closers, func() { _ = hs.Close() })
		s.log.Info("serving http", "addr", ls.HTTP.Addr().String())
	}
	if ls.TCPEcho != nil {
		var conns sync.WaitGroup
		track := newConnSet()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveEcho(ctx, ls.TCPEcho, track, &conns); err != nil {
				errc <- err
			}
			conns.Wait()
		}()
		closers = append(closers, func() { _ = ls.TCPEcho.Close(); track.closeAll() })
		s.log.Info("serving tcp echo", "addr", ls.TCPEcho.Addr().String())
	}
	if ls.UDP != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveUDP(ls.UDP); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
		closers = append(closers, func() { _ = ls.UDP.Close() })
		s.log.Info("serving udp echo", "addr", ls.UDP.LocalAddr().String())
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	for _, c := range closers {
		c()
	}
	wg.Wait()
	s.log.Info("stopped")
	return err
}

// httpServer builds the HTTP handlers: GET / names the backend and the address it was reached on, GET /whoami
// returns WhoAmI as JSON, /stream echoes the request body as it arrives (full duplex, for long-lived flows),
// GET /healthz answers "ok".
func (s *Server) httpServer(ctx context.Context) *http.Server {
	mux := http.NewServeMux()
	local := func(r *http.Request) string {
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			return a.String()
		}
		return ""
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s.httpReqs.Add(1)
		fmt.Fprintf(w, "backend %s %s\n", s.cfg.Name, local(r))
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		s.httpReqs.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(WhoAmI{Backend: s.cfg.Name, Local: local(r), Remote: r.RemoteAddr})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.httpReqs.Add(1)
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		s.httpReqs.Add(1)
		s.stream(w, r)
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          nil,
	}
}

// stream echoes the request body chunk by chunk, flushing each, until the client closes its side, the
// connection idles for IdleTimeout, or the server stops.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	fmt.Fprintf(w, "backend %s stream\n", s.cfg.Name)
	if err := rc.Flush(); err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for r.Context().Err() == nil {
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := r.Body.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serveEcho accepts TCP echo connections until the listener closes.
func (s *Server) serveEcho(ctx context.Context, ln net.Listener, track *connSet, conns *sync.WaitGroup) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("backend %s tcp echo accept: %w", s.cfg.Name, err)
		}
		if !track.add(c, s.cfg.MaxConns) {
			s.rejected.Add(1)
			_ = c.Close()
			continue
		}
		s.echoConns.Add(1)
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer track.remove(c)
			s.echo(c)
		}()
	}
}

// echo copies everything back until EOF, an error or IdleTimeout without traffic.
func (s *Server) echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		_ = c.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serveUDP answers each datagram with "<name> <payload>" until the socket closes.
func (s *Server) serveUDP(pc net.PacketConn) error {
	prefix := s.cfg.Name + " "
	buf := make([]byte, s.cfg.MaxDatagramBytes)
	out := make([]byte, 0, len(prefix)+s.cfg.MaxDatagramBytes)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("backend %s udp echo: %w", s.cfg.Name, err)
		}
		out = append(append(out[:0], prefix...), buf[:n]...)
		if len(out) > 65507 { // largest UDP payload over IPv4
			out = out[:65507]
		}
		s.udpDgs.Add(1)
		_, _ = pc.WriteTo(out, addr) // a lost reply is like a lost datagram
	}
}

// connSet tracks open echo connections so Serve can close them on stop.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newConnSet() *connSet { return &connSet{conns: make(map[net.Conn]struct{})} }

func (cs *connSet) add(c net.Conn, max int) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || len(cs.conns) >= max {
		return false
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, c)
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.conns {
		_ = c.Close()
	}
}

// limitListener closes connections beyond max open at once.
func limitListener(ln net.Listener, max int, rejected *atomic.Uint64) net.Listener {
	return &limited{Listener: ln, sem: make(chan struct{}, max), rejected: rejected}
}

type limited struct {
	net.Listener
	sem      chan struct{}
	rejected *atomic.Uint64
}

func (l *limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.rejected.Add(1)
			_ = c.Close()
		}
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
