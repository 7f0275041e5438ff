package steer

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// LocalPortRangePath is where the kernel publishes the host's ephemeral port range (the
// source ports of its own outgoing IPv4 and IPv6 connections).
const LocalPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range"

// ReadLocalPortRange reads the host's ephemeral port range from path (LocalPortRangePath
// outside tests).
func ReadLocalPortRange(path string) (first, last uint16, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read the host's ephemeral port range: %w", err)
	}
	first, last, err = parseLocalPortRange(string(b))
	if err != nil {
		return 0, 0, fmt.Errorf("read the host's ephemeral port range %s: %w", path, err)
	}
	return first, last, nil
}

// parseLocalPortRange parses the sysctl's "first<whitespace>last" text.
func parseLocalPortRange(s string) (first, last uint16, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%q: want two port numbers", s)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return 0, 0, fmt.Errorf("%q: want two port numbers, the first not above the second", s)
	}
	return uint16(lo), uint16(hi), nil
}

// CheckSNATRange refuses an SNAT port range that overlaps the host's ephemeral range: the
// SNAT range is steered to the appliance on every node address, so replies to the host's own
// connections from an overlapping port would never reach the kernel. The error names both
// ranges and the two ways out.
func CheckSNATRange(snatFirst, snatLast, localFirst, localLast uint16) error {
	if snatLast < localFirst || localLast < snatFirst {
		return nil
	}
	fix := "narrow the host's range with sysctl -w net.ipv4.ip_local_port_range=\"FIRST LAST\" outside the SNAT range"
	switch {
	case localFirst < snatFirst:
		fix = fmt.Sprintf("narrow the host's range (sysctl -w net.ipv4.ip_local_port_range=\"%d %d\")", localFirst, snatFirst-1)
	case localLast > snatLast:
		fix = fmt.Sprintf("narrow the host's range (sysctl -w net.ipv4.ip_local_port_range=\"%d %d\")", snatLast+1, localLast)
	}
	return fmt.Errorf("SNAT ports %d-%d overlap the host's ephemeral ports %d-%d (net.ipv4.ip_local_port_range): "+
		"the SNAT range is steered to the appliance on every node address, so replies to the host's own connections would be lost; "+
		"%s or move the SNAT range outside %d-%d",
		snatFirst, snatLast, localFirst, localLast, fix, localFirst, localLast)
}
