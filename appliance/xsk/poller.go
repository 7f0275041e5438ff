package xsk

import (
	"time"

	"golang.org/x/sys/unix"
)

// Poller waits until any of a worker's sockets has received frames. It belongs to the worker.
type Poller struct {
	socks []*Socket
	fds   []unix.PollFd
}

// NewPoller makes a poller over the sockets one worker owns (one per port of a queue index).
func NewPoller(socks ...*Socket) *Poller {
	p := &Poller{socks: socks, fds: make([]unix.PollFd, len(socks))}
	for i, s := range socks {
		p.fds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	}
	return p
}

// Wait returns at once if a socket has frames waiting, else blocks up to timeout in poll(2).
// Sockets with frames still in their TX ring are kicked first (copy mode sends only when asked).
func (p *Poller) Wait(timeout time.Duration) {
	for _, s := range p.socks {
		s.Flush()
		if s.rx.loadProd() != s.rx.loadCons() {
			return
		}
	}
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
	for i := range p.fds {
		p.fds[i].Revents = 0
	}
	_, _ = unix.Poll(p.fds, ms) // EINTR or an error: the worker's loop comes back here
}
