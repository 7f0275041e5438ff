package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsvc/lb/cluster"
)

// Service is one Service this agent serves and the ports it serves it on.
type Service struct {
	// Key is the Service's "namespace/name".
	Key string
	// Ports are the endpoint's ports, as EndpointSlice ports: an unnamed port
	// (Name "") only alone, for single-port Services.
	Ports []cluster.AgentPort
}

// Config configures an agent.
type Config struct {
	// Name is the agent's member name in the cluster; default "<hostname>-<address>".
	Name string
	// Join lists "host:port" agent-cluster addresses of appliances (their
	// cluster.agents.bind, port DefaultPort by default; at least one).
	Join []string
	// Services are the Services this host serves (at least one).
	Services []Service
	// Address is the endpoint address traffic is sent to; default: the local
	// address that routes to the first join address.
	Address netip.Addr
	// Bind is the memberlist address and port of the agent; default
	// Address:DefaultPort. Its address must be Address or unspecified (the
	// agent then advertises Address): appliances take only endpoints at the
	// agent's own memberlist address.
	Bind netip.AddrPort
	// SecretKeyFile is the agent cluster's gossip key file (the appliances'
	// cluster.agents.secretKeyFile, never their cluster.secretKeyFile); "" = no
	// encryption.
	SecretKeyFile string
	// SecretKey is the key itself (read from SecretKeyFile by New when empty).
	SecretKey []byte
	// CheckInterval is the period of the TCP readiness checks.
	CheckInterval time.Duration
	// CheckTimeout bounds one TCP connect of a readiness check.
	CheckTimeout time.Duration
	// DrainTimeout is how long Run announces draining before it leaves.
	DrainTimeout time.Duration
	// AnnounceTimeout bounds each metadata update and the leave.
	AnnounceTimeout time.Duration
	// Admin is the listen address of /healthz and /metrics; "" = none.
	Admin string
	// Version is the software version announced in the metadata.
	Version string
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
	// Cluster, when set, adjusts the memberlist config before the node starts
	// (tests: faster timings).
	Cluster func(*cluster.Config)
}

// DefaultConfig returns the defaults of the command's flags.
func DefaultConfig() Config {
	return Config{
		CheckInterval:   time.Second,
		CheckTimeout:    500 * time.Millisecond,
		DrainTimeout:    10 * time.Second,
		AnnounceTimeout: 2 * time.Second,
		Version:         "dev",
	}
}

// DefaultPort is the agent cluster's customary port, on the agent (Bind) as
// on the appliances (cluster.agents.bind).
const DefaultPort = 7947

// portName is what EndpointSlice port names may be: a DNS label.
var portName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// dnsLabel is a namespace or Service name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ParseArgs parses the command line of `appliance agent` (without the
// command name) into a validated Config. Usage errors name the flag.
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var join, address, bind string
	fs.StringVar(&join, "join", "", "agent-cluster `ADDR[,ADDR]` of appliances (host:port, their cluster.agents.bind)")
	fs.Func("service", "Service `ns/name` this host serves; the next --port flags give its ports", func(v string) error {
		if err := checkServiceKey(v); err != nil {
			return err
		}
		c.Services = append(c.Services, Service{Key: v})
		return nil
	})
	fs.Func("port", "ports `N[,M|name=N][/udp]` of the last --service", func(v string) error {
		if len(c.Services) == 0 {
			return errors.New("--port before any --service")
		}
		s := &c.Services[len(c.Services)-1]
		for _, item := range strings.Split(v, ",") {
			p, err := parsePort(item)
			if err != nil {
				return err
			}
			s.Ports = append(s.Ports, p)
		}
		return nil
	})
	fs.StringVar(&address, "address", "", "endpoint `IP` (default: the local address that routes to the first --join)")
	fs.StringVar(&bind, "bind", "", "memberlist `IP:PORT` of the agent, IP being ADDRESS or unspecified (default: ADDRESS:7947)")
	fs.StringVar(&c.Name, "name", "", "member `NAME` (default: HOSTNAME-ADDRESS)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", "", "agent gossip key `FILE` (16, 24 or 32 bytes: the appliances' cluster.agents.secretKeyFile)")
	fs.DurationVar(&c.CheckInterval, "check-interval", c.CheckInterval, "period of the TCP readiness checks")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long to announce draining before leaving on SIGTERM/SIGINT")
	fs.StringVar(&c.Admin, "admin", "", "`ADDR` of /healthz and /metrics (default: none)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, j := range strings.Split(join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			c.Join = append(c.Join, j)
		}
	}
	if address != "" {
		a, err := netip.ParseAddr(address)
		if err != nil {
			return Config{}, fmt.Errorf("--address %q: %w", address, err)
		}
		c.Address = a
	}
	if bind != "" {
		b, err := netip.ParseAddrPort(bind)
		if err != nil {
			return Config{}, fmt.Errorf("--bind %q: %w", bind, err)
		}
		c.Bind = b
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func checkServiceKey(v string) error {
	ns, name, ok := strings.Cut(v, "/")
	if !ok || !dnsLabel.MatchString(ns) || !dnsLabel.MatchString(name) || len(ns) > 63 || len(name) > 63 {
		return fmt.Errorf("service %q: want namespace/name (lowercase DNS labels)", v)
	}
	return nil
}

// parsePort parses "N", "name=N", either with a "/tcp" or "/udp" suffix.
func parsePort(item string) (cluster.AgentPort, error) {
	p := cluster.AgentPort{Protocol: cluster.ProtocolTCP}
	rest := strings.TrimSpace(item)
	if num, proto, ok := strings.Cut(rest, "/"); ok {
		switch strings.ToLower(proto) {
		case "tcp":
		case "udp":
			p.Protocol = cluster.ProtocolUDP
		default:
			return p, fmt.Errorf("port %q: protocol %q: want tcp or udp", item, proto)
		}
		rest = num
	}
	if name, num, ok := strings.Cut(rest, "="); ok {
		if len(name) > 15 || !portName.MatchString(name) {
			return p, fmt.Errorf("port %q: name %q: want a lowercase DNS label of at most 15 characters", item, name)
		}
		p.Name, rest = name, num
	}
	n, err := strconv.ParseUint(rest, 10, 16)
	if err != nil || n == 0 {
		return p, fmt.Errorf("port %q: want a number 1-65535", item)
	}
	p.Port = uint16(n)
	return p, nil
}

// Validate checks c; the endpoint address and bind may still be unset
// (filled in by New).
func (c Config) Validate() error {
	if len(c.Join) == 0 {
		return errors.New("--join: at least one appliance address is required")
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("--join %q: %w", j, err)
		}
	}
	if len(c.Services) == 0 {
		return errors.New("--service: at least one is required")
	}
	seen := map[string]bool{}
	for _, s := range c.Services {
		if err := checkServiceKey(s.Key); err != nil {
			return fmt.Errorf("--service: %w", err)
		}
		if seen[s.Key] {
			return fmt.Errorf("--service %s: given twice", s.Key)
		}
		seen[s.Key] = true
		if len(s.Ports) == 0 {
			return fmt.Errorf("--service %s: no --port follows it", s.Key)
		}
		names := map[string]bool{}
		for _, p := range s.Ports {
			if p.Name == "" && len(s.Ports) > 1 {
				return fmt.Errorf("--service %s: port %d: every port needs a name (name=N) when there are several", s.Key, p.Port)
			}
			k := p.Name + "/" + p.Protocol.String()
			if names[k] {
				return fmt.Errorf("--service %s: port %q %s given twice", s.Key, p.Name, p.Protocol)
			}
			names[k] = true
		}
	}
	if c.Address.IsValid() && !unicast(c.Address) {
		return fmt.Errorf("--address %s: not a unicast address", c.Address)
	}
	if c.Bind.IsValid() && c.Address.IsValid() && !c.Bind.Addr().IsUnspecified() && c.Bind.Addr().Unmap() != c.Address.Unmap() {
		return fmt.Errorf("--bind %s: must be on --address %s or unspecified: appliances take only endpoints at the agent's own memberlist address", c.Bind, c.Address)
	}
	if c.CheckInterval <= 0 || c.CheckTimeout <= 0 || c.AnnounceTimeout <= 0 {
		return errors.New("--check-interval: must be positive")
	}
	if c.DrainTimeout < 0 {
		return errors.New("--drain-timeout: must not be negative")
	}
	if _, err := cluster.EncodeMeta(c.meta(cluster.EndpointReady)); err != nil {
		return fmt.Errorf("endpoints do not fit the cluster metadata (%d bytes at most): %w", cluster.MetaMaxBytes, err)
	}
	return nil
}

func unicast(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && !a.Is4In6() && !a.IsUnspecified() && !a.IsMulticast() &&
		!(a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

// meta is the metadata announced for state. Before New fills Address in,
// an IPv6 placeholder (the longest form) sizes Validate's check conservatively.
func (c Config) meta(state cluster.EndpointState) cluster.Meta {
	addr := c.Address
	if !addr.IsValid() {
		addr = netip.IPv6Loopback()
	}
	m := cluster.Meta{Role: cluster.RoleBackend, Version: c.Version}
	m.ClusterIPs = []netip.Addr{addr}
	for _, s := range c.Services {
		m.Endpoints = append(m.Endpoints, cluster.AgentEndpoint{Service: s.Key, Addr: addr, Ports: s.Ports, State: state})
	}
	return m
}

// readKey reads a key file as the appliance does: its trimmed bytes.
func readKey(path string) ([]byte, error) {
	k, err := cluster.ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-key-file: %w", err)
	}
	return k, nil
}
