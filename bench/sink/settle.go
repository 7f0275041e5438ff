package sink

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// Settled waits, bounded by two seconds, until the count stops changing (frames still in the receiving
// softirq when a generator returns land within milliseconds), and returns the frames and bytes counted.
func (s *Sink) Settled() (pkts, bytes uint64, err error) {
	deadline := time.Now().Add(2 * time.Second)
	prev := ^uint64(0)
	for {
		st, err := s.Stats()
		if err != nil {
			return 0, 0, err
		}
		if st.Packets == prev || time.Now().After(deadline) {
			return st.Packets, st.Bytes, nil
		}
		prev = st.Packets
		time.Sleep(50 * time.Millisecond)
	}
}

// AttachToAddr attaches a sink to the interface name or, when name is empty, to the interface holding
// addr, in the calling thread's network namespace. It returns the sink and the interface's name.
func AttachToAddr(name string, addr netip.Addr, f Filter) (*Sink, string, error) {
	l, err := linkFor(name, addr)
	if err != nil {
		return nil, "", err
	}
	s, err := Attach(l.Attrs().Index, f)
	if err != nil {
		return nil, "", err
	}
	return s, l.Attrs().Name, nil
}

// linkFor is the named interface, or the one holding addr, in the current namespace.
func linkFor(name string, addr netip.Addr) (netlink.Link, error) {
	if name != "" {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("find interface %s: %w", name, err)
		}
		return l, nil
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("find interface %d: %w", a.LinkIndex, err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("no interface has address %s: give --sink-iface", addr)
}
