package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/xdpsvc/lb/appliance/daemon"
)

// versionInfo is what `appliance version` reports.
type versionInfo struct {
	// Version is -ldflags "-X main.version=..." if set, else the module version.
	Version string `json:"version"`
	// Module is the main module's path.
	Module string `json:"module,omitempty"`
	// ModuleVersion is the main module's version ("(devel)" for a work-tree build).
	ModuleVersion string `json:"moduleVersion,omitempty"`
	// Revision is the VCS commit the binary was built from, when the build recorded it.
	Revision string `json:"revision,omitempty"`
	// RevisionTime is that commit's time (RFC 3339).
	RevisionTime string `json:"revisionTime,omitempty"`
	// Modified is true when the work tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Kernel is the running kernel's release (uname -r).
	Kernel string `json:"kernel"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Kernel: daemon.KernelRelease()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.ModuleVersion, v.GoVersion = bi.Main.Path, bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.RevisionTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Version == "dev" && v.ModuleVersion != "" && v.ModuleVersion != "(devel)" {
		v.Version = v.ModuleVersion
	}
	return v
}

// cmdVersion prints the build: appliance version [-o text|json].
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	output := fs.String("o", "text", "output format: text or json")
	if exit, ok := parseFlags(fs, args, "usage: appliance version [-o text|json]", stdout, stderr); !ok {
		return exit
	}
	if fs.NArg() > 0 || (*output != "text" && *output != "json") {
		fmt.Fprintln(stderr, "usage: appliance version [-o text|json]")
		return 2
	}
	v := readVersion()
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "appliance %s\n", v.Version)
	if v.Module != "" {
		fmt.Fprintf(stdout, "  module:   %s %s\n", v.Module, v.ModuleVersion)
	}
	if v.Revision != "" {
		rev := v.Revision
		if v.RevisionTime != "" {
			rev += " (" + v.RevisionTime + ")"
		}
		if v.Modified {
			rev += ", modified"
		}
		fmt.Fprintf(stdout, "  revision: %s\n", rev)
	}
	fmt.Fprintf(stdout, "  go:       %s\n  platform: %s\n  kernel:   %s\n", v.GoVersion, v.Platform, v.Kernel)
	return 0
}
