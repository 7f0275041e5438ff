package daemon

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/xdpsvc/lb/appliance/neigh"
)

// kernelNeighbors feeds the data plane's neighbour table from the kernel's (appliance/neigh):
// lookups read the resolver's lock-free snapshot and slot table; probes are queued to its Run
// goroutine without blocking.
type kernelNeighbors struct {
	r *neigh.Resolver
}

func newKernelNeighbors(ctx context.Context, log *slog.Logger) (*kernelNeighbors, error) {
	cfg := neigh.DefaultConfig()
	cfg.Logger = log
	r, err := neigh.New(cfg)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("neighbour resolver stopped", "err", err)
		}
	}()
	return &kernelNeighbors{r: r}, nil
}

// Lookup implements dataplane.NeighborSource.
func (k *kernelNeighbors) Lookup(ip netip.Addr) ([6]byte, bool) {
	slot, ok := k.r.Snapshot().Slot(ip)
	if !ok {
		return [6]byte{}, false
	}
	return k.r.Slots().MAC(slot)
}

// Generation implements dataplane.NeighborSource: it changes when any resolved MAC changes.
func (k *kernelNeighbors) Generation() uint64 { return k.r.Slots().Generation() }

// Probe implements dataplane.NeighborSource.
func (k *kernelNeighbors) Probe(ip netip.Addr) { k.r.Request(ip) }

// resolveEndpoints asks for every endpoint address of the plan up front, so that the first
// packet of a flow finds its backend's MAC.
func (k *kernelNeighbors) resolveEndpoints(addrs []netip.Addr) error { return k.r.ResolveAll(addrs) }

func (k *kernelNeighbors) Close() error { return k.r.Close() }
