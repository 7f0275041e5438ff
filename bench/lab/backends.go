package lab

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/xdpsvc/lb/bench/backend"
)

// Backend ports on every backend namespace (those of configs/services.yaml).
const (
	// BackendHTTPPort serves the backend's HTTP endpoints.
	BackendHTTPPort = 8080
	// BackendUDPPort answers UDP echo.
	BackendUDPPort = 9000
	// BackendTCPEchoPort echoes TCP.
	BackendTCPEchoPort = 7000
)

// BackendArgs is the `bench backend` command line for backend namespace b (without the program path).
func BackendArgs(b *NS) []string {
	return []string{"backend", "--name", b.Short,
		"--http", ":" + strconv.Itoa(BackendHTTPPort),
		"--udp", ":" + strconv.Itoa(BackendUDPPort),
		"--tcp-echo", ":" + strconv.Itoa(BackendTCPEchoPort)}
}

// StartBackends runs a backend.Server in this process for every backend namespace, named after it (b1, b2,
// ...) on the ports above, with sockets opened inside the namespaces. The servers stop on Down. cfg supplies
// the bounds (its name and addresses are replaced); it returns the servers in namespace order.
func (l *Lab) StartBackends(cfg backend.Config) ([]*backend.Server, error) {
	var servers []*backend.Server
	for _, b := range l.Backends {
		c := cfg
		c.Name = b.Short
		s, err := backend.New(c)
		if err != nil {
			return nil, err
		}
		var ls backend.Listeners
		if ls.HTTP, err = b.Listen("tcp4", net.JoinHostPort(b.Addr().String(), strconv.Itoa(BackendHTTPPort))); err != nil {
			return nil, err
		}
		if ls.TCPEcho, err = b.Listen("tcp4", net.JoinHostPort(b.Addr().String(), strconv.Itoa(BackendTCPEchoPort))); err != nil {
			return nil, err
		}
		if ls.UDP, err = b.ListenPacket("udp4", net.JoinHostPort(b.Addr().String(), strconv.Itoa(BackendUDPPort))); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ls) }()
		l.onDown(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					l.logf("backend %s: %v", b.Short, err)
				}
			case <-time.After(5 * time.Second):
				l.logf("backend %s: did not stop within 5 s", b.Short)
			}
		})
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("lab %s: no backend namespaces", l.Prefix())
	}
	return servers, nil
}
