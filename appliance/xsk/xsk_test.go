package xsk

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/steer"
	"github.com/xdpsvc/lb/bench/lab"
)

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"4096 frames", mod(func(c *Config) { c.FrameSizeBytes = 4096 }), true},
		{"odd frame size", mod(func(c *Config) { c.FrameSizeBytes = 3000 }), false},
		{"ring not power of two", mod(func(c *Config) { c.RxRingSize = 1000 }), false},
		{"too few frames", mod(func(c *Config) { c.NumFrames = 8192 }), false},
		{"completion smaller than tx", mod(func(c *Config) { c.CompletionRingSize = 2048 }), false},
		{"no kicks", mod(func(c *Config) { c.MaxKicksPerFlush = 0 }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.cfg.validate(); (err == nil) != c.ok {
				t.Fatalf("validate: %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestOffsetIn(t *testing.T) {
	umem := make([]byte, 8192)
	other := make([]byte, 64)
	cases := []struct {
		name string
		data []byte
		want uint64
		ok   bool
	}{
		{"start", umem[0:60], 0, true},
		{"inside", umem[2048+256 : 2048+300], 2048 + 256, true},
		{"to the end", umem[8000:], 8000, true},
		{"empty", umem[10:10], 0, false},
		{"other buffer", other, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := offsetIn(umem, c.data)
			if got != c.want || ok != c.ok {
				t.Fatalf("offsetIn = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// pairLab is a namespace pair with the steering program on A's veth and a socket on its one queue.
type pairLab struct {
	*lab.Pair
	prog *steer.Program
	sock *Socket
}

const frontPort = 9999

func newLab(t *testing.T) *pairLab {
	p := lab.NewPair(t)
	l := &pairLab{Pair: p}
	ifindex := lab.Ifindex(t, p.A, p.IfA)
	var err error
	if l.prog, err = steer.Load(steer.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.prog.Close() })
	cfg := DefaultConfig()
	cfg.FillRingSize, cfg.RxRingSize, cfg.TxRingSize, cfg.CompletionRingSize = 2048, 2048, 1024, 1024
	cfg.NumFrames = 4096
	err = lab.DoIn(p.A, func() error {
		if _, err := l.prog.Attach(ifindex, steer.ModeGeneric); err != nil {
			return err
		}
		socks, err := OpenInterface(p.IfA, ifindex, l.prog, cfg)
		if err != nil {
			return err
		}
		if len(socks) != 1 {
			t.Errorf("%d sockets on a single-queue veth", len(socks))
		}
		l.sock = socks[0]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.sock.Close() })
	if err := l.prog.SetFrontends([]steer.Frontend{{Addr: lab.PairAddrA, Port: frontPort, Proto: steer.ProtoUDP}}); err != nil {
		t.Fatal(err)
	}
	if err := l.prog.SetVIPs([]netip.Addr{netip.MustParseAddr("198.18.0.100")}); err != nil {
		t.Fatal(err)
	}
	return l
}

// swap turns a received UDP/IPv4 frame into its reply in place: MACs, addresses and ports
// swapped (the checksums stay valid).
func swap(b []byte) bool {
	if len(b) < 42 || binary.BigEndian.Uint16(b[12:]) != 0x0800 || b[23] != 17 || b[14] != 0x45 {
		return false
	}
	var m [6]byte
	copy(m[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], m[:])
	var a [4]byte
	copy(a[:], b[26:30])
	copy(b[26:30], b[30:34])
	copy(b[30:34], a[:])
	var p [2]byte
	copy(p[:], b[34:36])
	copy(b[34:36], b[36:38])
	copy(b[36:38], p[:])
	return true
}

// udpInB opens a UDP socket in namespace B.
func udpInB(t *testing.T, l *pairLab) *net.UDPConn {
	var c *net.UDPConn
	err := lab.DoIn(l.B, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: lab.PairAddrB.AsSlice()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSteerAndEcho(t *testing.T) {
	l := newLab(t)
	// A kernel service on A, on a port that is not a frontend.
	var ln net.Listener
	if err := lab.DoIn(l.A, func() error {
		var err error
		ln, err = net.Listen("tcp4", lab.PairAddrA.String()+":2222")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("kernel"))
			c.Close()
		}
	}()

	arps := startEchoWorker(t, l)

	t.Run("kernel still gets TCP to a non-frontend port", func(t *testing.T) {
		err := lab.DoIn(l.B, func() error {
			c, err := net.DialTimeout("tcp4", lab.PairAddrA.String()+":2222", 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			if string(buf[:n]) != "kernel" {
				t.Errorf("read %q, %v", buf[:n], err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("UDP to frontend reaches the socket and its echo the peer", func(t *testing.T) {
		c := udpInB(t, l)
		dst := &net.UDPAddr{IP: lab.PairAddrA.AsSlice(), Port: frontPort}
		msg := []byte("steered-through-af-xdp")
		buf := make([]byte, 256)
		for try := 0; try < 20; try++ {
			if _, err := c.WriteToUDP(msg, dst); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			n, from, err := c.ReadFromUDP(buf)
			if err == nil {
				if !bytes.Equal(buf[:n], msg) || from.Port != frontPort {
					t.Fatalf("echo %q from %v", buf[:n], from)
				}
				return
			}
		}
		t.Fatal("no echo from the AF_XDP socket")
	})

	t.Run("ARP for a held VIP reaches the socket", func(t *testing.T) {
		// B asks for the VIP: its kernel ARPs when sending to it on-link.
		lab.MustRun(t, "ip", "-n", l.NSB, "route", "add", "198.18.0.100/32", "dev", l.IfB)
		c := udpInB(t, l)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.IP{198, 18, 0, 100}, Port: 1})
			select {
			case f := <-arps:
				if binary.BigEndian.Uint16(f[20:22]) == 1 && bytes.Equal(f[38:42], []byte{198, 18, 0, 100}) {
					return
				}
			case <-time.After(300 * time.Millisecond):
			}
		}
		t.Fatal("ARP request for the held VIP never reached the socket")
	})

	cnt, err := l.prog.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt[steer.PassARP] == 0 || cnt[steer.PassNoFrontend] == 0 || cnt[steer.RedirectFrontend] == 0 || cnt[steer.RedirectARP] == 0 {
		t.Errorf("steering counters %v: want ARP for the node and TCP passed, UDP and VIP ARP redirected", cnt)
	}
}

func TestNoFrameLeak(t *testing.T) {
	const total = 6000
	l := newLab(t)
	c := udpInB(t, l)
	dst := &net.UDPAddr{IP: lab.PairAddrA.AsSlice(), Port: frontPort}
	// Resolve A's MAC first so no datagram waits on ARP.
	lab.MustRun(t, "ip", "netns", "exec", l.NSB, "ip", "neigh", "replace", lab.PairAddrA.String(), "lladdr",
		macOf(t, l), "dev", l.IfB)

	go func() {
		msg := make([]byte, 64)
		for i := 0; i < total; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			c.WriteToUDP(msg, dst)
			if i%256 == 255 {
				time.Sleep(time.Millisecond) // stay below the RX ring so nothing is lost to bursts
			}
		}
	}()
	batch := make([]Frame, 64)
	copies := make([][]byte, 0, 64)
	var got, sent, released, copied int
	deadline := time.Now().Add(20 * time.Second)
	poll := NewPoller(l.sock)
	for got < total && time.Now().Before(deadline) {
		poll.Wait(20 * time.Millisecond)
		n := l.sock.Receive(batch)
		got += n
		// A third transmitted in place, a third copied (then released), a third released.
		var tx []Frame
		copies = copies[:0]
		rel := batch[:0:0]
		for i := 0; i < n; i++ {
			switch i % 3 {
			case 0:
				swap(batch[i].Data)
				tx = append(tx, batch[i])
			case 1:
				copies = append(copies, batch[i].Data)
				rel = append(rel, batch[i])
			default:
				rel = append(rel, batch[i])
			}
		}
		sent += l.sock.Transmit(tx)
		copied += l.sock.TransmitCopies(copies)
		l.sock.Release(rel)
		released += len(rel)
		if err := l.sock.CheckAccounting(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200 && l.sock.Accounting().TX > 0; i++ {
		l.sock.Flush()
		time.Sleep(5 * time.Millisecond)
	}
	a := l.sock.Accounting()
	st, err := l.sock.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("received %d, transmitted %d, copied %d, released %d; accounting %+v; stats %+v", got, sent, copied, released, a, st)
	if got < total*9/10 {
		t.Errorf("received %d of %d", got, total)
	}
	if err := l.sock.CheckAccounting(); err != nil {
		t.Fatal(err)
	}
	if a.Held != 0 || a.TX != 0 || a.Free+a.Fill != a.Frames {
		t.Fatalf("frames leaked: %+v", a)
	}
	if st.BadFrames != 0 {
		t.Fatalf("%d bad frames", st.BadFrames)
	}
}

func macOf(t *testing.T, l *pairLab) string {
	var mac string
	if err := lab.DoIn(l.A, func() error {
		ifi, err := net.InterfaceByName(l.IfA)
		if err == nil {
			mac = ifi.HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func TestHotPathAllocs(t *testing.T) {
	l := newLab(t)
	c := udpInB(t, l)
	dst := &net.UDPAddr{IP: lab.PairAddrA.AsSlice(), Port: frontPort}
	for i := 0; i < 500; i++ {
		c.WriteToUDP([]byte("payload-payload"), dst)
	}
	batch := make([]Frame, 64)
	data := make([][]byte, 1)
	allocs := testing.AllocsPerRun(200, func() {
		n := l.sock.Receive(batch)
		if n > 1 {
			data[0] = batch[1].Data
			l.sock.TransmitCopies(data)
			l.sock.Release(batch[1:2])
			l.sock.Transmit(batch[:1])
			l.sock.Release(batch[2:n])
		} else {
			l.sock.Release(batch[:n])
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
	if l.sock.rxFrames.Load() == 0 {
		t.Fatal("no frames received: the allocation check did not exercise the receive path")
	}
}

// startEchoWorker runs a worker on l's socket until the test ends: it echoes UDP frames back to
// their sender and hands ARP frames to the channel it returns (dropping them when it is full).
func startEchoWorker(t *testing.T, l *pairLab) <-chan []byte {
	stop := make(chan struct{})
	arps := make(chan []byte, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := make([]Frame, 64)
		poll := NewPoller(l.sock)
		for {
			select {
			case <-stop:
				return
			default:
			}
			poll.Wait(10 * time.Millisecond)
			n := l.sock.Receive(batch)
			out := batch[:0]
			for _, f := range batch[:n] {
				if swap(f.Data) {
					out = append(out, f)
					continue
				}
				if binary.BigEndian.Uint16(f.Data[12:]) == 0x0806 {
					select {
					case arps <- append([]byte(nil), f.Data...):
					default:
					}
				}
				l.sock.Release([]Frame{f})
			}
			l.sock.Transmit(out)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return arps
}
