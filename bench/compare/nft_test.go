package compare

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/bench/tstest"
)

const testManifests = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.5
  clusterIP: 198.19.0.20
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: 8080}
    - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
---
# a comment document separator line above is fine
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}, {name: dns, protocol: UDP, port: 5353}]
endpoints:
  - addresses: [198.18.1.22]
    conditions: {ready: true}
  - addresses: [198.18.1.21]
  - addresses: [198.18.1.23]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  clusterIP: 198.19.0.30
  ports: [{port: 443}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
`

func TestParseManifests(t *testing.T) {
	fronts, err := ParseManifests([]byte(testManifests))
	if err != nil {
		t.Fatal(err)
	}
	eps := []netip.AddrPort{netip.MustParseAddrPort("198.18.1.21:8080"), netip.MustParseAddrPort("198.18.1.22:8080")}
	dnsEps := []netip.AddrPort{netip.MustParseAddrPort("198.18.1.21:5353"), netip.MustParseAddrPort("198.18.1.22:5353")}
	want := []Frontend{
		{Service: "shop/web", PortName: "http", Proto: "tcp", Addr: netip.MustParseAddr("198.19.0.20"), Port: 80, Endpoints: eps},
		{Service: "shop/web", PortName: "dns", Proto: "udp", Addr: netip.MustParseAddr("198.19.0.20"), Port: 53, Endpoints: dnsEps},
		{Service: "default/lonely", Proto: "tcp", Addr: netip.MustParseAddr("198.19.0.30"), Port: 443},
		{Service: "shop/web", PortName: "http", Proto: "tcp", Addr: netip.MustParseAddr("198.19.1.5"), Port: 80, Endpoints: eps},
		{Service: "shop/web", PortName: "dns", Proto: "udp", Addr: netip.MustParseAddr("198.19.1.5"), Port: 53, Endpoints: dnsEps},
	}
	if len(fronts) != len(want) {
		t.Fatalf("got %d frontends %+v, want %d", len(fronts), fronts, len(want))
	}
	for i := range want {
		g, w := fronts[i], want[i]
		if g.Service != w.Service || g.PortName != w.PortName || g.Proto != w.Proto || g.Addr != w.Addr || g.Port != w.Port ||
			len(g.Endpoints) != len(w.Endpoints) {
			t.Errorf("frontend %d: got %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.Endpoints {
			if g.Endpoints[j] != w.Endpoints[j] {
				t.Errorf("frontend %d endpoint %d: got %v, want %v", i, j, g.Endpoints[j], w.Endpoints[j])
			}
		}
	}
}

func TestParseManifestsErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {bogus: 1}\n", "unknown field"},
		{"slice without service label", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\naddressType: IPv4\n", "no label"},
		{"bad address", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: nope, ports: [{port: 1}]}\n", `address "nope"`},
		{"not yaml", "apiVersion: [\n", "document 1"},
		{"name not a DNS label", "apiVersion: v1\nkind: Service\nmetadata: {name: 'a b'}\nspec: {ports: [{port: 1}]}\n", "DNS labels"},
		{"port name not a DNS label", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: 'x;y', port: 1}]}\n", "port name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifests([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNFTRuleset(t *testing.T) {
	fronts, err := ParseManifests([]byte(testManifests))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := NFTRuleset(&b, fronts); err != nil {
		t.Fatal(err)
	}
	rs := b.String()
	for _, want := range []string{
		"table ip kube-proxy {",
		"type nat hook prerouting priority dstnat",
		"type ipv4_addr . inet_proto . inet_service : verdict",
		"198.19.1.5 . tcp . 80 : goto service-shop_web_tcp_http",
		"198.19.0.20 . tcp . 80 : goto service-shop_web_tcp_http",
		"198.19.0.20 . udp . 53 : goto service-shop_web_udp_dns",
		"numgen random mod 2 vmap { 0 : goto endpoint-shop_web_tcp_http-0, 1 : goto endpoint-shop_web_tcp_http-1 }",
		"meta l4proto tcp dnat to 198.18.1.21:8080",
		"meta l4proto udp dnat to 198.18.1.22:5353",
		"chain service-default_lonely_tcp_443 {\n\t\treject",
		"masquerade fully-random",
		"ip daddr . meta l4proto . th dport vmap @service-ips",
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
	if strings.Count(rs, "chain service-shop_web_tcp_http {") != 1 {
		t.Errorf("the ClusterIP and the LoadBalancer IP must share one service chain:\n%s", rs)
	}
	if err := NFTRuleset(&b, nil); err == nil {
		t.Error("empty frontends: want an error")
	}
	// nft can check the ruleset without loading it (needs root for the netlink socket).
	if _, err := exec.LookPath("nft"); err == nil && tstest.IsRoot() {
		f := t.TempDir() + "/rules.nft"
		if err := os.WriteFile(f, []byte(rs), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("nft", "--check", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("nft --check: %v: %s\n%s", err, out, rs)
		}
	}
}

// FuzzParseManifests: any bytes give frontends or an error, never a panic, and every frontend parsed gives
// a ruleset whose map elements name only chains the ruleset defines.
func FuzzParseManifests(f *testing.F) {
	f.Add([]byte(testManifests))
	f.Add([]byte(manifests([]netip.Addr{netip.MustParseAddr("198.18.1.21")})))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 1.2.3.4, ports: [{port: 1, protocol: UDP}]}\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fronts, err := ParseManifests(b)
		if err != nil || len(fronts) == 0 {
			return
		}
		var out bytes.Buffer
		if err := NFTRuleset(&out, fronts); err != nil {
			return
		}
		rs := out.String()
		for _, fr := range fronts {
			if !strings.Contains(rs, "chain service-"+chainSuffix(fr)+" {") {
				t.Fatalf("frontend %+v has no service chain in\n%s", fr, rs)
			}
		}
	})
}
