package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/cluster"
)

func TestKeygen(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch([]string{"keygen"}, &out, &errb); code != 0 {
		t.Fatalf("keygen exit %d: %s", code, &errb)
	}
	if k, err := cluster.ParseKey(out.Bytes()); err != nil || len(k) != cluster.KeyBytes {
		t.Fatalf("printed key %q: %v", &out, err)
	}

	path := filepath.Join(t.TempDir(), "gossip.key")
	out.Reset()
	if code := dispatch([]string{"keygen", path}, &out, &errb); code != 0 {
		t.Fatalf("keygen FILE exit %d: %s", code, &errb)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if _, err := cluster.ReadKeyFile(path); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := dispatch([]string{"keygen", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "never overwritten") {
		t.Fatalf("keygen over an existing file: exit %d, %q", code, &errb)
	}
	out.Reset()
	if code := dispatch([]string{"keygen", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: appliance keygen") {
		t.Fatalf("keygen --help: exit %d, stdout %q", code, &out)
	}
}
