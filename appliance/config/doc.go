// Package config loads and validates the appliance's YAML config file (DESIGN.md section 4).
//
// Parsing is strict: unknown keys, wrong types and duplicate keys are errors. Every error is a
// *FieldError naming the file, the line and the field ("lb.yaml:7: network.serviceCIDR: invalid CIDR
// \"198.19.0.0/33\""), and Parse collects all of them into an ErrorList rather than stopping at the first.
// Defaults come from DefaultConfig; paths in the file (manifests, state, secretKeyFile) are relative to
// the directory of the config file and are returned absolute-or-joined.
//
// Invariants of a *Config returned without error: ServiceCIDR is a valid masked prefix; pools are
// masked, named uniquely, overlap neither each other nor ServiceCIDR; NodePortRange is 1 <= First <=
// Last <= 65535; interface names are unique with a known role; bind/listen addresses are host:port.
//
// A *Config is a plain value: build it once, then treat it as read-only; it may be shared by goroutines.
package config
