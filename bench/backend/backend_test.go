package backend

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startLoopback serves cfg on loopback sockets and stops the server at the end of the test.
func startLoopback(t *testing.T, cfg Config) (*Server, Listeners, func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ls Listeners
	if ls.HTTP, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ls.TCPEcho, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ls.UDP, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ls) }()
	var once sync.Once
	stop := func() { once.Do(func() { stopOnce(t, cancel, done) }) }
	t.Cleanup(stop)
	return s, ls, stop
}

func stopOnce(t *testing.T, cancel func(), done chan error) {
	{
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5 s of cancel")
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no name", func(c *Config) { c.Name = "" }},
		{"zero idle timeout", func(c *Config) { c.IdleTimeout = 0 }},
		{"zero max conns", func(c *Config) { c.MaxConns = 0 }},
		{"zero datagram size", func(c *Config) { c.MaxDatagramBytes = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	s, ls, _ := startLoopback(t, DefaultConfig())
	base := "http://" + ls.HTTP.Addr().String()
	tests := []struct {
		name, path string
		check      func(t *testing.T, body string)
	}{
		{"root names the backend", "/", func(t *testing.T, body string) {
			if want := "backend b1 " + ls.HTTP.Addr().String() + "\n"; body != want {
				t.Errorf("body = %q, want %q", body, want)
			}
		}},
		{"whoami", "/whoami", func(t *testing.T, body string) {
			var w WhoAmI
			if err := json.Unmarshal([]byte(body), &w); err != nil {
				t.Fatal(err)
			}
			if w.Backend != "b1" || !strings.HasPrefix(w.Remote, "127.0.0.1:") || w.Local != ls.HTTP.Addr().String() {
				t.Errorf("whoami = %+v", w)
			}
		}},
		{"healthz", "/healthz", func(t *testing.T, body string) {
			if body != "ok\n" {
				t.Errorf("body = %q", body)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			tc.check(t, string(body))
		})
	}
	if got := s.Stats().HTTPRequests; got != uint64(len(tests)) {
		t.Errorf("HTTPRequests = %d, want %d", got, len(tests))
	}
	resp, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d, want 404", resp.StatusCode)
	}
}

func TestStreamEchoes(t *testing.T) {
	_, ls, _ := startLoopback(t, DefaultConfig())
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ls.HTTP.Addr().String()+"/stream", pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(resp.Body, buf, len("backend b1 stream\n"))
	if err != nil || string(buf[:n]) != "backend b1 stream\n" {
		t.Fatalf("greeting %q, %v", buf[:n], err)
	}
	io.WriteString(pw, "abc")
	if n, err = io.ReadAtLeast(resp.Body, buf, 3); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
	pw.Close()
}

func TestUDPEcho(t *testing.T) {
	s, ls, _ := startLoopback(t, DefaultConfig())
	c, err := net.Dial("udp4", ls.UDP.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, msg := range []string{"hello", "", strings.Repeat("x", 1400)} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != "b1 "+msg {
			t.Errorf("reply to %d bytes = %d bytes %.20q", len(msg), n, got)
		}
	}
	if got := s.Stats().UDPDatagrams; got != 3 {
		t.Errorf("UDPDatagrams = %d, want 3", got)
	}
}

func TestTCPEchoBounds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxConns = 1
	cfg.IdleTimeout = 300 * time.Millisecond
	s, ls, stop := startLoopback(t, cfg)
	first, err := net.Dial("tcp4", ls.TCPEcho.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(first, "hi")
	buf := make([]byte, 16)
	if n, err := io.ReadAtLeast(first, buf, 2); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
	t.Run("second connection beyond MaxConns is closed", func(t *testing.T) {
		second, err := net.Dial("tcp4", ls.TCPEcho.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		second.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := second.Read(buf); err == nil {
			t.Fatal("over-limit connection stayed open")
		}
		if s.Stats().Rejected != 1 {
			t.Errorf("Rejected = %d, want 1", s.Stats().Rejected)
		}
	})
	t.Run("idle connection is closed", func(t *testing.T) {
		start := time.Now()
		if _, err := first.Read(buf); err == nil {
			t.Fatal("idle connection still open")
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("idle close took %v", d)
		}
	})
	t.Run("stop closes open connections", func(t *testing.T) {
		c, err := net.Dial("tcp4", ls.TCPEcho.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "x")
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.ReadAtLeast(c, buf, 1)
		stop()
		if _, err := c.Read(buf); err == nil {
			t.Fatal("connection open after Serve returned")
		}
	})
}

func TestListenAndServeStopsOnCancel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HTTPAddr, cfg.UDPAddr, cfg.TCPEchoAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, cfg) }()
	time.Sleep(50 * time.Millisecond) // let it reach Serve; cancel before that is also fine
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListenAndServe did not return")
	}
}
