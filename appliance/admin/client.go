package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultSocketPath is where the daemon's admin Unix socket is expected when the config names
// none; `appliance capture` tries it first.
const DefaultSocketPath = "/run/appliance/admin.sock"

// Client reads a node's admin API.
type Client struct {
	// Base is the API's address: host:port or http://host:port over TCP, or
	// unix:///path/to/admin.sock for the Unix socket.
	Base string
	// Token is sent as "Authorization: Bearer" with every request (see ReadTokenFile); empty:
	// none.
	Token string
	// HTTP is the client used; nil: one that reaches Base, with no overall timeout (Get bounds
	// its requests by its own; a stream lasts as long as its context).
	HTTP *http.Client

	once sync.Once
	hc   *http.Client
	root string
}

// socketPath is Base's socket path, "" for a TCP address.
func (c *Client) socketPath() string {
	p, _ := strings.CutPrefix(c.Base, "unix://")
	if p == c.Base {
		return ""
	}
	return p
}

func (c *Client) init() {
	c.once.Do(func() {
		c.hc = c.HTTP
		if sock := c.socketPath(); sock != "" {
			c.root = "http://unix"
			if c.hc == nil {
				c.hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", sock)
				}}}
			}
			return
		}
		c.root = c.Base
		if !strings.Contains(c.root, "://") {
			c.root = "http://" + c.root
		}
		c.root = strings.TrimRight(c.root, "/")
		if c.hc == nil {
			c.hc = &http.Client{}
		}
	})
}

// Open sends GET path (e.g. "/api/v1/capture?vip=...") and returns the response if its status is
// 200; the caller closes its body. Otherwise the error carries the status and the node's message.
func (c *Client) Open(ctx context.Context, path string) (*http.Response, error) {
	c.init()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.root+path, nil)
	if err != nil {
		return nil, fmt.Errorf("admin request %s: %w", path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin get %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("admin get %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// Get fetches path (e.g. "/api/v1/services") into out, within 10 s unless ctx ends sooner.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Open(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin get %s: decode: %w", path, err)
	}
	return nil
}
