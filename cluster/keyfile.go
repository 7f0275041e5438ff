package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Gossip keys are AES keys for memberlist's encryption (AES-GCM): 16, 24 or 32 bytes.
const (
	// KeyBytes is the size of the keys GenerateKey makes (AES-256).
	KeyBytes = 32
)

// maxKeyFileBytes bounds what ReadKeyFile reads: a base64 key with white space fits many times.
const maxKeyFileBytes = 1024

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// ParseKey reads a gossip key from the contents of a key file. Surrounding white space is
// ignored. The text is first read as standard base64 (what `appliance keygen` and `consul keygen`
// print); if it does not decode to 16, 24 or 32 bytes, the text itself is the key, so it must be
// 16, 24 or 32 bytes long (raw keys, as earlier versions took them).
func ParseKey(b []byte) ([]byte, error) {
	text := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(text); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(text)) {
		return []byte(text), nil
	}
	return nil, fmt.Errorf("not a gossip key: want 16, 24 or 32 bytes, raw or base64 (make one with `appliance keygen`), have %d bytes", len(text))
}

// ErrKeyFileMode is returned by ReadKeyFile for a key file that others can read.
var ErrKeyFileMode = errors.New("key file is readable or writable by group or others")

// ReadKeyFile reads and parses a gossip key file. A file that its group or others may read or
// write is refused (the key is the cluster's only credential), with the command that fixes it.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w (mode %04o): run `chmod 600 %s`", path, ErrKeyFileMode, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s: longer than %d bytes: not a gossip key", path, maxKeyFileBytes)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// GenerateKey returns a new random gossip key of KeyBytes bytes.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return k, nil
}

// EncodeKey is the text form of a key as a key file holds it: base64 and a newline.
func EncodeKey(k []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(k) + "\n")
}

// WriteKeyFile writes a new key file with mode 0600. It never overwrites an existing file.
func WriteKeyFile(path string, k []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(EncodeKey(k)); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
