package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help lists subcommands", args: []string{"--help"}, wantCode: 0, wantStdout: "bench lab up"},
		{name: "help lists failover", args: []string{"help"}, wantCode: 0, wantStdout: "bench failover"},
		{name: "no arguments", args: nil, wantCode: 2, wantStderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "failover bad kills", args: []string{"failover", "--kills", "0"}, wantCode: 2, wantStderr: "kills: 0 is outside"},
		{name: "lab without subcommand", args: []string{"lab"}, wantCode: 2, wantStderr: "want up, down, list or sweep"},
		{name: "lab down needs a target", args: []string{"lab", "down"}, wantCode: 2, wantStderr: "exactly one of --prefix P or --all"},
		{name: "lab down both targets", args: []string{"lab", "down", "--all", "--prefix", "l1234"}, wantCode: 2, wantStderr: "exactly one of"},
		{name: "lab down bad prefix", args: []string{"lab", "down", "--prefix", "../etc"}, wantCode: 1, wantStderr: "must match"},
		{name: "lab up bad count", args: []string{"lab", "up", "--nodes", "0"}, wantCode: 1, wantStderr: "nodes: 0"},
		{name: "lab up bad flag", args: []string{"lab", "up", "--bogus"}, wantCode: 2, wantStderr: "flag provided but not defined"},
		{name: "backend needs an address", args: []string{"backend", "--name", "b1"}, wantCode: 2, wantStderr: "at least one of"},
		{name: "backend needs a name", args: []string{"backend", "--http", "127.0.0.1:0"}, wantCode: 1, wantStderr: "name is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}
