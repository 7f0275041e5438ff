package sink_test

import (
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/sink"
)

// TestAttachDetach attaches the sink to a lab interface, sees the program there, and sees it gone after
// Close (also after a second Close).
func TestAttachDetach(t *testing.T) {
	l := lab.New(t, lab.Spec{Nodes: 1, Clients: 1})
	n := l.Nodes[0]
	ifc := n.External().Name
	xdpAttached := func() (bool, error) {
		var attached bool
		err := n.Do(func() error {
			link, err := netlink.LinkByName(ifc)
			if err != nil {
				return err
			}
			attached = link.Attrs().Xdp != nil && (link.Attrs().Xdp.Attached || link.Attrs().Xdp.ProgId != 0)
			return nil
		})
		return attached, err
	}
	var s *sink.Sink
	err := n.Do(func() error {
		link, err := netlink.LinkByName(ifc)
		if err != nil {
			return err
		}
		s, err = sink.Attach(link.Attrs().Index, sink.Filter{Proto: sink.ProtoUDP, DstPort: 9})
		return err
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if on, err := xdpAttached(); err != nil || !on {
		t.Fatalf("after Attach: XDP attached %v (%v), want true", on, err)
	}
	if p, b := s.Counts(); p != 0 || b != 0 {
		t.Errorf("fresh sink counts %d/%d", p, b)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if on, err := xdpAttached(); err != nil || on {
		t.Fatalf("after Close: XDP attached %v (%v), want false", on, err)
	}
	if _, err := s.Stats(); err == nil {
		t.Error("Stats after Close succeeded")
	}
}

func TestAttachRejects(t *testing.T) {
	tests := []struct {
		name    string
		ifindex int
		filter  sink.Filter
	}{
		{"no interface", 0, sink.Filter{}},
		{"port without TCP or UDP", 1, sink.Filter{Proto: 1, DstPort: 80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := sink.Attach(tc.ifindex, tc.filter); err == nil {
				s.Close()
				t.Fatal("Attach succeeded")
			}
		})
	}
}
