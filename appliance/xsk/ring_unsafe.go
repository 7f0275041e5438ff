package xsk

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one mapping of a kernel AF_XDP ring: producer, consumer and flags words and the
// descriptor array. The socket maps each ring a second time (asavie keeps its own mappings
// unexported), which the kernel allows: both mappings are the same pages.
type ring struct {
	prod  *uint32
	cons  *uint32
	flags *uint32
	mask  uint32
	size  uint32
	mem   []byte
}

func (r *ring) loadProd() uint32   { return atomic.LoadUint32(r.prod) }
func (r *ring) loadCons() uint32   { return atomic.LoadUint32(r.cons) }
func (r *ring) storeProd(v uint32) { atomic.StoreUint32(r.prod, v) }
func (r *ring) storeCons(v uint32) { atomic.StoreUint32(r.cons, v) }
func (r *ring) needWakeup() bool   { return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }

// mmapRing maps the ring at pgoff with n entries of entrySize bytes.
func mmapRing(fd int, pgoff int64, off unix.XDPRingOffset, n, entrySize int) (ring, error) {
	size := int(off.Desc) + n*entrySize
	mem, err := syscall.Mmap(fd, pgoff, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return ring{}, fmt.Errorf("mmap ring at %#x: %w", pgoff, err)
	}
	base := unsafe.Pointer(&mem[0])
	return ring{
		prod:  (*uint32)(unsafe.Add(base, off.Producer)),
		cons:  (*uint32)(unsafe.Add(base, off.Consumer)),
		flags: (*uint32)(unsafe.Add(base, off.Flags)),
		mask:  uint32(n - 1),
		size:  uint32(n),
		mem:   mem,
	}, nil
}

func (r *ring) addrs(off unix.XDPRingOffset) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(&r.mem[off.Desc])), r.size)
}

func (r *ring) descs(off unix.XDPRingOffset) []unix.XDPDesc {
	return unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&r.mem[off.Desc])), r.size)
}

func (r *ring) unmap() {
	if r.mem != nil {
		_ = syscall.Munmap(r.mem)
		r.mem = nil
	}
}

// mmapOffsets asks the kernel where each ring's words live.
func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return off, fmt.Errorf("getsockopt XDP_MMAP_OFFSETS: %w", errno)
	}
	return off, nil
}

// kernelStats reads XDP_STATISTICS.
func kernelStats(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return st, fmt.Errorf("getsockopt XDP_STATISTICS: %w", errno)
	}
	return st, nil
}

// offsetIn returns where data starts inside umem, or false if it does not lie inside umem.
func offsetIn(umem, data []byte) (uint64, bool) {
	if len(data) == 0 || len(umem) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(umem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	if p < base || p-base+uintptr(len(data)) > uintptr(len(umem)) {
		return 0, false
	}
	return uint64(p - base), true
}

// sendto kicks the TX ring (MSG_DONTWAIT, no data), without allocating.
func sendto(fd int) syscall.Errno {
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// recvfrom wakes the driver to refill RX from the fill ring (need-wakeup mode).
func recvfrom(fd int) syscall.Errno {
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd, maxRx, maxTx, maxOther, maxCombined, rx, tx, other, combined uint32
}

// ifreq for SIOCETHTOOL: name and a pointer to the request.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// ethtoolGetChannels runs ETHTOOL_GCHANNELS on ifname through the socket fd.
func ethtoolGetChannels(fd int, ifname string) (ethtoolChannels, syscall.Errno) {
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	var req ifreqData
	copy(req.name[:], ifname)
	req.data = uintptr(unsafe.Pointer(&ch))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	return ch, errno
}
