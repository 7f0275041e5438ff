//go:build linux

package conntrack

import (
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
