package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// The readers of scalar values: each checks one node, records an error with the node's line when
// the value is wrong, and reports whether it read a value. The *Into forms return a handler that
// stores the value, for keys that need nothing else.

func (w *walker) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		w.errf(n.Line, field, "must be a string, not %s", kindName(n))
		return "", false
	}
	if n.ShortTag() == "!!null" {
		return "", true
	}
	return n.Value, true
}

// nonEmptyStr is str for fields that may not be empty.
func (w *walker) nonEmptyStr(n *yaml.Node, field string) (string, bool) {
	s, ok := w.str(n, field)
	if ok && s == "" {
		w.errf(n.Line, field, "must not be empty")
		return "", false
	}
	return s, ok
}

func (w *walker) boolean(n *yaml.Node, field string) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		w.errf(n.Line, field, "must be true or false")
		return false, false
	}
	return b, true
}

// boolInto stores a true or false into *b.
func (w *walker) boolInto(b *bool) handler {
	return func(n *yaml.Node, field string) {
		if v, ok := w.boolean(n, field); ok {
			*b = v
		}
	}
}

// durationInto parses a Go duration ("250ms", "2s") greater than zero into *d.
func (w *walker) durationInto(d *time.Duration) handler {
	return func(n *yaml.Node, field string) {
		s, ok := w.str(n, field)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			w.errf(n.Line, field, "invalid duration %q: want a positive duration such as 250ms or 2s", s)
			return
		}
		*d = v
	}
}

// intInto parses an integer in [lo, hi] into *v.
func (w *walker) intInto(lo, hi int, v *int) handler {
	return func(n *yaml.Node, field string) {
		var x int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil {
			w.errf(n.Line, field, "must be an integer")
			return
		}
		if x < lo || x > hi {
			w.errf(n.Line, field, "must be between %d and %d", lo, hi)
			return
		}
		*v = x
	}
}

// prefix parses a masked CIDR without a zone, refusing IPv4-mapped IPv6 prefixes.
func (w *walker) prefix(n *yaml.Node, field string) (netip.Prefix, bool) {
	s, ok := w.str(n, field)
	if !ok {
		return netip.Prefix{}, false
	}
	pr, err := netip.ParsePrefix(s)
	if err != nil || pr.Addr().Zone() != "" {
		w.errf(n.Line, field, "invalid CIDR %q", s)
		return netip.Prefix{}, false
	}
	if pr.Addr().Is4In6() {
		w.errf(n.Line, field, "invalid CIDR %q: IPv4-mapped IPv6 prefixes are not allowed", s)
		return netip.Prefix{}, false
	}
	if pr.Masked() != pr {
		w.errf(n.Line, field, "invalid CIDR %q: host bits set (did you mean %s?)", s, pr.Masked())
		return netip.Prefix{}, false
	}
	return pr, true
}

// hostPort parses host:port with a port in 1-65535 and a host that is empty, an IP address or a
// hostname.
func (w *walker) hostPort(n *yaml.Node, field string) (string, bool) {
	s, ok := w.str(n, field)
	if !ok {
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		w.errf(n.Line, field, "invalid address %q: want host:port", s)
		return "", false
	}
	if pn, err := strconv.ParseUint(port, 10, 16); err != nil || pn == 0 {
		w.errf(n.Line, field, "invalid address %q: port must be 1-65535", s)
		return "", false
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			w.errf(n.Line, field, "invalid address %q: host is neither an IP address nor a hostname", s)
			return "", false
		}
	}
	return s, true
}

// hostPortInto stores a valid host:port into *s.
func (w *walker) hostPortInto(s *string) handler {
	return func(n *yaml.Node, field string) {
		if v, ok := w.hostPort(n, field); ok {
			*s = v
		}
	}
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// portRange parses FIRST-LAST (or one port) with 1 <= FIRST <= LAST <= 65535.
func (w *walker) portRange(n *yaml.Node, field string) (PortRange, bool) {
	s, ok := w.str(n, field)
	if !ok {
		return PortRange{}, false
	}
	r, err := ParsePortRange(s)
	if err != nil {
		w.errf(n.Line, field, "%v", err)
		return PortRange{}, false
	}
	return r, true
}

// bindInto stores an IP:port that a daemon binds as given (a host name is refused: nothing would
// resolve it).
func (w *walker) bindInto(v *string) handler {
	return func(n *yaml.Node, field string) {
		s, ok := w.hostPort(n, field)
		if !ok {
			return
		}
		if _, err := netip.ParseAddrPort(s); err != nil {
			w.errf(n.Line, field, "invalid address %q: want IP:port (the daemon binds it as given; a host name is not resolved)", s)
			return
		}
		*v = s
	}
}

// hostPortsInto appends every valid host:port of a list to *v.
func (w *walker) hostPortsInto(v *[]string) handler {
	return func(n *yaml.Node, field string) {
		w.seq(n, field, func(_ int, n *yaml.Node, f string) {
			if s, ok := w.hostPort(n, f); ok {
				*v = append(*v, s)
			}
		})
	}
}
