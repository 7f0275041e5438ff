package compare

import (
	"net"
	"testing"
)

// TestPickMACSpreads checks that the ceiling forwarder fans frames out over every backend MAC by
// source address and port, keeps one flow on one MAC, and falls back to the first MAC for one
// MAC or a short frame.
func TestPickMACSpreads(t *testing.T) {
	var macs []net.HardwareAddr
	for i := range 9 {
		macs = append(macs, net.HardwareAddr{2, 0, 0, 0, 1, byte(i)})
	}
	frame := func(ip byte, port uint16) []byte {
		f := make([]byte, 64)
		f[26], f[27], f[28], f[29] = 198, 18, 0, ip
		f[34], f[35] = byte(port>>8), byte(port)
		return f
	}
	seen := map[string]int{}
	for ip := range 128 {
		for port := range 50 {
			f := frame(byte(128+ip), uint16(10000+port))
			m := pickMAC(macs, f)
			if again := pickMAC(macs, f); again.String() != m.String() {
				t.Fatal("one flow, two MACs")
			}
			seen[m.String()]++
		}
	}
	if len(seen) != len(macs) {
		t.Fatalf("6400 flows reached %d of %d MACs", len(seen), len(macs))
	}
	for m, n := range seen {
		if n < 6400/9/2 {
			t.Fatalf("MAC %s got %d of 6400 flows", m, n)
		}
	}
	if m := pickMAC(macs[:1], frame(1, 1)); m.String() != macs[0].String() {
		t.Fatal("one MAC: not the first")
	}
	if m := pickMAC(macs, make([]byte, 20)); m.String() != macs[0].String() {
		t.Fatal("short frame: not the first MAC")
	}
}
