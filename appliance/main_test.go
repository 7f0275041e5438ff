package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleConfigs copies configs/ (the example configs and manifests) into a temporary folder and
// makes the gossip key they name, as the README tells a user to.
func exampleConfigs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("example configs: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code := dispatch([]string{"keygen", filepath.Join(dir, "gossip.key")}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	return dir
}

func TestCheck(t *testing.T) {
	examples := exampleConfigs(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{name: "lab config is valid and prints a kubectl-style table", args: []string{"check", "--config", filepath.Join(examples, "lab-node-a.yaml")},
			wantOut: []string{"NAMESPACE   NAME", "CLUSTER-IP", "PORT(S)", "80:30080/TCP", "LoadBalancer", "198.19.1.", "None", "note: default/web-headless: headless"}},
		{name: "broken manifests exit 1 with every error", args: []string{"check", "--config", "../configs/testdata/lab-broken.yaml"}, wantCode: 1,
			wantErr: []string{"misc.yaml:2: kind: Unsupported value", "broken-yaml.yaml:3:", "error(s)"}},
		{name: "example config without its gossip key is refused", args: []string{"check", "--config", "../configs/lab-node-a.yaml"}, wantCode: 1,
			wantErr: []string{"cluster.secretKeyFile", "appliance keygen"}},
		{name: "missing config", args: []string{"check", "--config", "/nonexistent/lb.yaml"}, wantCode: 1, wantErr: []string{"load config /nonexistent/lb.yaml"}},
		{name: "check without --config is a usage error", args: []string{"check"}, wantCode: 2},
		{name: "run without a config is a usage error", args: []string{"run"}, wantCode: 2, wantErr: []string{"usage: appliance run"}},
		{name: "version", args: []string{"version"}, wantOut: []string{"appliance dev"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := dispatch(tt.args, &out, &errb); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &out, &errb)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &out)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &errb)
				}
			}
		})
	}
}

func TestCheckWritesNothing(t *testing.T) {
	dir := exampleConfigs(t)
	before, _ := os.ReadDir(dir)
	var out, errb bytes.Buffer
	if code := dispatch([]string{"check", "--config", filepath.Join(dir, "lab-node-a.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, &errb)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(before) {
		t.Errorf("check wrote files: %v", entries)
	}
}

// TestHelpExitsZero: --help on a subcommand prints its usage to stdout and exits 0.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"check", "capture", "version", "keygen", "run", "get", "agent"} {
		var out, errb bytes.Buffer
		if code := dispatch([]string{cmd, "--help"}, &out, &errb); code != 0 || !strings.Contains(strings.ToLower(out.String()), "usage") || errb.Len() != 0 {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, &out, &errb)
		}
	}
}
