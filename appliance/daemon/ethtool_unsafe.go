package daemon

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct{ cmd, data uint32 }

// ifreqData is an ifreq for SIOCETHTOOL: the name and a pointer to the request.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// ethtoolGRO reads whether generic receive offload is on (ETHTOOL_GGRO) through socket fd.
func ethtoolGRO(fd int, ifname string) (bool, syscall.Errno) {
	v := ethtoolValue{cmd: unix.ETHTOOL_GGRO}
	var req ifreqData
	copy(req.name[:], ifname)
	req.data = uintptr(unsafe.Pointer(&v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	return v.data != 0, errno
}
