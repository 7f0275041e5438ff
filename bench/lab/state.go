package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// maxStateBytes bounds how much of a state file is read.
const maxStateBytes = 1 << 20

// State is the content of a lab's state file <StateDir>/<prefix>.json. It is written before the first
// namespace exists, so a crashed run always leaves a record that the sweeper and `bench lab down` can act on.
type State struct {
	// Version is the file format version (1).
	Version int `json:"version"`
	// Prefix is the lab's name prefix.
	Prefix string `json:"prefix"`
	// OwnerPID is the process that built the lab and removes it on Down; 0 for a persistent lab.
	OwnerPID int `json:"ownerPID"`
	// OwnerStartTicks is the owner's start time (clock ticks since boot, /proc/PID/stat field 22), which tells
	// a live owner from a reused PID.
	OwnerStartTicks uint64 `json:"ownerStartTicks"`
	// Namespaces lists every namespace of the lab, created or planned.
	Namespaces []string `json:"namespaces"`
	// Processes lists long-running programs started in the lab's namespaces.
	Processes []ProcessRecord `json:"processes"`
	// Created is when the lab was built.
	Created time.Time `json:"created"`
}

// ProcessRecord is one program that Down must stop.
type ProcessRecord struct {
	// PID is the process id.
	PID int `json:"pid"`
	// StartTicks is its start time (see State.OwnerStartTicks); a PID whose start time differs is someone else's.
	StartTicks uint64 `json:"startTicks"`
	// Namespace is the namespace it runs in.
	Namespace string `json:"namespace"`
	// Argv is its command line.
	Argv []string `json:"argv"`
	// Log is the file its output goes to, if any.
	Log string `json:"log,omitempty"`
}

// DecodeState parses and validates a state file. It accepts only namespace names of the lab's own naming
// scheme and prefix, so a tampered or corrupt file can never make Down or Sweep remove anything else.
func DecodeState(b []byte) (State, error) {
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("decode lab state: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return State{}, errors.New("decode lab state: trailing data after the JSON object")
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("decode lab state: version %d, want %d", st.Version, stateVersion)
	}
	if !prefixRE.MatchString(st.Prefix) {
		return State{}, fmt.Errorf("decode lab state: prefix %q: must match %s", st.Prefix, prefixRE)
	}
	if st.OwnerPID < 0 {
		return State{}, fmt.Errorf("decode lab state: ownerPID %d is negative", st.OwnerPID)
	}
	for i, ns := range st.Namespaces {
		if err := checkNSName(st.Prefix, ns); err != nil {
			return State{}, fmt.Errorf("decode lab state: namespaces[%d]: %w", i, err)
		}
	}
	for i, p := range st.Processes {
		if p.PID <= 1 {
			return State{}, fmt.Errorf("decode lab state: processes[%d].pid: %d is not a program's PID", i, p.PID)
		}
		if err := checkNSName(st.Prefix, p.Namespace); err != nil {
			return State{}, fmt.Errorf("decode lab state: processes[%d].namespace: %w", i, err)
		}
	}
	return st, nil
}

// checkNSName reports whether name is one of prefix's namespace names.
func checkNSName(prefix, name string) error {
	m := nsNameRE.FindStringSubmatch(name)
	if m == nil || m[1] != prefix {
		return fmt.Errorf("%q is not a namespace of lab %q", name, prefix)
	}
	return nil
}

// statePath is the state file of prefix in dir.
func statePath(dir, prefix string) string { return filepath.Join(dir, prefix+".json") }

// reserveState creates the state file exclusively; it fails with os.ErrExist when the prefix is taken.
func reserveState(dir string, st State) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create lab state dir %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	f, err := os.OpenFile(statePath(dir, st.Prefix), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("reserve lab state %s: %w", statePath(dir, st.Prefix), err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write lab state %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write lab state %s: %w", f.Name(), err)
	}
	return nil
}

// writeState replaces the state file atomically.
func writeState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	path := statePath(dir, st.Prefix)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write lab state %s: %w", path, err)
	}
	return nil
}

// ReadState reads and validates the state file of prefix in dir ("" = DefaultStateDir).
func ReadState(dir, prefix string) (State, error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	if !prefixRE.MatchString(prefix) {
		return State{}, fmt.Errorf("read lab state: prefix %q: must match %s", prefix, prefixRE)
	}
	path := statePath(dir, prefix)
	f, err := os.Open(path)
	if err != nil {
		return State{}, fmt.Errorf("read lab state %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes))
	if err != nil {
		return State{}, fmt.Errorf("read lab state %s: %w", path, err)
	}
	st, err := DecodeState(b)
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Prefix != prefix {
		return State{}, fmt.Errorf("read lab state %s: file names prefix %q", path, st.Prefix)
	}
	return st, nil
}

// ListStates returns the valid state files in dir ("" = DefaultStateDir), sorted by prefix, and one error
// per unreadable file (those are left alone).
func ListStates(dir string) ([]State, []error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("list lab states in %s: %w", dir, err)}
	}
	var states []State
	var errs []error
	for _, e := range entries {
		prefix, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !prefixRE.MatchString(prefix) {
			continue
		}
		st, err := ReadState(dir, prefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Prefix < states[j].Prefix })
	return states, errs
}

// procStartTicks returns field 22 of /proc/PID/stat and whether the process exists and is not a zombie.
func procStartTicks(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	t, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return t, true
}

// alive reports whether the process pid started at ticks still runs.
func alive(pid int, ticks uint64) bool {
	t, ok := procStartTicks(pid)
	return ok && t == ticks
}

// OwnerAlive reports whether the process that built the lab still runs (always true for a persistent lab).
func (st State) OwnerAlive() bool {
	if st.OwnerPID == 0 {
		return true
	}
	return alive(st.OwnerPID, st.OwnerStartTicks)
}

// stopRecorded sends SIGTERM to each recorded process that is still the same process, waits up to grace for
// them to exit, then SIGKILLs the rest. Processes of other owners are never signalled.
func stopRecorded(procs []ProcessRecord, grace time.Duration) {
	var live []ProcessRecord
	for _, p := range procs {
		if alive(p.PID, p.StartTicks) {
			_ = syscall.Kill(p.PID, syscall.SIGTERM)
			live = append(live, p)
		}
	}
	deadline := time.Now().Add(grace)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := 0
		for _, p := range live {
			if alive(p.PID, p.StartTicks) {
				live[n] = p
				n++
			}
		}
		live = live[:n]
	}
	for _, p := range live {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
}

// Namespace finds short (c1, n1, b1 ...) among the namespaces of the recorded lab st, for commands that
// work in a lab they did not build.
func (st State) Namespace(short string) (*NS, error) {
	name := st.Prefix + "-" + short
	if !slices.Contains(st.Namespaces, name) {
		return nil, fmt.Errorf("lab %s has no namespace %s (it has %s)", st.Prefix, short, strings.Join(st.Namespaces, ", "))
	}
	return &NS{Name: name, Short: short}, nil
}
