package daemon

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
)

// discoverPorts reads each configured interface's index, MAC and IPv4 addresses from the kernel.
func discoverPorts(ifaces []config.InterfaceConfig) ([]dataplane.Port, error) {
	ports := make([]dataplane.Port, 0, len(ifaces))
	for _, ic := range ifaces {
		link, err := netlink.LinkByName(ic.Name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", ic.Name, err)
		}
		attrs := link.Attrs()
		if len(attrs.HardwareAddr) != 6 {
			return nil, fmt.Errorf("interface %s: not an Ethernet interface (hardware address %q)", ic.Name, attrs.HardwareAddr)
		}
		p := dataplane.Port{Name: ic.Name, Ifindex: attrs.Index, MAC: [6]byte(attrs.HardwareAddr)}
		switch ic.Role {
		case config.RoleExternal:
			p.Role = dataplane.RoleExternal
		case config.RoleCluster:
			p.Role = dataplane.RoleCluster
		default:
			p.Role = dataplane.RoleBoth
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("interface %s addresses: %w", ic.Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP.To4())
			if !ok {
				continue
			}
			ones, _ := a.Mask.Size()
			p.Prefixes = append(p.Prefixes, netip.PrefixFrom(ip, ones))
		}
		if len(p.Prefixes) == 0 {
			return nil, fmt.Errorf("interface %s has no IPv4 address: the appliance needs one for NodePorts and SNAT", ic.Name)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// chooseSNATAddresses applies network.snat.addresses (addrs) to ports: on every port that
// backends are reached through (role cluster or both) the first of addrs the port has becomes
// its first prefix, which the data plane takes as the port's SNAT source. A port of those
// roles with none of addrs is an error. With no addrs the ports are returned unchanged (each
// port's first address is its SNAT source). External-only ports are left as they are.
func chooseSNATAddresses(ports []dataplane.Port, addrs []netip.Addr) ([]dataplane.Port, error) {
	if len(addrs) == 0 {
		return ports, nil
	}
	out := make([]dataplane.Port, len(ports))
	for i, p := range ports {
		out[i] = p
		at := -1
		for _, want := range addrs {
			for j, pf := range p.Prefixes {
				if pf.Addr().Unmap() == want.Unmap() {
					at = j
					break
				}
			}
			if at >= 0 {
				break
			}
		}
		if at < 0 {
			if p.Role == dataplane.RoleExternal {
				continue
			}
			return nil, fmt.Errorf("interface %s has none of network.snat.addresses %v (its addresses: %v): add one of them to it, or list one of its addresses", p.Name, addrs, p.Prefixes)
		}
		pfs := make([]netip.Prefix, 0, len(p.Prefixes))
		pfs = append(pfs, p.Prefixes[at])
		pfs = append(pfs, p.Prefixes[:at]...)
		out[i].Prefixes = append(pfs, p.Prefixes[at+1:]...)
	}
	return out, nil
}
