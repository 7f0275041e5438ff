package dataplane

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/bench/tstest"
	"github.com/xdpsvc/lb/packet"
)

type capturedFrame struct {
	iface        string
	src, dst     string
	sport, dport uint16
}

func readCapture(t *testing.T, b []byte) []capturedFrame {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("capture is not pcapng: %v", err)
	}
	var out []capturedFrame
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("pcapng packet %d: %v", len(out), err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, ok2 := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || !ok2 {
			t.Fatalf("captured packet %d is not TCP/IPv4: %v", len(out), p)
		}
		out = append(out, capturedFrame{intf.Name, ip.SrcIP.String(), ip.DstIP.String(), uint16(tcp.SrcPort), uint16(tcp.DstPort)})
	}
}

// TestCaptureThroughAdminAPI captures a VIP's flow through the admin endpoint while the worker
// forwards golden frames, and reads the pcapng back: the SYN before and after DNAT+SNAT, the
// SYN-ACK before and after un-NAT, and nothing of another Service.
func TestCaptureThroughAdminAPI(t *testing.T) {
	r := newRig(t, testManifests)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/capture", capture.Handler(capture.HandlerConfig{Target: r.dp}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	type result struct {
		body    []byte
		trailer http.Header
		err     error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/capture?vip=198.19.1.1&count=4&duration=15s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			done <- result{err: &httpError{resp.Status, string(b)}}
			return
		}
		done <- result{body: b, trailer: resp.Trailer, err: err}
	}()
	tstest.EventuallyTrue(t, 5*time.Second, "the capture to be armed", func() bool { return r.dp.capture.Load() != nil })
	// A second capture is refused while one runs.
	if resp, err := http.Get(srv.URL + "/api/v1/capture?count=1"); err != nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("second capture: %v %v, want 409", resp.Status, err)
	}

	// Another Service's traffic is forwarded but not captured.
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.200", "198.19.1.3", packet.ProtoTCP, 40001, 80, "S", nil))
	r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, 40000, 80, "S", nil))
	r.run(t)
	out := r.int.take()
	if len(out) != 2 {
		t.Fatalf("%d SYNs forwarded, want 2", len(out))
	}
	d := decode(t, out[1])
	r.int.push(frame(t, backendMAC[d.dst], intMAC, d.dst, "198.18.1.11", packet.ProtoTCP, 8080, d.sport, "SA", nil))
	r.run(t)
	if n := len(r.ext.take()); n != 1 {
		t.Fatalf("%d SYN-ACKs forwarded, want 1", n)
	}

	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	got := readCapture(t, res.body)
	want := []capturedFrame{
		{"ext0:rx", "198.18.0.100", "198.19.1.1", 40000, 80},
		{"int0:tx", "198.18.1.11", d.dst, d.sport, 8080},
		{"int0:rx", d.dst, "198.18.1.11", 8080, d.sport},
		{"ext0:tx", "198.19.1.1", "198.18.0.100", 80, 40000},
	}
	if len(got) != len(want) {
		t.Fatalf("captured %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if res.trailer.Get(capture.TrailerWritten) != "4" || res.trailer.Get(capture.TrailerDropped) != "0" {
		t.Errorf("trailers %v, want 4 written, 0 dropped", res.trailer)
	}
	tstest.EventuallyTrue(t, 5*time.Second, "the capture to be disarmed", func() bool { return r.dp.capture.Load() == nil })

	// tcpdump reads the file too.
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed (scripts/deps.sh installs it): skipping the tcpdump -r check")
	}
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	if err := os.WriteFile(path, res.body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tcpdump, "-n", "-r", path)
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, text)
	}
	lines := 0
	for _, l := range strings.Split(string(text), "\n") {
		if strings.Contains(l, " IP ") {
			lines++
		}
	}
	if lines != 4 || !strings.Contains(string(text), "198.18.0.100.40000 > 198.19.1.1.80") ||
		!strings.Contains(string(text), "198.19.1.1.80 > 198.18.0.100.40000") {
		t.Fatalf("tcpdump -r read:\n%s", text)
	}
}

type httpError struct{ status, body string }

func (e *httpError) Error() string { return e.status + ": " + e.body }

// TestPollAllocatesNothingWithCapture proves the batched fast path allocation-free with no
// capture armed, with one armed that matches every frame, and with one whose ring is full.
func TestPollAllocatesNothingWithCapture(t *testing.T) {
	r := newRig(t, testManifests)
	var frames [][]byte
	for i := range BatchSize {
		r.ext.push(frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "S", nil))
		frames = append(frames, frame(t, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "A", make([]byte, 6)))
	}
	r.run(t)
	r.int.take()
	w, err := r.dp.AddWorker(1, []FrameIO{newReplayIO(frames), newReplayIO(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { w.Poll(r.now) }); a != 0 {
		t.Fatalf("Poll without capture allocates %v times per batch", a)
	}
	s, err := r.dp.StartCapture(capture.Config{RingSlots: 4 * BatchSize})
	if err != nil {
		t.Fatal(err)
	}
	ring := s.Ring(w.capIdx)
	drain := func(capture.Record, []byte) {}
	if a := testing.AllocsPerRun(100, func() {
		w.Poll(r.now)
		for ring.Pop(drain) {
		}
	}); a != 0 {
		t.Fatalf("Poll with capture armed allocates %v times per batch", a)
	}
	if ring.Matched() == 0 {
		t.Fatal("armed capture saw nothing")
	}
	if a := testing.AllocsPerRun(100, func() { w.Poll(r.now) }); a != 0 {
		t.Fatalf("Poll with a full capture ring allocates %v times per batch", a)
	}
	if ring.Dropped() == 0 {
		t.Fatal("a full ring counted no drops")
	}
	r.dp.StopCapture(s)
	if r.dp.capture.Load() != nil {
		t.Fatal("StopCapture left the session armed")
	}
}

// BenchmarkPipelineBatchCapture is BenchmarkPipelineBatch with a capture of every frame armed
// and drained between batches: the cost of capturing on the fast path.
func BenchmarkPipelineBatchCapture(b *testing.B) {
	r := newRig(b, testManifests)
	var frames [][]byte
	for i := range BatchSize {
		r.ext.push(frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "S", nil))
		frames = append(frames, frame(b, clientMAC, extMAC, "198.18.0.100", "198.19.1.1", packet.ProtoTCP, uint16(40000+i), 80, "A", make([]byte, 6)))
	}
	r.run(b)
	w, err := r.dp.AddWorker(1, []FrameIO{newReplayIO(frames), newReplayIO(nil)})
	if err != nil {
		b.Fatal(err)
	}
	s, err := r.dp.StartCapture(capture.Config{RingSlots: 4 * BatchSize})
	if err != nil {
		b.Fatal(err)
	}
	ring := s.Ring(w.capIdx)
	drain := func(capture.Record, []byte) {}
	b.ReportAllocs()
	pkts := 0
	for b.Loop() {
		pkts += w.Poll(r.now)
		for ring.Pop(drain) {
		}
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(pkts)
	b.ReportMetric(ns, "ns/pkt")
	b.ReportMetric(1e9/ns, "pkt/s")
}
