package tstest

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure and ends its goroutine as t.Fatalf does, so that
// the helpers' failure paths can be tested; run the helper under test with fails.
type recorder struct {
	testing.TB
	failed string
	logs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Log(args ...any) { r.logs = append(r.logs, fmt.Sprint(args...)) }
func (r *recorder) Cleanup(func())  {}

// fails runs f with a recorder on its own goroutine and returns the failure f reported, if any.
func fails(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.failed
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Second, "third try", func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond ran %d times, want 3", n)
	}

	if fails(t, func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, "never true", func() error { return errors.New("still false") })
	}) == "" {
		t.Fatal("Eventually did not fail on a condition that never held")
	}
}

func TestNever(t *testing.T) {
	if fails(t, func(tb testing.TB) {
		Never(tb, 50*time.Millisecond, 5*time.Millisecond, "became true", func() bool { return true })
	}) == "" {
		t.Fatal("Never did not fail on a condition that held")
	}
	Never(t, 20*time.Millisecond, 5*time.Millisecond, "became true", func() bool { return false })
}

func TestLogWriter(t *testing.T) {
	r := &recorder{TB: t}
	w := &LogWriter{tb: r, prefix: "x: "}
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\nthree")
	w.stop()
	fmt.Fprint(w, "after\n")
	want := []string{"x: one", "x: two", "x: three"}
	if fmt.Sprint(r.logs) != fmt.Sprint(want) {
		t.Fatalf("logged %q, want %q", r.logs, want)
	}
}
