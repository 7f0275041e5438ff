//go:build linux

package conntrack

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of s that mincore(2) reports in memory.
func resident(t *testing.T, s []uint64) (in, all int) {
	t.Helper()
	const page = 4096
	start := uintptr(unsafe.Pointer(&s[0]))
	lo := start &^ (page - 1)
	n := int((start + uintptr(len(s))*8 - lo + page - 1) / page)
	vec := make([]byte, n)
	// mincore wants a page-aligned start: from the page the slice starts in.
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, lo, start+uintptr(len(s))*8-lo, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Skipf("mincore: %v", e)
	}
	for _, v := range vec {
		if v&1 != 0 {
			in++
		}
	}
	return in, n
}

// TestPopulateFaultsInTheTable checks that populateNow makes a fresh, never-touched array
// resident, which is what keeps first-touch page faults off the packet path.
func TestPopulateFaultsInTheTable(t *testing.T) {
	s := make([]uint64, 8<<20/8) // 8 MiB, fresh from the OS: not yet touched
	if in, all := resident(t, s); in == all {
		t.Skipf("the runtime handed out an array that is already resident (%d pages)", all)
	}
	if err := populateNow(s); err != nil {
		t.Skipf("MADV_POPULATE_WRITE not supported here: %v", err)
	}
	if in, all := resident(t, s); in != all {
		t.Fatalf("%d of %d pages resident after populate", in, all)
	}
}
