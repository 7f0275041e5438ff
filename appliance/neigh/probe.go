package neigh

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// discardPort is the UDP port of the probe datagram (RFC 863 discard).
const discardPort = 9

// KernelProber makes the kernel resolve a next hop by sending it one empty UDP datagram from a
// socket opened in the resolver's namespace: the kernel queues the datagram on the neighbour
// entry and runs ARP (IPv4) or neighbour discovery (IPv6) for it.
type KernelProber struct {
	fd4, fd6 int // -1 when the family is not available
}

// NewKernelProber opens the probe sockets in ns (nil: the current namespace).
func NewKernelProber(ns *netns.NsHandle) (*KernelProber, error) {
	p := &KernelProber{fd4: -1, fd6: -1}
	err := inNamespace(ns, func() error {
		var err4, err6 error
		p.fd4, err4 = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		p.fd6, err6 = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err4 != nil {
			p.fd4 = -1
		}
		if err6 != nil {
			p.fd6 = -1
		}
		if err4 != nil && err6 != nil {
			return errors.Join(err4, err6)
		}
		return nil
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open probe sockets: %w", err)
	}
	return p, nil
}

// Probe sends one empty datagram to nexthop's discard port out of link linkIndex.
func (p *KernelProber) Probe(nexthop netip.Addr, linkIndex int) error {
	var fd int
	var sa unix.Sockaddr
	if nexthop.Is4() {
		fd, sa = p.fd4, &unix.SockaddrInet4{Port: discardPort, Addr: nexthop.As4()}
	} else {
		fd, sa = p.fd6, &unix.SockaddrInet6{Port: discardPort, Addr: nexthop.As16(), ZoneId: uint32(linkIndex)}
	}
	if fd < 0 {
		return fmt.Errorf("probe %v: no socket for its family", nexthop)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, linkIndex); err != nil {
		return fmt.Errorf("probe %v: bind to link %d: %w", nexthop, linkIndex, err)
	}
	if err := unix.Sendto(fd, nil, 0, sa); err != nil {
		return fmt.Errorf("probe %v: %w", nexthop, err)
	}
	return nil
}

// Close closes the sockets.
func (p *KernelProber) Close() error {
	var errs []error
	for _, fd := range []int{p.fd4, p.fd6} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	p.fd4, p.fd6 = -1, -1
	return errors.Join(errs...)
}

// inNamespace runs fn on a locked OS thread switched into ns (nil: run fn directly). If the
// thread cannot be switched back it stays locked, so that Go retires it.
func inNamespace(ns *netns.NsHandle, fn func() error) error {
	if ns == nil {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(*ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("restore namespace: %w", err)) // thread stays locked and dies
	}
	runtime.UnlockOSThread()
	return ferr
}
