package steer

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/xdpsvc/lb/appliance/xsk/nslab"
)

// attachedID returns the XDP program ID on the link inside the pair's namespace A (0: none).
func attachedID(t *testing.T, lab *nslab.Pair) uint32 {
	t.Helper()
	var id uint32
	if err := nslab.Do(lab.A, func() error {
		l, err := netlink.LinkByName(lab.IfA)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAttachReplacesLeftover(t *testing.T) {
	cases := []struct {
		name      string
		leftover  Mode
		next      Mode
		wantFinal Mode
	}{
		{"generic leftover, generic attach", ModeGeneric, ModeGeneric, ModeGeneric},
		{"native leftover, auto attach", ModeNative, ModeAuto, ModeNative},
		{"native leftover, generic attach", ModeNative, ModeGeneric, ModeGeneric},
		{"generic leftover, native attach", ModeGeneric, ModeNative, ModeNative},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lab := nslab.NewPair(t)
			ifindex := nslab.Ifindex(t, lab.A, lab.IfA)

			crashed, err := Load(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if err := nslab.Do(lab.A, func() error { _, err := crashed.Attach(ifindex, c.leftover); return err }); err != nil {
				t.Fatalf("attach leftover: %v", err)
			}
			// The "crash": forget the attachment, close the objects, never detach.
			crashed.attached = map[int]attachment{}
			crashed.Close()
			if attachedID(t, lab) != crashed.ID() {
				t.Fatalf("leftover program not attached")
			}

			p, err := Load(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			var got Mode
			if err := nslab.Do(lab.A, func() error { got, err = p.Attach(ifindex, c.next); return err }); err != nil {
				t.Fatalf("attach over leftover: %v", err)
			}
			if got != c.wantFinal {
				t.Errorf("mode %s, want %s", got, c.wantFinal)
			}
			if id := attachedID(t, lab); id != p.ID() {
				t.Fatalf("attached program %d, want ours %d", id, p.ID())
			}
			// Close from this (host-namespace) goroutine must enter the namespace and detach.
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if id := attachedID(t, lab); id != 0 {
				t.Fatalf("program %d still attached after Close", id)
			}
		})
	}
}
