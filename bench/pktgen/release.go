package pktgen

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// closeSocket closes an asavie socket for good. asavie/xdp v0.3.3 never unmaps the socket's four ring
// mappings, and each mapping holds a reference to the socket file: the socket then stays bound to its queue
// until the process exits, and the next bind on that queue fails with EBUSY. So before asavie's Close the
// mappings of this socket (/proc/self/maps lines "socket:[inode]") are unmapped here. Nothing may touch the
// rings afterwards; asavie's Close only resets its slice headers.
func closeSocket(xsk *xdp.Socket) error {
	var errs []string
	if err := unmapSocketRings(xsk.FD()); err != nil {
		errs = append(errs, err.Error())
	}
	if err := xsk.Close(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("close AF_XDP socket: %s", strings.Join(errs, "; "))
	}
	return nil
}

// unmapSocketRings unmaps every mapping of the socket fd in this process.
func unmapSocketRings(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat socket: %w", err)
	}
	ranges, err := socketMappings(st.Ino)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, r[0], r[1]-r[0], 0); errno != 0 {
			return fmt.Errorf("unmap ring %#x-%#x: %w", r[0], r[1], errno)
		}
	}
	return nil
}

// socketMappings lists [start, end) of the mappings of socket inode ino in /proc/self/maps.
func socketMappings(ino uint64) ([][2]uintptr, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("read own mappings: %w", err)
	}
	defer f.Close()
	return parseSocketMappings(bufio.NewScanner(f), ino)
}

func parseSocketMappings(sc *bufio.Scanner, ino uint64) ([][2]uintptr, error) {
	suffix := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	var out [][2]uintptr
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, suffix) {
			continue
		}
		addrs, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(addrs, "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("read own mappings: bad line %q", line)
		}
		out = append(out, [2]uintptr{uintptr(start), uintptr(end)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read own mappings: %w", err)
	}
	return out, nil
}
