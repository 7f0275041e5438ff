package compare

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// NFTTable is the nftables table the kernel system uses, named as kube-proxy's nftables mode names its own.
const NFTTable = "kube-proxy"

// masqueradeMark is kube-proxy's default masquerade bit (--masquerade-bit 14).
const masqueradeMark = "0x00004000"

// Frontend is one (address, protocol, port) a Service answers on and the endpoints it forwards to.
type Frontend struct {
	// Service is namespace/name.
	Service string
	// PortName is the Service port's name ("" when unnamed).
	PortName string
	// Proto is "tcp" or "udp".
	Proto string
	// Addr and Port are where the Service answers (ClusterIP or LoadBalancer IP).
	Addr netip.Addr
	Port uint16
	// Endpoints are the ready endpoints' address and target port, sorted.
	Endpoints []netip.AddrPort
}

// ParseManifests decodes the v1 Service and discovery.k8s.io/v1 EndpointSlice documents of a multi-document
// YAML stream with the upstream Kubernetes types and returns every IPv4 frontend (ClusterIP and LoadBalancer
// IP, from spec.loadBalancerIP or the metallb.universe.tf/loadBalancerIPs annotation) with its ready
// endpoints, sorted by address, protocol and port. Other kinds are ignored; NodePorts are not generated.
func ParseManifests(manifests []byte) ([]Frontend, error) {
	var svcs []corev1.Service
	slices := map[string][]discoveryv1.EndpointSlice{}
	for i, doc := range splitYAML(manifests) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i+1, err)
		}
		switch {
		case meta.APIVersion == "v1" && meta.Kind == "Service":
			var s corev1.Service
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				return nil, fmt.Errorf("manifest document %d: Service: %w", i+1, err)
			}
			svcs = append(svcs, s)
		case meta.APIVersion == "discovery.k8s.io/v1" && meta.Kind == "EndpointSlice":
			var es discoveryv1.EndpointSlice
			if err := yaml.UnmarshalStrict(doc, &es); err != nil {
				return nil, fmt.Errorf("manifest document %d: EndpointSlice: %w", i+1, err)
			}
			name := es.Labels[discoveryv1.LabelServiceName]
			if name == "" {
				return nil, fmt.Errorf("manifest document %d: EndpointSlice %s/%s: no label %s", i+1, es.Namespace, es.Name, discoveryv1.LabelServiceName)
			}
			key := nsOrDefault(es.Namespace) + "/" + name
			slices[key] = append(slices[key], es)
		}
	}
	var out []Frontend
	for _, s := range svcs {
		key := nsOrDefault(s.Namespace) + "/" + s.Name
		if !dnsLabel.MatchString(nsOrDefault(s.Namespace)) || !dnsLabel.MatchString(s.Name) {
			return nil, fmt.Errorf("Service %q: namespace and name must be DNS labels (%s)", key, dnsLabel)
		}
		for _, p := range s.Spec.Ports {
			if p.Name != "" && !dnsLabel.MatchString(p.Name) {
				return nil, fmt.Errorf("Service %s: port name %q: must be a DNS label (%s)", key, p.Name, dnsLabel)
			}
		}
		var addrs []netip.Addr
		for _, a := range append([]string{s.Spec.ClusterIP}, lbIPs(s)...) {
			if a == "" || a == corev1.ClusterIPNone {
				continue
			}
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("Service %s: address %q: %w", key, a, err)
			}
			if ip.Is4() {
				addrs = append(addrs, ip)
			}
		}
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" {
				continue // SCTP: kube-proxy handles it, this comparison does not need it
			}
			eps := endpointsFor(slices[key], p)
			for _, a := range addrs {
				out = append(out, Frontend{Service: key, PortName: p.Name, Proto: proto, Addr: a, Port: uint16(p.Port), Endpoints: eps})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Addr != b.Addr {
			return a.Addr.Less(b.Addr)
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.Port < b.Port
	})
	return out, nil
}

// dnsLabel is what Kubernetes allows in namespace, Service and port names; it keeps generated chain names
// valid nft identifiers. Underscores never occur in it, so chainSuffix's "_" separators cannot collide.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func nsOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func lbIPs(s corev1.Service) []string {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	var ips []string
	if s.Spec.LoadBalancerIP != "" {
		ips = append(ips, s.Spec.LoadBalancerIP)
	}
	if a := s.Annotations["metallb.universe.tf/loadBalancerIPs"]; a != "" {
		for _, ip := range strings.Split(a, ",") {
			if ip = strings.TrimSpace(ip); ip != "" && ip != s.Spec.LoadBalancerIP {
				ips = append(ips, ip)
			}
		}
	}
	return ips
}

// endpointsFor resolves a Service port to the ready endpoints' address:port, as kube-proxy does: the
// EndpointSlice port with the Service port's name (and protocol) gives the target port.
func endpointsFor(slices []discoveryv1.EndpointSlice, sp corev1.ServicePort) []netip.AddrPort {
	seen := map[netip.AddrPort]bool{}
	var out []netip.AddrPort
	for _, es := range slices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32 = -1
		for _, ep := range es.Ports {
			name, proto := "", corev1.ProtocolTCP
			if ep.Name != nil {
				name = *ep.Name
			}
			if ep.Protocol != nil {
				proto = *ep.Protocol
			}
			spProto := sp.Protocol
			if spProto == "" {
				spProto = corev1.ProtocolTCP
			}
			if name == sp.Name && proto == spProto && ep.Port != nil {
				port = *ep.Port
			}
		}
		if port < 0 && sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal > 0 && len(es.Ports) == 0 {
			port = sp.TargetPort.IntVal
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, e := range es.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || !ip.Is4() {
					continue
				}
				ap := netip.AddrPortFrom(ip, uint16(port))
				if !seen[ap] {
					seen[ap] = true
					out = append(out, ap)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// splitYAML splits a multi-document YAML stream at lines that are exactly "---".
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		// a separator line may carry trailing spaces or a comment; drop the rest of that line
		if i := bytes.IndexByte(d, '\n'); i >= 0 && len(bytes.TrimSpace(d[:i])) == 0 || i >= 0 && bytes.HasPrefix(bytes.TrimSpace(d[:i]), []byte("#")) {
			d = d[i+1:]
		}
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// chainSuffix is a chain name part made of the Service, protocol and port name, as kube-proxy makes
// "service-HASH-ns/name/proto/port" (kept to letters, digits, - and _ so it needs no quoting).
func chainSuffix(f Frontend) string {
	name := f.PortName
	if name == "" {
		name = fmt.Sprint(f.Port)
	}
	r := strings.NewReplacer("/", "_", ".", "_")
	return r.Replace(f.Service + "_" + f.Proto + "_" + name)
}

// NFTRuleset writes an nftables ruleset (for nft -f) in the shape kube-proxy's nftables mode generates:
// table ip kube-proxy with a service-ips verdict map from (daddr . l4proto . dport) to a per-Service-port
// chain; that chain marks the packet for masquerade and picks an endpoint with numgen random mod N vmap;
// each endpoint chain DNATs; nat postrouting masquerades marked packets (fully-random source ports);
// conntrack does the rest. Frontends without endpoints get kube-proxy's reject. The ruleset begins by
// (re)creating and flushing the table, so loading it twice is harmless.
func NFTRuleset(w io.Writer, fronts []Frontend) error {
	if len(fronts) == 0 {
		return errors.New("nft ruleset: no frontends")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s\nflush table ip %s\n", NFTTable, NFTTable)
	fmt.Fprintf(&b, "table ip %s {\n", NFTTable)
	b.WriteString("\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n")
	b.WriteString("\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n")
	b.WriteString("\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump masquerading\n\t}\n")
	b.WriteString("\tchain filter-forward {\n\t\ttype filter hook forward priority -101; policy accept;\n\t\tct state invalid drop\n\t}\n")
	fmt.Fprintf(&b, "\tchain mark-for-masquerade {\n\t\tmeta mark set meta mark | %s\n\t}\n", masqueradeMark)
	fmt.Fprintf(&b, "\tchain masquerading {\n\t\tmeta mark & %s == 0 return\n\t\tmeta mark set meta mark ^ %s\n\t\tmasquerade fully-random\n\t}\n", masqueradeMark, masqueradeMark)
	var elems []string
	done := map[string]bool{}
	for _, f := range fronts {
		if !f.Addr.Is4() || f.Port == 0 || (f.Proto != "tcp" && f.Proto != "udp") {
			return fmt.Errorf("nft ruleset: frontend %s %s:%d: want IPv4, tcp or udp, a port", f.Service, f.Addr, f.Port)
		}
		sfx := chainSuffix(f)
		elems = append(elems, fmt.Sprintf("%s . %s . %d : goto service-%s", f.Addr, f.Proto, f.Port, sfx))
		if done[sfx] {
			continue // the ClusterIP and LoadBalancer IP of one port share the chain
		}
		done[sfx] = true
		fmt.Fprintf(&b, "\tchain service-%s {\n", sfx)
		if len(f.Endpoints) == 0 {
			b.WriteString("\t\treject\n\t}\n")
			continue
		}
		b.WriteString("\t\tjump mark-for-masquerade\n")
		var picks []string
		for i := range f.Endpoints {
			picks = append(picks, fmt.Sprintf("%d : goto endpoint-%s-%d", i, sfx, i))
		}
		fmt.Fprintf(&b, "\t\tnumgen random mod %d vmap { %s }\n\t}\n", len(f.Endpoints), strings.Join(picks, ", "))
		for i, ep := range f.Endpoints {
			fmt.Fprintf(&b, "\tchain endpoint-%s-%d {\n\t\tip saddr %s jump mark-for-masquerade\n\t\tmeta l4proto %s dnat to %s\n\t}\n",
				sfx, i, ep.Addr(), f.Proto, ep)
		}
	}
	fmt.Fprintf(&b, "\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { %s }\n\t}\n",
		strings.Join(elems, ",\n\t\t\t"))
	b.WriteString("\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
