package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/capture"
)

// fakeTarget arms real capture sessions and plays one worker that forwards a golden frame: the
// frame as received on port 0 and, translated, as sent on port 1.
type fakeTarget struct {
	in, out []byte
	wg      sync.WaitGroup
	query   string
}

func (f *fakeTarget) StartCapture(cfg capture.Config) (*capture.Session, error) {
	s, err := capture.NewSession(cfg, []string{"ext0", "int0"}, 1)
	if err != nil {
		return nil, err
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		r := s.Ring(0)
		r.Begin(f.in, 0, 1_700_000_000_000_000_000)
		r.End(true, f.out, 1)
	}()
	return s, nil
}

func (f *fakeTarget) StopCapture(*capture.Session) {}

func udp(t *testing.T, src, dst string, sport, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, u, gopacket.Payload("ping")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCaptureCommand(t *testing.T) {
	ft := &fakeTarget{in: udp(t, "198.18.0.100", "198.19.1.1", 4000, 5000), out: udp(t, "198.18.1.11", "198.18.1.21", 61000, 5000)}
	h := capture.Handler(capture.HandlerConfig{Target: ft, Logger: slog.New(slog.DiscardHandler)})
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	token := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose.token")
	if err := os.WriteFile(loose, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := admin.Start(snapshotSource{}, admin.Config{Listen: "127.0.0.1:0", SocketPath: sock, TokenFile: token,
		Logger: slog.New(slog.DiscardHandler),
		Routes: map[string]http.Handler{"GET /api/v1/capture": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ft.query = r.URL.RawQuery
			h.ServeHTTP(w, r)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	t.Cleanup(ft.wg.Wait)
	viaSocket := []string{"--admin", "unix://" + sock}
	viaToken := []string{"--admin", srv.Addr(), "--token-file", token}

	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
		query    string // the request's query, when it reaches the node
	}{
		{"vip with count", append([]string{"--vip", "198.19.1.1", "--count", "2"}, viaSocket...), 0, "2 frames written", "count=2&vip=198.19.1.1"},
		{"flow", append([]string{"--flow", "udp 198.18.0.100:4000 198.19.1.1:5000", "--count", "2", "--duration", "10s"}, viaSocket...), 0, "2 frames written",
			"count=2&duration=10s&flow=udp+198.18.0.100%3A4000+198.19.1.1%3A5000"},
		{"over TCP with the token", append([]string{"--vip", "198.19.1.1", "--count", "2"}, viaToken...), 0, "2 frames written", "count=2&vip=198.19.1.1"},
		{"over TCP without a token: refused", []string{"--admin", srv.Addr(), "--vip", "198.19.1.1", "--count", "2"}, 1, "401 Unauthorized", ""},
		{"token file others may read: refused", []string{"--admin", srv.Addr(), "--token-file", loose, "--count", "2"}, 1, "chmod 0600 " + loose, ""},
		{"bad flow is a usage error", append([]string{"--flow", "udp 1.2.3.4", "--count", "2"}, viaSocket...), 2, "flow", ""},
		{"two filters are a usage error", append([]string{"--vip", "198.19.1.1", "--service", "default/web"}, viaSocket...), 2, "usage: appliance capture", ""},
		{"node refuses a bad request", append([]string{"--vip", "nonsense", "--count", "2"}, viaSocket...), 1, "400 Bad Request", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cap.pcapng")
			ft.query = ""
			var out, errb bytes.Buffer
			args := append([]string{"capture", "-w", path}, c.args...)
			if code := dispatch(args, &out, &errb); code != c.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, c.wantCode, &errb)
			}
			if !strings.Contains(errb.String(), c.wantErr) {
				t.Fatalf("stderr %q lacks %q", &errb, c.wantErr)
			}
			if c.wantCode != 0 {
				return
			}
			if ft.query != c.query {
				t.Errorf("query %q, want %q", ft.query, c.query)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("capture file mode %v (%v), want 0600: it holds payloads", fi.Mode(), err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range [][]byte{ft.in, ft.out} {
				data, ci, err := r.ReadPacketData()
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				intf, _ := r.Interface(ci.InterfaceIndex)
				if !bytes.Equal(data, want) || intf.Name != []string{"ext0:rx", "int0:tx"}[i] {
					t.Fatalf("packet %d on %s differs", i, intf.Name)
				}
			}
			if _, _, err := r.ReadPacketData(); err != io.EOF {
				t.Fatalf("more than 2 packets: %v", err)
			}
			tcpdump, err := exec.LookPath("tcpdump")
			if err != nil {
				t.Skip("tcpdump not installed (scripts/deps.sh installs it): skipping the tcpdump -r check")
			}
			text, err := exec.Command(tcpdump, "-n", "-r", path).CombinedOutput()
			if err != nil || !strings.Contains(string(text), "198.18.0.100.4000 > 198.19.1.1.5000: UDP") ||
				!strings.Contains(string(text), "198.18.1.11.61000 > 198.18.1.21.5000: UDP") {
				t.Fatalf("tcpdump -r: %v\n%s", err, text)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"text", []string{"version"}, 0, []string{"appliance dev", "go:       go1.", "kernel:"}},
		{"flag form", []string{"--version"}, 0, []string{"appliance dev"}},
		{"json", []string{"version", "-o", "json"}, 0, []string{`"goVersion": "go1.`, `"kernel": "`, `"platform": "linux/`}},
		{"bad format", []string{"version", "-o", "yaml"}, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := dispatch(c.args, &out, &errb); code != c.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, c.wantCode, &errb)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
			if c.name == "json" {
				var v versionInfo
				if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Kernel == "" || v.Kernel != readVersion().Kernel {
					t.Fatalf("json %s: %v", &out, err)
				}
			}
		})
	}
}

// TestVersionOfABuiltBinary builds the command with VCS stamping and checks the revision shows.
func TestVersionOfABuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	bin := filepath.Join(t.TempDir(), "appliance")
	build := exec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("go build with VCS stamping unavailable here: %v\n%s", err, out)
	}
	if info, err := exec.Command("go", "version", "-m", bin).Output(); err != nil || !strings.Contains(string(info), "vcs.revision=") {
		t.Skipf("go build stamped no VCS revision here (git or the checkout unusable to the go command): %v\n%s", err, info)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "v9.9.9-test" || len(v.Revision) != 40 || v.RevisionTime == "" || v.Module != "github.com/xdpsvc/lb" {
		t.Fatalf("version %+v: want the -X version, a 40-hex revision and its time", v)
	}
}
