package compare

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/tstest"
)

// TestMain lets the test binary play the ceiling forwarder: Compare starts ForwarderArgv in the node namespace.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "compare-forwarder" {
		os.Exit(ForwarderMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// applianceBinary is $APPLIANCE_BIN, or ./appliance built into a temporary folder.
func applianceBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("APPLIANCE_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "appliance")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/xdpsvc/lb/appliance").CombinedOutput()
	if err != nil {
		t.Fatalf("go build appliance (or set APPLIANCE_BIN): %v\n%s", err, out)
	}
	return bin
}

// TestCompareQuick is the smoke test of `bench compare --quick`: every system and scenario end to end on
// tiny counts, checking that the pipeline works and the outputs are well-formed, not the speed.
func TestCompareQuick(t *testing.T) {
	tstest.RequireRoot(t)
	cfg := QuickConfig()
	cfg.ApplianceBin = applianceBinary(t)
	cfg.ForwarderArgv = []string{os.Args[0], "compare-forwarder"}
	cfg.OutDir = t.TempDir()
	var progress strings.Builder
	cfg.Progress = &progress
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Compare(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quick comparison took %v", time.Since(start).Round(time.Millisecond))
	if want := len(AllSystems) * len(AllScenarios); len(res.Runs) != want {
		t.Fatalf("%d runs, want %d", len(res.Runs), want)
	}
	for _, r := range res.Runs {
		switch {
		case r.Error != "":
			t.Errorf("%s %s: %s", r.System, r.Scenario, r.Error)
		case r.Skipped != "":
		case r.Kind == KindLatency && len(r.LatencyMicros) == 0:
			t.Errorf("%s %s: no latency samples", r.System, r.Scenario)
		case r.Kind != KindLatency && r.Offered == 0:
			t.Errorf("%s %s: nothing offered", r.System, r.Scenario)
		}
	}
	// The UDP 1-flow scenario must reach the backends through every system: the path works.
	for _, r := range res.Runs {
		if r.Scenario == "udp64-1flow" && r.Received == 0 {
			t.Errorf("%s: no UDP frame reached the backends", r.System)
		}
	}
	for _, sys := range res.Systems {
		if res.Modes[sys] == "" {
			t.Errorf("no mode recorded for %s", sys)
		}
	}
	checkOutputs(t, cfg.OutDir, res)
	if !strings.Contains(progress.String(), "left") {
		t.Errorf("progress has no time-left estimate:\n%s", progress.String())
	}
	// Nothing of the lab is left behind.
	if res.Lab == "" {
		t.Fatal("result names no lab")
	}
	if _, err := lab.ReadState("", res.Lab); err == nil {
		t.Errorf("the state file of lab %s is left behind", res.Lab)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, res.Lab+"-") {
			t.Errorf("namespace %s left behind", line)
		}
	}
}
