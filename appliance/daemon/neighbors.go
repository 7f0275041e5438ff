package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsvc/lb/appliance/neigh"
	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

// neighborPruneInterval is how often the resolver forgets the destinations nothing forwards to
// any more (besides after every applied plan), so that its slots do not run out as endpoints
// and clients come and go.
const neighborPruneInterval = time.Minute

// kernelNeighbors feeds the data plane's neighbour table from the kernel's (appliance/neigh):
// lookups read the resolver's lock-free snapshot and slot table; probes are queued to its Run
// goroutine without blocking. Destinations that neither the plan's endpoints nor a live flow
// use are pruned after each plan and every neighborPruneInterval.
//
// Concurrency: the resolver has its own contract; pruneMu serialises prunes (the control
// goroutine's resolveEndpoints and the prune goroutine) and guards endpoints; flows is set once
// by setFlowTable.
type kernelNeighbors struct {
	r   *neigh.Resolver
	log *slog.Logger

	flows atomic.Pointer[flowRanger] // the flow table, once the data plane exists

	pruneMu   sync.Mutex
	endpoints []netip.Addr // of the plan last applied; nil until the first (nothing pruned before)
}

// flowRanger walks the live flows (*conntrack.Table, on the control path).
type flowRanger interface {
	Range(now int64, fn func(*conntrack.Flow) bool)
}

func newKernelNeighbors(ctx context.Context, log *slog.Logger) (*kernelNeighbors, error) {
	cfg := neigh.DefaultConfig()
	cfg.Logger = log
	r, err := neigh.New(cfg)
	if err != nil {
		return nil, err
	}
	k := &kernelNeighbors{r: r, log: log}
	go func() {
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("neighbour resolver stopped", "err", err)
		}
	}()
	go func() {
		t := time.NewTicker(neighborPruneInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				k.prune()
			}
		}
	}()
	return k, nil
}

// setFlowTable gives the pruning the data plane's flow table (a flow's destinations stay).
func (k *kernelNeighbors) setFlowTable(ct flowRanger) { k.flows.Store(&ct) }

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
// packet of a flow finds its backend's MAC, then prunes what the plan and the flows no longer
// use. Control goroutine, after each applied plan.
func (k *kernelNeighbors) resolveEndpoints(addrs []netip.Addr) error {
	err := k.r.ResolveAll(addrs)
	k.pruneMu.Lock()
	k.endpoints = append(make([]netip.Addr, 0, len(addrs)), addrs...)
	k.pruneMu.Unlock()
	k.prune()
	return err
}

// prune forgets the resolver's destinations that are neither an endpoint of the plan last
// applied nor an address of a live flow. The set is built first: Prune calls inUse under the
// resolver's mutex, which the flow walk must not hold up.
func (k *kernelNeighbors) prune() {
	k.pruneMu.Lock()
	defer k.pruneMu.Unlock()
	if k.endpoints == nil {
		return
	}
	var flows flowRanger
	if p := k.flows.Load(); p != nil {
		flows = *p
	}
	inUse := neighborsInUse(k.endpoints, flows, time.Now().UnixNano())
	dsts, hops := k.r.Prune(func(a netip.Addr) bool { return inUse[a] })
	if dsts > 0 || hops > 0 {
		k.log.Debug("neighbour destinations pruned", "destinations", dsts, "nextHops", hops, "inUse", len(inUse))
	}
}

// neighborsInUse is the set of destinations still forwarded to: the endpoints, and every
// address of every live flow in flows (clients and backends; nil: none).
func neighborsInUse(endpoints []netip.Addr, flows flowRanger, now int64) map[netip.Addr]bool {
	in := make(map[netip.Addr]bool, len(endpoints))
	for _, a := range endpoints {
		in[a] = true
	}
	if flows == nil {
		return in
	}
	flows.Range(now, func(f *conntrack.Flow) bool {
		for _, k := range [2]*packet.FlowKey{&f.Orig, &f.Reply} {
			in[flowKeyAddr(k.Family, k.SrcAddr)] = true
			in[flowKeyAddr(k.Family, k.DstAddr)] = true
		}
		return true
	})
	return in
}

// flowKeyAddr is a flow key's address as a netip.Addr of its family.
func flowKeyAddr(fam packet.Family, a [16]byte) netip.Addr {
	if fam == packet.FamilyIPv6 {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

func (k *kernelNeighbors) Close() error { return k.r.Close() }
