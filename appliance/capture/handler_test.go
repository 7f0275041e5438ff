package capture

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// floodTarget arms real sessions and plays one worker that records a matching frame after
// another until the session is disarmed, as a busy data plane would.
type floodTarget struct {
	frame    []byte
	mu       sync.Mutex
	armed    *Session
	armedAt  time.Time
	disarmed atomic.Int64 // UnixNano of the first StopCapture; 0: none yet
	workers  sync.WaitGroup
}

func (f *floodTarget) StartCapture(cfg Config) (*Session, error) {
	s, err := NewSession(cfg, []string{"p"}, 1)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.armed, f.armedAt = s, time.Now()
	f.mu.Unlock()
	f.workers.Add(1)
	go func() {
		defer f.workers.Done()
		r := s.Ring(0)
		for f.isArmed(s) {
			for range 64 {
				r.Begin(f.frame, 0, 1)
				r.End(false, nil, 0)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	return s, nil
}

func (f *floodTarget) isArmed(s *Session) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.armed == s
}

func (f *floodTarget) StopCapture(s *Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed == s {
		f.armed = nil
		f.disarmed.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// TestStalledReaderCaptureEndsByItsDeadline: a client that sends the request and then never
// reads fills the socket buffers, so the handler's writes block. The capture must still be
// disarmed at its duration, and the handler return within TailWriteTimeout after it, instead of
// keeping the capture armed for as long as the client holds the connection.
func TestStalledReaderCaptureEndsByItsDeadline(t *testing.T) {
	const (
		duration = 400 * time.Millisecond
		tail     = 300 * time.Millisecond
		slack    = 3 * time.Second // scheduling under -race on a shared machine
	)
	ft := &floodTarget{frame: make([]byte, 2000)}
	var handlerDone atomic.Int64
	h := Handler(HandlerConfig{Target: ft, TailWriteTimeout: tail, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		handlerDone.Store(time.Now().UnixNano())
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(ft.workers.Wait)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/capture?duration=%s HTTP/1.1\r\nHost: x\r\n\r\n", duration)
	// Read only the status line: from here on the client stalls.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("status line %q: %v", line, err)
	}

	tstest.EventuallyTrue(t, duration+tail+2*slack, "the stalled capture's handler returns", func() bool {
		return handlerDone.Load() != 0
	})
	ft.mu.Lock()
	armedAt := ft.armedAt
	ft.mu.Unlock()
	if d := time.Unix(0, ft.disarmed.Load()).Sub(armedAt); ft.disarmed.Load() == 0 || d > duration+slack {
		t.Fatalf("capture disarmed %v after arming, want about its %v duration", d, duration)
	}
	if d := time.Unix(0, handlerDone.Load()).Sub(armedAt); d > duration+tail+slack {
		t.Fatalf("handler returned %v after arming, want within %v + %v", d, duration, tail)
	}
}
