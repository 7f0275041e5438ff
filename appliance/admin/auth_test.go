package admin

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// payloadRoute stands for the capture endpoint: it streams what only authorized callers may see.
var payloadRoute = map[string]http.Handler{"GET /api/v1/capture": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "payload bytes")
})}

const testToken = "0123456789abcdef0123456789abcdef"

func writeTokenFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
	return path
}

func startAuth(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen, cfg.Routes, cfg.Logger = "127.0.0.1:0", payloadRoute, slog.New(slog.DiscardHandler)
	srv, err := Start(&staticSource{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return srv
}

func get(t *testing.T, hc *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPrivilegedRoutesOnTCP: on the TCP listener the extra routes (the capture stream) are
// refused without authorization, while /healthz and the read-only lists stay open.
func TestPrivilegedRoutesOnTCP(t *testing.T) {
	open := startAuth(t, Config{})
	withToken := startAuth(t, Config{TokenFile: writeTokenFile(t, testToken+"\n", 0o600)})
	cases := []struct {
		name     string
		srv      *Server
		path     string
		token    string
		wantCode int
		wantBody string
	}{
		{"no authorization configured: refused", open, "/api/v1/capture", "", http.StatusForbidden, "admin.socket"},
		{"no authorization configured: a token does not help", open, "/api/v1/capture", testToken, http.StatusForbidden, "admin.tokenFile"},
		{"lists stay open", open, "/api/v1/members", "", http.StatusOK, "lb-a"},
		{"healthz stays open", open, "/healthz", "", http.StatusOK, "ok"},
		{"token configured, none sent", withToken, "/api/v1/capture", "", http.StatusUnauthorized, "--token-file"},
		{"wrong token", withToken, "/api/v1/capture", testToken + "x", http.StatusUnauthorized, "unauthorized"},
		{"token prefix", withToken, "/api/v1/capture", testToken[:20], http.StatusUnauthorized, "unauthorized"},
		{"right token", withToken, "/api/v1/capture", testToken, http.StatusOK, "payload bytes"},
		{"lists need no token", withToken, "/api/v1/members", "", http.StatusOK, "lb-a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, http.DefaultClient, "http://"+tc.srv.Addr()+tc.path, tc.token)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("%s: %d %q, want %d with %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// TestTokenFileChecks: a token file others may read, or one with a weak token, stops the server
// from starting with an error that names the fix.
func TestTokenFileChecks(t *testing.T) {
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string // "" : accepted
	}{
		{"owner only", testToken, 0o600, ""},
		{"read only", testToken + "\n", 0o400, ""},
		{"world readable", testToken, 0o644, "chmod 0600"},
		{"group readable", testToken, 0o640, "chmod 0600"},
		{"others may write", testToken, 0o602, "chmod 0600"},
		{"short token", "secret", 0o600, "at least 16"},
		{"empty", "\n", 0o600, "at least 16"},
		{"space inside", "0123456789 abcdef0123", 0o600, "space"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTokenFile(t, tc.content, tc.mode)
			srv, err := Start(&staticSource{}, Config{Listen: "127.0.0.1:0", TokenFile: path, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = srv.Close(context.Background())
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Start: %v, want an error naming %s and %q", err, path, tc.wantErr)
			}
		})
	}
}

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// TestSocketServesPrivilegedRoutes: the Unix socket is created with mode 0600 and serves every
// route without a token; the TCP listener beside it still refuses the capture and says where it is.
func TestSocketServesPrivilegedRoutes(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "admin.sock")
	srv := startAuth(t, Config{SocketPath: sock})
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if code, body := get(t, unixClient(sock), "http://unix/api/v1/capture", ""); code != http.StatusOK || body != "payload bytes" {
		t.Fatalf("capture on the socket: %d %q", code, body)
	}
	if code, body := get(t, http.DefaultClient, "http://"+srv.Addr()+"/api/v1/capture", ""); code != http.StatusForbidden || !strings.Contains(body, "unix://"+sock) {
		t.Fatalf("capture on TCP: %d %q, want 403 naming the socket", code, body)
	}
	if _, err := Start(&staticSource{}, Config{Listen: "127.0.0.1:0", SocketPath: sock}); err == nil || !strings.Contains(err.Error(), "another process serves it") {
		t.Fatalf("second server on a live socket: %v", err)
	}
	if err := srv.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after Close: %v", err)
	}
}

// TestSocketPathChecks: a stale socket is replaced, anything else at the path is left alone.
func TestSocketPathChecks(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	startAuth(t, Config{SocketPath: stale})
	if code, _ := get(t, unixClient(stale), "http://unix/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz on the replaced socket: %d", code)
	}

	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(&staticSource{}, Config{Listen: "127.0.0.1:0", SocketPath: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("socket path over a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Fatalf("file at the socket path changed: %q", b)
	}
}

// TestClientOverSocketAndToken: the Client reaches the capture route over unix:// without a
// token, and over TCP with one.
func TestClientOverSocketAndToken(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	srv := startAuth(t, Config{SocketPath: sock, TokenFile: writeTokenFile(t, testToken, 0o600)})
	for _, c := range []*Client{{Base: "unix://" + sock}, {Base: srv.Addr(), Token: testToken}} {
		resp, err := c.Open(t.Context(), "/api/v1/capture")
		if err != nil {
			t.Fatalf("%s: %v", c.Base, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "payload bytes" {
			t.Fatalf("%s: %q", c.Base, b)
		}
	}
	if _, err := (&Client{Base: srv.Addr()}).Open(t.Context(), "/api/v1/capture"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a token: %v, want 401", err)
	}
}
