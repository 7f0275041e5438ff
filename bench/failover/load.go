package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// The load through the VIP across a kill: an open loop of new connections (attemptLoop) and the
// long-lived connections (heldConns).

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
	err := fetch(ctx, hc, url, timeout)
	var status statusError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &status):
		return status.Error()
	}
	return classify(err)
}

// statusError is an HTTP answer other than 200 OK.
type statusError int

func (s statusError) Error() string { return fmt.Sprintf("status %d", int(s)) }

// fetch is one HTTP GET of url bounded by timeout; the body is read (up to 64 KiB) and dropped.
func fetch(ctx context.Context, hc *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
		return statusError(resp.StatusCode)
	}
	return nil
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
