package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	k32 := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		in   string
		want []byte
		err  bool
	}{
		{"base64 of 32 bytes (keygen, consul keygen)", base64.StdEncoding.EncodeToString(k32) + "\n", k32, false},
		{"base64 of 16 bytes", base64.StdEncoding.EncodeToString(k32[:16]), k32[:16], false},
		{"raw 16 characters", "0123456789abcdef\n", []byte("0123456789abcdef"), false},
		{"raw 32 characters that are not base64", "0123456789abcdef0123456789abcde!", []byte("0123456789abcdef0123456789abcde!"), false},
		{"empty", "", nil, true},
		{"too short", "short", nil, true},
		{"base64 of 20 bytes", base64.StdEncoding.EncodeToString(k32[:20]), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey([]byte(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("accepted %q", tc.in)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("ParseKey(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestKeyFileRoundTripAndMode: a generated key file is 0600, reads back as the same key, is never
// overwritten, and a key file readable by others is refused with the fix.
func TestKeyFileRoundTripAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip.key")
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %04o, want 0600", perm)
	}
	got, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, k) {
		t.Fatalf("ReadKeyFile = %x, %v; want %x", got, err, k)
	}
	if err := WriteKeyFile(path, k); err == nil {
		t.Fatal("WriteKeyFile overwrote an existing file")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadKeyFile(path)
	if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v, want ErrKeyFileMode naming chmod 600", err)
	}
	long := filepath.Join(dir, "long.key")
	if err := os.WriteFile(long, bytes.Repeat([]byte("a"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(long); err == nil {
		t.Fatal("a 4 KiB key file was accepted")
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("0123456789abcdef"))
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))))
	f.Add([]byte(" \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err == nil && !validKeyLen(len(k)) {
			t.Fatalf("ParseKey returned a %d-byte key", len(k))
		}
	})
}
