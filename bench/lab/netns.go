package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread switched into the namespace and switches back afterwards. Sockets fn
// creates belong to the namespace for their whole life, wherever they are used later. fn must not start
// goroutines that expect to be inside the namespace (they are not), and must not resolve names (the lab has
// no DNS). If the thread cannot be switched back it is left locked, so the Go runtime discards it.
func (n *NS) Do(fn func() error) error {
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", n.Name, err)
	}
	defer target.Close()
	return DoIn(target, fn)
}

// DialContext connects from inside the namespace. addr must be a literal IP address and port.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, addr, n.Name, err)
	}
	return c, nil
}

// Dial connects from inside ns with a 5 s timeout. addr must be a literal IP address and port.
func Dial(ns *NS, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}

// Listen opens a stream listener inside the namespace; the lab closes it on Down.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	n.lab.track(ln)
	return ln, nil
}

// ListenPacket opens a packet socket inside the namespace; the lab closes it on Down.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, n.Name, err)
	}
	n.lab.track(pc)
	return pc, nil
}

// HTTPClient returns a client whose connections are made inside ns (10 s overall timeout per request,
// no proxy). The lab closes its idle connections on Down.
func HTTPClient(ns *NS) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         ns.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	ns.lab.mu.Lock()
	ns.lab.transports = append(ns.lab.transports, t)
	ns.lab.mu.Unlock()
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// track registers something Down must close.
func (l *Lab) track(c interface{ Close() error }) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, c)
}

// onDown registers a function Down calls before stopping processes (in-process servers).
func (l *Lab) onDown(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stops = append(l.stops, f)
}

// GetText fetches url from inside ns on a new connection, bounded by timeout, and returns the body
// with surrounding white space trimmed.
func GetText(ns *NS, url string, timeout time.Duration) (string, error) {
	c := HTTPClient(ns)
	c.Timeout = timeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}
