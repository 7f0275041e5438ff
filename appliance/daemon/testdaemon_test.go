package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/xdpsvc/lb/appliance/dataplane"
)

// runTestDaemon runs the daemon in-process on cfgPath with one fake port and idle I/O (no root,
// no NIC: the control path runs for real, the packet path has nothing to do), and kube, when not
// nil, as its Kubernetes client. It returns once the daemon is ready; the test's cleanup stops it
// and checks that Run returned without error. The recordingIO holds what the steering maps would.
func runTestDaemon(t *testing.T, name, cfgPath string, kube kubernetes.Interface) *recordingIO {
	t.Helper()
	rio := &recordingIO{}
	ready, finished := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	go func() {
		defer close(finished)
		runErr = Run(ctx, Options{
			ConfigPath: cfgPath,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			KubeClient: kube,
			Ports: []dataplane.Port{{Name: "test0", Ifindex: 1 << 20, MAC: [6]byte{2, 0, 0, 0, 0, 1},
				Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24")}}},
			Ready: ready,
			OpenIO: func(ports []dataplane.Port, dp *dataplane.DataPlane, _ *slog.Logger) (IOLayer, error) {
				q := Queue{Wait: idleIO{}.wait}
				for range ports {
					q.IO = append(q.IO, idleIO{})
				}
				rio.queues = []Queue{q}
				return rio, nil
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
			if runErr != nil {
				t.Errorf("%s: Run: %v", name, runErr)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return after cancel", name)
		}
	})
	select {
	case <-ready:
	case <-finished:
		t.Fatalf("%s: Run ended early: %v", name, runErr)
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: daemon not ready", name)
	}
	return rio
}
