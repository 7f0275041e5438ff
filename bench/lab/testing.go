package lab

import (
	"context"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// New builds a lab for a test and registers its Down with t.Cleanup, so it is removed even when the test
// fails. It skips the test when not root and fails it when the lab cannot be built. Stale labs of crashed
// runs are swept first.
func New(t testing.TB, spec Spec) *Lab {
	t.Helper()
	tstest.RequireRoot(t)
	if _, err := Sweep(spec.StateDir); err != nil {
		t.Logf("lab: sweeping stale labs: %v", err)
	}
	if spec.Logf == nil {
		spec.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := Up(ctx, spec)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l.Spec.Logf = nil // t.Logf must not be called after the test ends
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab %s: %v", l.Prefix(), err)
		}
	})
	return l
}
