package xsk

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Registrar is where sockets are registered: the steering program's XSKMAP.
type Registrar interface {
	RegisterSocket(queue, fd int) error
}

// QueueCount returns how many RX queues ifname has in the calling thread's network namespace:
// ethtool's channel counts (combined + rx), else the sysfs queue directories, else 1.
func QueueCount(ifname string) (int, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("queue count of %q: name too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("queue count of %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	if ch, errno := ethtoolGetChannels(fd, ifname); errno == 0 {
		if n := int(ch.combined + ch.rx); n > 0 {
			return n, nil
		}
	}
	ents, err := os.ReadDir("/sys/class/net/" + ifname + "/queues")
	if err == nil {
		n := 0
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "rx-") {
				n++
			}
		}
		if n > 0 {
			return n, nil
		}
	}
	return 1, nil
}

// OpenInterface opens one socket per RX queue of the interface (in the calling thread's
// namespace) and registers each in reg. On error everything opened is closed again.
func OpenInterface(ifname string, ifindex int, reg Registrar, cfg Config) ([]*Socket, error) {
	n, err := QueueCount(ifname)
	if err != nil {
		return nil, fmt.Errorf("open AF_XDP sockets on %s: %w", ifname, err)
	}
	socks := make([]*Socket, 0, n)
	closeAll := func() {
		for _, s := range socks {
			s.Close()
		}
	}
	for q := 0; q < n; q++ {
		s, err := Open(ifindex, q, cfg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open AF_XDP sockets on %s: %w", ifname, err)
		}
		socks = append(socks, s)
		if err := reg.RegisterSocket(q, s.FD()); err != nil {
			closeAll()
			return nil, fmt.Errorf("open AF_XDP sockets on %s: %w", ifname, err)
		}
	}
	if len(socks) == 0 {
		return nil, errors.New("open AF_XDP sockets on " + ifname + ": no queues")
	}
	return socks, nil
}
