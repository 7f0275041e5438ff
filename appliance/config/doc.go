// Package config loads and validates the appliance's YAML config file (README.md documents every key).
//
// Parsing is strict: unknown keys, wrong types and duplicate keys are errors. Every error is a
// *FieldError naming the file, the line and the field ("lb.yaml:7: network.serviceCIDR: invalid CIDR
// \"198.19.0.0/33\""), and Parse collects all of them into an ErrorList rather than stopping at the first.
// Items of lists are named by their index in the file, at their own line
// ("lb.yaml:11: network.loadBalancerPools[1].cidrs[0]: ...").
// Defaults come from DefaultConfig; paths in the file (manifests, state, secretKeyFile) are relative to
// the directory of the config file and are returned absolute-or-joined.
//
// Layout: walk.go is the generic strict walker of yaml.v3 nodes (mappings, lists, the line of every
// field and list item); values.go reads scalars (strings, durations, CIDRs, host:port); sections.go
// has one method per section of the file and the checks that span fields; config.go the types,
// DefaultConfig and Parse.
//
// Invariants of a *Config returned without error: ServiceCIDR is a valid masked prefix; pools are
// masked, named uniquely, overlap neither each other nor ServiceCIDR; NodePortRange is 1 <= First <=
// Last <= 65535; interface names are unique with a known role; bind/listen addresses are host:port.
//
// # Concurrency
//
// Parse and Load share no state and may run on any goroutine. A *Config is a plain
// value: build it once, then treat it as read-only; it may be shared by goroutines.
package config
