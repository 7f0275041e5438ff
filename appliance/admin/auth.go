package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Bounds of a token file.
const (
	// MinTokenBytes is the shortest token accepted: a guessable token is no authorization.
	MinTokenBytes = 16
	// maxTokenFileBytes bounds how much of a token file is read.
	maxTokenFileBytes = 4096
)

// ReadTokenFile reads the bearer token of path: its content without surrounding whitespace. The
// file must be a regular file that neither group nor others may access (mode 0600 or 0400), and
// the token at least MinTokenBytes printable characters. Both the server and the CLI read the
// token through it.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("admin token file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token file %s: mode %04o lets group or others read or change the token: chmod 0600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("admin token file %s: %w", path, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("admin token file %s: longer than %d bytes", path, maxTokenFileBytes)
	}
	tok := bytes.TrimSpace(b)
	for _, c := range tok {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("admin token file %s: the token holds a space or a non-printable byte", path)
		}
	}
	if len(tok) < MinTokenBytes {
		return "", fmt.Errorf("admin token file %s: a token of %d bytes, at least %d: generate one with `head -c 32 /dev/urandom | base64 > %s`",
			path, len(tok), MinTokenBytes, path)
	}
	return string(tok), nil
}

// requireToken serves h only to requests carrying "Authorization: Bearer <token>"; the token is
// compared in constant time (of SHA-256 digests, so not even its length leaks).
func requireToken(token string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="appliance admin"`)
			http.Error(w, "unauthorized: this endpoint needs the node's admin token (Authorization: Bearer; appliance --token-file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// socketOnly refuses h on a listener that has no way to authorize callers.
func socketOnly(socketPath string) http.Handler {
	msg := "forbidden: this endpoint is served only to authorized callers, on the admin Unix socket or with the admin token, and this node has neither configured (admin.socket, admin.tokenFile)"
	if socketPath != "" {
		msg = "forbidden: this endpoint is served only to authorized callers: use the admin Unix socket (appliance --admin unix://" + socketPath + "); this node has no admin token file"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, msg, http.StatusForbidden)
	})
}

// listenUnix listens on a Unix socket at path with mode 0600, so that only its owner (and root)
// may connect. The socket is bound and chmodded in a private directory (mode 0700) beside path and
// then renamed into place, so no other user can connect in the moment between bind and chmod,
// whatever the umask. A stale socket at path is replaced; anything else there, or a socket
// another process still serves, is an error.
func listenUnix(path string) (*net.UnixListener, os.FileInfo, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, nil, fmt.Errorf("admin socket %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("admin socket %s: another process serves it", path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".admin-socket-")
	if err != nil {
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it is renamed; Server.Close removes path
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, fi, nil
}
