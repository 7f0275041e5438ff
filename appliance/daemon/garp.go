package daemon

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/packet"
)

// sendARPProbe asks who has vip from the port's MAC with sender address 0.0.0.0 (an RFC 5227
// probe), through an AF_PACKET socket.
func sendARPProbe(p dataplane.Port, vip netip.Addr) error {
	if !vip.Is4() {
		return nil
	}
	var buf [64]byte
	n, err := packet.BuildARPRequest(buf[:], p.MAC, [4]byte{}, vip.As4())
	if err != nil {
		return err
	}
	return sendARPFrames(p, buf[:n])
}

// sendARPFrames sends ARP frames on the port through an AF_PACKET socket (the kernel's
// transmit path; XDP does not see outgoing frames).
func sendARPFrames(p dataplane.Port, frames ...[]byte) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("ARP socket: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.Ifindex, Halen: 6}
	copy(sa.Addr[:], packet.Broadcast[:])
	for _, f := range frames {
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("ARP on %s: %w", p.Name, err)
		}
	}
	return nil
}

// sendGratuitousARP announces vip at the port's MAC, in both the request and the reply form,
// through an AF_PACKET socket (the kernel's transmit path; XDP does not see outgoing frames).
func sendGratuitousARP(p dataplane.Port, vip netip.Addr) error {
	if !vip.Is4() {
		return nil
	}
	var req, rep [64]byte
	n1, err := packet.BuildGratuitousARP(req[:], p.MAC, vip.As4(), false)
	if err != nil {
		return err
	}
	n2, err := packet.BuildGratuitousARP(rep[:], p.MAC, vip.As4(), true)
	if err != nil {
		return err
	}
	if err := sendARPFrames(p, req[:n1], rep[:n2]); err != nil {
		return fmt.Errorf("gratuitous ARP for %s: %w", vip, err)
	}
	return nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
