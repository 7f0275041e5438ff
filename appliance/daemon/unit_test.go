package daemon

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitPath = "../../configs/appliance.service"

// readUnit parses a systemd unit into section -> key -> values (a key may repeat).
func readUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			sec = l[1 : len(l)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == "" {
				t.Fatalf("%s: malformed line %q", path, l)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

// TestSystemdUnit checks the unit's contract (DESIGN/README "Running as a service"), that its
// capabilities satisfy the preflight, and, where systemd-analyze exists, that systemd accepts
// it without a single warning.
func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, unitPath)
	svc := u["Service"]
	want := []struct{ key, value string }{
		{"Type", "simple"},
		{"ExecStart", "/usr/local/bin/appliance run --config /etc/appliance/appliance.yaml --log-format json"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"KillSignal", "SIGTERM"},
		{"Restart", "on-failure"},
		{"LimitMEMLOCK", "infinity"},
		{"TimeoutStopSec", "30"},
	}
	for _, w := range want {
		t.Run(w.key, func(t *testing.T) {
			if got := svc[w.key]; len(got) != 1 || got[0] != w.value {
				t.Fatalf("%s=%q, want %q", w.key, got, w.value)
			}
		})
	}
	capBits := map[string]uint{"CAP_NET_ADMIN": capNetAdmin, "CAP_NET_RAW": capNetRaw, "CAP_BPF": capBPF,
		"CAP_SYS_ADMIN": capSysAdmin, "CAP_PERFMON": capPerfmon}
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		t.Run(key, func(t *testing.T) {
			var eff uint64
			got := strings.Fields(strings.Join(svc[key], " "))
			for _, c := range got {
				b, ok := capBits[c]
				if !ok {
					t.Fatalf("%s grants %s, which the appliance does not need", key, c)
				}
				eff |= 1 << b
			}
			if len(got) != len(capBits) {
				t.Fatalf("%s=%v, want all of %v", key, got, capBits)
			}
			r := goodReadings()
			r.CapEff, r.MemlockBytes = eff, math.MaxUint64 // LimitMEMLOCK=infinity
			if fs := Preflight(r, PreflightConfig{UMEMBytes: 1 << 30}); len(fs) != 0 {
				t.Fatalf("the unit's capabilities leave preflight findings: %v", fs)
			}
		})
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("WantedBy=%v", got)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: skipping systemd's own verification of the unit")
	}
	// systemd-analyze verify checks that ExecStart's binary exists: point it at a stand-in.
	dir := t.TempDir()
	bin := filepath.Join(dir, "appliance")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "appliance.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(text), "/usr/local/bin/appliance", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		// Only lines about this unit: a container without systemd running adds unrelated noise.
		if strings.Contains(l, "appliance.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	if err != nil && !strings.Contains(string(out), "appliance.service") {
		t.Logf("systemd-analyze verify exited %v (no finding about the unit):\n%s", err, out)
	}
}
