//go:build linux

package conntrack

import (
	"runtime"
	"syscall"
	"unsafe"
)

// adviseHugePages asks the kernel to back a large table array with transparent huge pages
// (THP is often in "madvise" mode). Random lookups in a table of millions of flows otherwise
// miss the TLB on nearly every access, which in a VM costs a two-dimensional page walk. It must
// run before the pages are first touched; failure is harmless and ignored.
func adviseHugePages[T any](s []T) {
	if len(s) == 0 {
		return
	}
	const huge = 2 << 20
	size := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if size < 2*huge {
		return
	}
	start := uintptr(unsafe.Pointer(&s[0]))
	lo := (start + huge - 1) &^ (huge - 1)
	hi := (start + size) &^ (huge - 1)
	if hi <= lo {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), size)[lo-start : hi-start]
	_ = syscall.Madvise(b, 14) // MADV_HUGEPAGE
}

// populate faults in the whole array (MADV_POPULATE_WRITE, Linux 5.14+), huge pages where
// adviseHugePages asked for them, so that the packet path does not take first-touch page faults:
// with THP's synchronous defragmentation such a fault can stall a worker for milliseconds, and a
// flood of new flows touches fresh pages of the table at random. Arrays under 4 MiB are left to
// fault in on use. It runs in the background (about 180 ms for a table of 1M IPv4 flows on the
// lab VM), so that start-up, and with it a restarted node's return, does not wait for it; a
// worker that touches a page first simply takes that fault itself. Failure (an older kernel) is
// ignored: the pages then fault in on first use, as before.
func populate[T any](s []T) {
	if len(s) == 0 {
		return
	}
	size := uintptr(len(s)) * unsafe.Sizeof(s[0])
	if size < 4<<20 {
		return
	}
	go func() { _ = populateNow(s) }()
}

// populateNow is populate's system call, done in the caller's goroutine.
func populateNow[T any](s []T) error {
	const page = 4096
	start := uintptr(unsafe.Pointer(&s[0]))
	size := uintptr(len(s)) * unsafe.Sizeof(s[0])
	lo := start &^ (page - 1)                                                  // madvise wants a page-aligned start
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, start+size-lo, 23) // MADV_POPULATE_WRITE
	runtime.KeepAlive(s)
	if errno != 0 {
		return errno
	}
	return nil
}
