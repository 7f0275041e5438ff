package service

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSaveStateSkipsUnchanged: saving the state a file already holds writes nothing (the file's
// modification time and inode stay), and a changed state replaces it. Before, every reload
// rewrote the file.
func TestSaveStateSkipsUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.state.json")
	st := &State{Version: StateVersion, Services: map[string]ServiceState{}}
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000, 0)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !after.ModTime().Equal(old) || !os.SameFile(before, after) {
		t.Fatal("an unchanged state was written again")
	}
	st.Services["default/web"] = ServiceState{}
	if err := SaveState(path, st); err != nil {
		t.Fatal(err)
	}
	changed, _ := os.Stat(path)
	if changed.ModTime().Equal(old) {
		t.Fatal("a changed state was not written")
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Services["default/web"]; !ok {
		t.Fatalf("state read back without the new Service: %+v", got)
	}
	if m, _ := filepath.Glob(path + ".tmp*"); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}
