package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/bench/failover"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/tstest"
)

// TestFailoverQuick is the smoke test of `bench failover --kills 1 --quick`: three appliance nodes, one kill
// of the VIP owner, then the outputs are checked for form (one kill with a finite figure, decodable PNGs),
// not for speed, and nothing of the lab may be left behind.
func TestFailoverQuick(t *testing.T) {
	tstest.RequireRoot(t)
	bin := os.Getenv("APPLIANCE_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "appliance")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/xdpsvc/lb/appliance").CombinedOutput(); err != nil {
			t.Fatalf("go build appliance (or set APPLIANCE_BIN): %v\n%s", err, out)
		}
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"failover", "--kills", "1", "--quick", "--appliance", bin, "--out", out}, &stdout, &stderr)
	t.Logf("stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(stderr.String(), "kill 1/1: owner lb-") || !strings.Contains(stderr.String(), "served again after") {
		t.Errorf("no progress line for the kill in stderr")
	}
	if !strings.Contains(stdout.String(), "| target (issue 5) |") {
		t.Errorf("stdout has no summary table:\n%s", stdout.String())
	}
	res, err := failover.ReadResult(filepath.Join(out, failover.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kills) != 1 {
		t.Fatalf("%d kills in results.json, want 1", len(res.Kills))
	}
	k := res.Kills[0]
	if v := k.ServedAgainMillis; math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 20_000 {
		t.Errorf("served again after %v ms", v)
	}
	if k.Owner == "" || k.NewOwner == "" || k.Owner == k.NewOwner || k.OwnerPID == 0 {
		t.Errorf("owner %q (pid %d) → %q", k.Owner, k.OwnerPID, k.NewOwner)
	}
	if len(k.LongLived) != 2 || len(k.Timeline) == 0 {
		t.Errorf("%d long-lived connections, %d attempts", len(k.LongLived), len(k.Timeline))
	}
	if res.Machine.Kernel == "" || res.Machine.CPUs == 0 {
		t.Errorf("machine %+v", res.Machine)
	}
	for _, name := range []string{failover.TimelinePlot, failover.DistributionPlot} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := lab.ReadState("", res.Lab); err == nil {
		t.Errorf("the state file of lab %s is left behind", res.Lab)
	}
	nsList, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(nsList), "\n") {
		if res.Lab != "" && strings.HasPrefix(line, res.Lab+"-") {
			t.Errorf("namespace %s left behind", line)
		}
	}
}
