package compare

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/xdpsvc/lb/bench/tstest"
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

// TestXDPRedirectProgram runs the in-kernel redirect program on frames with BPF_PROG_TEST_RUN
// (root): an IPv4 frame gets the backend MAC its source port picks and the egress MAC, and is
// redirected; ARP and runt frames pass to the kernel untouched.
func TestXDPRedirectProgram(t *testing.T) {
	tstest.RequireRoot(t)
	macs := []net.HardwareAddr{{2, 0, 0, 0, 1, 0}, {2, 0, 0, 0, 1, 1}, {2, 0, 0, 0, 1, 2}}
	src := net.HardwareAddr{2, 0, 0, 0, 9, 9}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: xdpMACEntry, MaxEntries: uint32(len(macs))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i, mac := range macs {
		var v [xdpMACEntry]byte
		copy(v[0:6], mac)
		copy(v[8:14], src)
		if err := m.Put(uint32(i), v); err != nil {
			t.Fatal(err)
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: xdpRedirectInstructions(m, len(macs), 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	ipv4 := func(srcPort byte) []byte {
		f := make([]byte, 64)
		f[12], f[13] = 0x08, 0x00
		f[34], f[35] = 0x9c, srcPort
		return f
	}
	tests := []struct {
		name    string
		frame   []byte
		ret     uint32
		wantDst net.HardwareAddr
	}{
		{"IPv4, port low byte 4 picks MAC 1", ipv4(4), 4, macs[1]},
		{"IPv4, port low byte 6 picks MAC 0", ipv4(6), 4, macs[0]},
		{"ARP passes", func() []byte { f := ipv4(4); f[12], f[13] = 0x08, 0x06; return f }(), 2, nil},
		{"runt passes", make([]byte, 30), 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, len(tc.frame)+256)
			ret, err := prog.Run(&ebpf.RunOptions{Data: tc.frame, DataOut: out})
			if err != nil {
				t.Fatal(err)
			}
			if ret != tc.ret {
				t.Fatalf("return %d, want %d", ret, tc.ret)
			}
			if tc.wantDst != nil {
				if got := net.HardwareAddr(out[0:6]); got.String() != tc.wantDst.String() {
					t.Fatalf("dst MAC %s, want %s", got, tc.wantDst)
				}
				if got := net.HardwareAddr(out[6:12]); got.String() != src.String() {
					t.Fatalf("src MAC %s, want %s", got, src)
				}
			}
		})
	}
}
