package lab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Permanent wraps an error that ends a Poll at once (the process it waits for has exited, say).
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// Poll calls cond until it returns nil, a Permanent error, ctx ends or timeout passes, with a
// backoff that starts at 20 ms and stays at or under 250 ms (bounded; no bare sleeps). The error
// after timeout wraps cond's last one.
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := cond()
		if err == nil {
			return nil
		}
		var perm Permanent
		if errors.As(err, &perm) {
			return perm.Err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		if err := Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// Sleep waits d or until ctx ends, and returns ctx's error in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
