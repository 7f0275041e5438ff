package capture

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// StreamOptions bound a Stream.
type StreamOptions struct {
	// MaxFrames stops the stream after this many records (before and after count separately);
	// 0: no limit.
	MaxFrames uint64
	// Duration stops the stream after this long; 0: until the context ends.
	Duration time.Duration
	// DrainInterval is how long the reader sleeps when every ring is empty; 0: 2 ms.
	DrainInterval time.Duration
	// Flush, when set, is called after each drain pass that wrote something (an HTTP flusher).
	Flush func()
}

// InterfaceIndex is the pcapng interface of a port and direction: 2*port + dir.
func InterfaceIndex(port uint16, dir Direction) int { return 2*int(port) + int(dir) }

// Stream drains s into w as pcapng until opts' bounds or ctx end, and returns what it wrote.
// The caller arms s before and disarms it after. An error is returned only for a failing
// writer.
func Stream(ctx context.Context, s *Session, w io.Writer, opts StreamOptions) (Stats, error) {
	if opts.DrainInterval <= 0 {
		opts.DrainInterval = 2 * time.Millisecond
	}
	var st Stats
	nw, err := newPcapng(w, s)
	if err != nil {
		return st, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	if err := nw.Flush(); err != nil {
		return st, fmt.Errorf("capture: write pcapng header: %w", err)
	}
	if opts.Flush != nil {
		opts.Flush()
	}
	var deadline <-chan time.Time
	if opts.Duration > 0 {
		t := time.NewTimer(opts.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(opts.DrainInterval)
	defer tick.Stop()
	var werr error
	write := func(m Record, b []byte) {
		if werr != nil || (opts.MaxFrames > 0 && st.Written >= opts.MaxFrames) {
			return
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, m.TimeUnixNano), CaptureLength: len(b),
			Length: int(m.Length), InterfaceIndex: InterfaceIndex(m.Port, m.Dir)}
		if m.Length < uint32(len(b)) {
			ci.Length = len(b)
		}
		if ci.InterfaceIndex >= 2*len(s.ports) {
			return // a port the session does not know: never written, never fails the stream
		}
		if werr = nw.WritePacket(ci, b); werr == nil {
			st.Written++
		}
	}
	finish := func(err error) (Stats, error) {
		c := s.counters()
		st.Matched, st.Dropped = c.Matched, c.Dropped
		if ferr := nw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("capture: flush pcapng: %w", ferr)
		}
		return st, err
	}
	for {
		wrote := false
		for _, r := range s.rings {
			// Bounded per ring per pass, so one busy worker cannot starve the others' rings.
			for k := 0; k < len(r.meta) && r.Pop(write); k++ {
				wrote = true
			}
		}
		if werr != nil {
			return finish(fmt.Errorf("capture: write pcapng: %w", werr))
		}
		if wrote {
			if err := nw.Flush(); err != nil {
				return finish(fmt.Errorf("capture: flush pcapng: %w", err))
			}
			if opts.Flush != nil {
				opts.Flush()
			}
		}
		if opts.MaxFrames > 0 && st.Written >= opts.MaxFrames {
			return finish(nil)
		}
		if wrote {
			runtime.Gosched()
			continue
		}
		select {
		case <-ctx.Done():
			return finish(nil)
		case <-deadline:
			// One last pass picks up what arrived just before the deadline.
			for _, r := range s.rings {
				for k := 0; k < len(r.meta) && r.Pop(write); k++ {
				}
			}
			return finish(werr)
		case <-tick.C:
		}
	}
}

func newPcapng(w io.Writer, s *Session) (*pcapgo.NgWriter, error) {
	iface := func(port int, dir Direction) pcapgo.NgInterface {
		what := "as received, before translation"
		if dir == DirTX {
			what = "as sent, after translation"
		}
		return pcapgo.NgInterface{
			Name:                fmt.Sprintf("%s:%s", s.ports[port], dir),
			Description:         fmt.Sprintf("frames on %s %s (AF_XDP data plane)", s.ports[port], what),
			Filter:              s.cfg.Filter.String(),
			OS:                  runtime.GOOS,
			LinkType:            layers.LinkTypeEthernet,
			SnapLength:          uint32(s.cfg.SnapLenBytes),
			TimestampResolution: 9,
		}
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "appliance capture"}}
	nw, err := pcapgo.NewNgWriterInterface(w, iface(0, DirRX), opts)
	if err != nil {
		return nil, err
	}
	for p := range s.ports {
		for _, d := range []Direction{DirRX, DirTX} {
			if p == 0 && d == DirRX {
				continue
			}
			if _, err := nw.AddInterface(iface(p, d)); err != nil {
				return nil, err
			}
		}
	}
	return nw, nil
}
