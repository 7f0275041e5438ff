package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xdpsvc/lb/bench/lab"
)

func (r *runner) startAppliance(ctx context.Context) (*system, error) {
	if err := r.appliance.Start(ctx); err != nil {
		return nil, err
	}
	p := r.appliance.Process()
	if err := r.waitServing(ctx); err != nil {
		p.Stop()
		return nil, fmt.Errorf("appliance: %w\n%s", err, p.Output())
	}
	if _, ok := r.res.Modes[SystemAppliance]; !ok {
		r.res.Modes[SystemAppliance] = r.applianceModes()
	}
	return &system{pid: p.PID, appliance: true, stop: func() error { p.Stop(); return nil }}, nil
}

// applianceModes reads appliance_xdp_mode_info and the AF_XDP bind mode from /metrics.
func (r *runner) applianceModes() string {
	text, err := r.appliance.Metrics()
	if err != nil {
		return "unknown: " + err.Error()
	}
	var modes []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "appliance_xdp_mode_info") || strings.HasPrefix(line, "appliance_afxdp_mode_info") ||
			strings.HasPrefix(line, "appliance_xsk_mode_info") {
			modes = append(modes, line)
		}
	}
	if len(modes) == 0 {
		return "not reported"
	}
	return strings.Join(modes, "; ")
}

// waitServing waits (bounded) until a TCP round trip through the VIP to a backend's echo works.
func (r *runner) waitServing(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := r.client.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, echoPort).String())
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("ping"))
			if err == nil {
				buf := make([]byte, 4)
				_, err = io.ReadFull(c, buf)
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no TCP round trip through %s:%d within %v: %v", vip, echoPort, r.cfg.StartTimeout, last)
}

func (r *runner) startNFTables(ctx context.Context) (*system, error) {
	var oldForward []byte
	err := r.node.Do(func() error {
		var err error
		oldForward, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	})
	if err != nil {
		return nil, fmt.Errorf("ip_forward: %w", err)
	}
	stop := func() error {
		var errs []error
		// The table may be half-loaded or absent: delete what exists.
		if out, err := r.node.Run(context.Background(), "nft", "list", "tables"); err == nil && strings.Contains(string(out), "ip "+NFTTable) {
			if _, err := r.node.Run(context.Background(), "nft", "delete", "table", "ip", NFTTable); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, r.node.Do(func() error {
			_ = netlink.ConntrackTableFlush(netlink.ConntrackTable)
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", bytes.TrimSpace(oldForward), 0)
		}))
		return errors.Join(errs...)
	}
	if _, err := r.node.Run(ctx, "nft", "-f", filepath.Join(r.dir, "nft.conf")); err != nil {
		_ = stop()
		return nil, fmt.Errorf("load nftables ruleset: %w", err)
	}
	if err := r.waitServing(ctx); err != nil {
		_ = stop()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, ok := r.res.Modes[SystemNFTables]; !ok {
		r.res.Modes[SystemNFTables] = "kernel forwarding (no XDP); nft " + nftVersion(ctx, r.node)
	}
	return &system{stop: stop}, nil
}

func niceNote(n, napi int) string {
	return fmt.Sprintf("; appliance and ceiling processes at nice %d, the NAPI threads at nice %d while they run (0 for nftables and xdp-redirect)", n, napi)
}

// pinned is the command prefix of a user-space system under test: pinned to its core and, with
// Config.Nice, reniced.
func (r *runner) pinned() []string {
	argv := []string{"taskset", "-c", strconv.Itoa(r.cfg.ApplianceCPU)}
	if r.cfg.Nice != 0 {
		argv = append(argv, "nice", "-n", strconv.Itoa(r.cfg.Nice))
	}
	return argv
}

func nftVersion(ctx context.Context, n *lab.NS) string {
	out, err := n.Run(ctx, "nft", "--version")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func (r *runner) startCeiling(ctx context.Context) (*system, error) {
	p, err := r.startForwarder(ctx, "ceiling forwarder")
	if err != nil {
		return nil, err
	}
	if _, ok := r.res.Modes[SystemCeiling]; !ok {
		r.res.Modes[SystemCeiling] = "asavie/xdp redirect-all program, native (driver) XDP on ext0 via bpf_link; AF_XDP copy mode, two UMEMs (ext0 q0 → int0 q0)"
	}
	stop := func() error {
		p.Stop()
		// The bpf_link goes with the process; remove any XDP program left on ext0 anyway.
		_, _ = r.node.Run(context.Background(), "ip", "link", "set", "dev", lab.NodeExternalIface, "xdp", "off")
		if out := p.Output(); !strings.Contains(out, "Forwarded") {
			return fmt.Errorf("forwarder ended without stats: %s", out)
		}
		return nil
	}
	return &system{pid: p.PID, stop: stop}, nil
}

// startXDPRedirect attaches the in-kernel XDP redirect program (the forwarder helper in --mode xdp,
// in the node namespace) on ext0 toward int0. Frames XDP-redirected into a veth are dropped unless
// the peer has XDP or GRO on (ARCHITECTURE.md): GRO goes on for int0's peer in the switch namespace
// while this system runs, and back off after.
func (r *runner) startXDPRedirect(ctx context.Context) (*system, error) {
	peer := r.node.Cluster().SwitchPort
	if _, err := r.lab.Switch.Run(ctx, "ethtool", "-K", peer, "gro", "on"); err != nil {
		return nil, fmt.Errorf("GRO on %s (int0's peer): %w", peer, err)
	}
	groOff := func() { _, _ = r.lab.Switch.Run(context.Background(), "ethtool", "-K", peer, "gro", "off") }
	p, err := r.startForwarder(ctx, "xdp redirect program", "--mode", "xdp")
	if err != nil {
		groOff()
		return nil, err
	}
	if _, ok := r.res.Modes[SystemXDPRedirect]; !ok {
		r.res.Modes[SystemXDPRedirect] = "cilium/ebpf XDP program, native (driver) mode on ext0 via bpf_link: MAC rewrite + bpf_redirect to int0 (GRO on int0's peer)"
	}
	stop := func() error {
		p.Stop()
		_, _ = r.node.Run(context.Background(), "ip", "link", "set", "dev", lab.NodeExternalIface, "xdp", "off")
		groOff()
		if out := p.Output(); !strings.Contains(out, "Forwarded") {
			return fmt.Errorf("xdp redirect program ended without its final line: %s", out)
		}
		return nil
	}
	return &system{pid: p.PID, stop: stop}, nil
}

// startForwarder starts the forwarder helper (the ceiling, or with --mode xdp the XDP redirect) in
// the node namespace, pinned, from ext0 to int0, and waits until it says "ready". Its frames go to
// every backend of the Service, so that they fan out over the same backend links and sinks as the
// appliance's and the kernel's (1 flow: one backend; many: all).
func (r *runner) startForwarder(ctx context.Context, what string, args ...string) (*lab.Process, error) {
	var macs []string
	for _, b := range r.lab.Backends {
		macs = append(macs, b.Ifaces[0].MAC.String())
	}
	argv := append(r.pinned(), r.cfg.ForwarderArgv...)
	argv = append(argv, args...)
	argv = append(argv, "--in", lab.NodeExternalIface, "--out", lab.NodeClusterIface, "--dst-mac", strings.Join(macs, ","))
	p, err := r.node.Start(argv...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(r.cfg.StartTimeout)
	for !strings.Contains(p.Output(), "ready") {
		select {
		case <-p.Done():
			// The kernel releases the previous forwarder's queue binding shortly after it exits: retry.
			if strings.Contains(p.Output(), "busy") && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				if p, err = r.node.Start(argv...); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("%s exited: %v\n%s", what, p.Err(), p.Output())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("%s not ready after %v:\n%s", what, r.cfg.StartTimeout, p.Output())
		}
	}
	return p, nil
}
