package sink

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

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
