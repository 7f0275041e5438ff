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
