package daemon

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/packet"
)

// sendGratuitousARP announces vip at the port's MAC, in both the request and the reply form,
// through an AF_PACKET socket (the kernel's transmit path; XDP does not see outgoing frames).
func sendGratuitousARP(p dataplane.Port, vip netip.Addr) error {
	if !vip.Is4() {
		return nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("gratuitous ARP socket: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.Ifindex, Halen: 6}
	copy(sa.Addr[:], packet.Broadcast[:])
	var buf [64]byte
	for _, reply := range []bool{false, true} {
		n, err := packet.BuildGratuitousARP(buf[:], p.MAC, vip.As4(), reply)
		if err != nil {
			return err
		}
		if err := unix.Sendto(fd, buf[:n], 0, sa); err != nil {
			return fmt.Errorf("gratuitous ARP for %s on %s: %w", vip, p.Name, err)
		}
	}
	return nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
