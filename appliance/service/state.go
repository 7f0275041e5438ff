package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// StateVersion is the version of the state file format.
const StateVersion = 1

// State is the persisted allocation of every Service: what a restart must keep. A State returned by
// Build is never modified afterwards; Build makes a new one.
type State struct {
	// Version is StateVersion.
	Version int `json:"version"`
	// Services maps namespace/name to its allocations.
	Services map[string]ServiceState `json:"services"`
}

// ServiceState is the allocations of one Service.
type ServiceState struct {
	// ClusterIPs are the allocated cluster IPs.
	ClusterIPs []netip.Addr `json:"clusterIPs,omitempty"`
	// NodePorts maps "port/PROTO" (e.g. "80/TCP") to the allocated nodePort.
	NodePorts map[string]uint16 `json:"nodePorts,omitempty"`
	// LoadBalancerIP is the allocated external IP, if any.
	LoadBalancerIP netip.Addr `json:"loadBalancerIP,omitzero"`
	// PortIDs maps "port/PROTO" to the port's stable ID.
	PortIDs map[string]PortID `json:"portIDs,omitempty"`
	// CreatedUnixMilli is when these values were first allocated, by this node or by the cluster
	// node whose allocation this node adopted (the cluster's conflict rule: earliest wins). The
	// builder leaves it zero; the daemon stamps it.
	CreatedUnixMilli int64 `json:"createdUnixMilli,omitempty"`
}

func portKey(port uint16, p Protocol) string { return fmt.Sprintf("%d/%s", port, p) }

// PortKey is the key of a Service port in ServiceState's maps: "port/PROTO", e.g. "80/TCP".
func PortKey(port uint16, p Protocol) string { return portKey(port, p) }

// LoadState reads a state file; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: StateVersion, Services: map[string]ServiceState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("load state %s: version %d, want %d", path, st.Version, StateVersion)
	}
	if st.Services == nil {
		st.Services = map[string]ServiceState{}
	}
	return &st, nil
}

// SaveState writes st to path atomically: a temporary file in the same folder, fsync, rename,
// fsync of the folder (so that the rename itself survives a crash). A file that already holds
// exactly this state is left alone: a reload that changes no allocation writes nothing.
func SaveState(path string, st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic replaces path with data through a synced temporary file and a rename, then
// syncs the folder.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
