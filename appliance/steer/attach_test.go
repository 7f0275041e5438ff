package steer

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/xdpsvc/lb/bench/lab"
)

// attachedID returns the XDP program ID on the link inside the pair's namespace A (0: none).
func attachedID(t *testing.T, pair *lab.Pair) uint32 {
	t.Helper()
	var id uint32
	if err := lab.DoIn(pair.A, func() error {
		l, err := netlink.LinkByName(pair.IfA)
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
			pair := lab.NewPair(t)
			ifindex := lab.Ifindex(t, pair.A, pair.IfA)

			crashed, err := Load(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if err := lab.DoIn(pair.A, func() error { _, err := crashed.Attach(ifindex, c.leftover); return err }); err != nil {
				t.Fatalf("attach leftover: %v", err)
			}
			// The "crash": forget the attachment, close the objects, never detach.
			crashed.attached = map[int]attachment{}
			crashed.Close()
			if attachedID(t, pair) != crashed.ID() {
				t.Fatalf("leftover program not attached")
			}

			p, err := Load(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			var got Mode
			if err := lab.DoIn(pair.A, func() error { got, err = p.Attach(ifindex, c.next); return err }); err != nil {
				t.Fatalf("attach over leftover: %v", err)
			}
			if got != c.wantFinal {
				t.Errorf("mode %s, want %s", got, c.wantFinal)
			}
			if id := attachedID(t, pair); id != p.ID() {
				t.Fatalf("attached program %d, want ours %d", id, p.ID())
			}
			// Close from this (host-namespace) goroutine must enter the namespace and detach.
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if id := attachedID(t, pair); id != 0 {
				t.Fatalf("program %d still attached after Close", id)
			}
		})
	}
}
