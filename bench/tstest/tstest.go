package tstest

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// RequireRoot skips the test unless it runs as root. Privileged tests (network namespaces, XDP,
// AF_XDP, nftables) call it first, so that `go test` as an ordinary user skips them with this message.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, XDP, AF_XDP, nftables): run the tests as root")
	}
}

// IsRoot reports whether the test runs as root, for tests that do more when they can.
func IsRoot() bool { return os.Geteuid() == 0 }

// pollFirst and pollMax bound the backoff of Eventually: the first retry comes soon, later ones no
// further apart than pollMax, so that a condition that becomes true is seen within pollMax.
const (
	pollFirst = 10 * time.Millisecond
	pollMax   = 200 * time.Millisecond
)

// Eventually retries cond with backoff until it returns nil, and fails the test with what and
// cond's last error once timeout has passed. It returns how long it waited.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for delay := pollFirst; ; delay = min(2*delay, pollMax) {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s: %v", timeout, what, err)
		}
		time.Sleep(delay)
	}
}

// EventuallyTrue is Eventually for a condition without an error to report.
func EventuallyTrue(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	return Eventually(tb, timeout, what, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("not yet")
	})
}

// Never checks that cond stays false for d, polling every interval, and fails the test with what
// as soon as it holds.
func Never(tb testing.TB, d, interval time.Duration, what string, cond func() bool) {
	tb.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(interval) {
		if cond() {
			tb.Fatalf("%s (within %s)", what, d)
		}
	}
}

// NewLogWriter returns an io.Writer that sends each complete line to tb.Log, prefixed with prefix. It
// stops forwarding when the test ends (a component still logging after that is not a failure), so
// it suits a slog handler or a child process's output.
func NewLogWriter(tb testing.TB, prefix string) *LogWriter {
	w := &LogWriter{tb: tb, prefix: prefix}
	tb.Cleanup(w.stop)
	return w
}

// LogWriter is the writer NewLogWriter returns.
type LogWriter struct {
	mu      sync.Mutex // guards everything below
	tb      testing.TB
	prefix  string
	pending []byte
	done    bool
}

// Write buffers p and logs every complete line in it.
func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.tb.Log(w.prefix + string(w.pending[:i]))
		w.pending = w.pending[i+1:]
	}
	return len(p), nil
}

func (w *LogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.tb.Log(w.prefix + string(w.pending))
	}
	w.done = true
}
