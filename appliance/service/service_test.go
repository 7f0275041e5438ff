package service

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/config"
)

const testConfig = `
node: {name: t}
network:
  serviceCIDR: 198.19.0.0/24
  nodePortRange: 30000-30009
  loadBalancerPools:
    - name: default
      cidrs: [198.19.1.0/30]
`

func mustConfig(t testing.TB, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y), "lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustObjects(t testing.TB, y string) []Object {
	t.Helper()
	objs, err := ParseManifests([]byte(y), "svc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func svcYAML(name, typ, extra string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  type: %s\n%s", name, typ, extra)
}

const port80 = "  ports:\n  - port: 80\n"

func build(t testing.TB, cfg *config.Config, prev *State, docs ...string) (*Snapshot, *State, error) {
	t.Helper()
	return Build(mustObjects(t, strings.Join(docs, "---\n")), cfg, prev)
}

func TestBuildErrors(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	tests := []struct {
		name string
		docs []string
		want []string
	}{
		{"nodePort out of range is rejected", []string{svcYAML("a", "NodePort", "  ports:\n  - port: 80\n    nodePort: 20000\n")},
			[]string{"svc.yaml:9: spec.ports[0].nodePort: Invalid value: 20000: provided port is not in the valid range. The range of valid ports is 30000-30009"}},
		{"nodePort collision across services is rejected", []string{
			svcYAML("a", "NodePort", "  ports:\n  - port: 80\n    nodePort: 30001\n"),
			svcYAML("b", "NodePort", "  ports:\n  - port: 81\n    protocol: UDP\n    nodePort: 30001\n")},
			[]string{"svc.yaml:20: spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated"}},
		{"clusterIP outside serviceCIDR is rejected", []string{svcYAML("a", "ClusterIP", "  clusterIP: 10.0.0.1\n"+port80)},
			[]string{`svc.yaml:7: spec.clusterIPs[0]: Invalid value: "10.0.0.1": failed to allocate IP 10.0.0.1: the provided network does not match the current range`}},
		{"clusterIP network address is not in the valid range", []string{svcYAML("a", "ClusterIP", "  clusterIP: 198.19.0.0\n"+port80)},
			[]string{"is not in the valid range. The range of valid IPs is 198.19.0.0/24"}},
		{"clusterIP broadcast address is not in the valid range", []string{svcYAML("a", "ClusterIP", "  clusterIP: 198.19.0.255\n"+port80)},
			[]string{"the provided IP (198.19.0.255) is not in the valid range"}},
		{"clusterIP collision is rejected", []string{svcYAML("a", "ClusterIP", "  clusterIP: 198.19.0.10\n"+port80), svcYAML("b", "ClusterIP", "  clusterIP: 198.19.0.10\n"+port80)},
			[]string{"provided IP is already allocated"}},
		{"nodePort on a ClusterIP service is forbidden", []string{svcYAML("a", "ClusterIP", "  ports:\n  - port: 80\n    nodePort: 30001\n")},
			[]string{"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"}},
		{"multi-port service needs port names", []string{svcYAML("a", "ClusterIP", "  ports:\n  - port: 80\n  - port: 81\n")},
			[]string{"svc.yaml:9: spec.ports[1].name: Required value"}},
		{"duplicate port is rejected", []string{svcYAML("a", "ClusterIP", "  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 80}\n")},
			[]string{`spec.ports[1]: Duplicate value: "80/TCP"`}},
		{"unsupported type", []string{svcYAML("a", "Magic", port80)}, []string{`spec.type: Unsupported value: "Magic"`}},
		{"headless NodePort is invalid", []string{svcYAML("a", "NodePort", "  clusterIP: None\n"+port80)}, []string{"may not be set to 'None' for NodePort services"}},
		{"affinity timeout bounds", []string{svcYAML("a", "ClusterIP", "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n"+port80)},
			[]string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0"}},
		{"duplicate services are rejected", []string{svcYAML("a", "ClusterIP", port80), svcYAML("a", "ClusterIP", port80)},
			[]string{`metadata.name: Duplicate value: "a"`}},
		{"endpointslice for an unknown service", []string{"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: x\n  labels: {kubernetes.io/service-name: ghost}\naddressType: IPv4\nendpoints: []\n"},
			[]string{`svc.yaml:5: metadata.labels[kubernetes.io/service-name]: Not found: "ghost"`}},
		{"endpoint with invalid address", []string{svcYAML("a", "ClusterIP", port80), "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: x\n  labels: {kubernetes.io/service-name: a}\naddressType: IPv4\nendpoints:\n- addresses: [198.18.1.300]\n"},
			[]string{`svc.yaml:17: endpoints[0].addresses[0]: Invalid value: "198.18.1.300": must be a valid IPv4 address`}},
		{"requested loadBalancerIP outside the pools", []string{svcYAML("a", "LoadBalancer", "  loadBalancerIP: 198.19.2.1\n"+port80)},
			[]string{`spec.loadBalancerIP: Invalid value: "198.19.2.1": not in any loadBalancerPool`}},
		{"requested loadBalancerIP already in use", []string{
			svcYAML("a", "LoadBalancer", "  loadBalancerIP: 198.19.1.1\n"+port80),
			"apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  annotations: {metallb.universe.tf/loadBalancerIPs: 198.19.1.1}\nspec:\n  type: LoadBalancer\n" + port80},
			[]string{`metadata.annotations[metallb.universe.tf/loadBalancerIPs]: Invalid value: "198.19.1.1": already assigned to Service default/a`}},
		{"nodePort range exhausted", func() []string {
			var d []string
			for i := range 11 {
				d = append(d, svcYAML(fmt.Sprintf("s%02d", i), "NodePort", port80))
			}
			return d
		}(), []string{"failed to allocate a nodePort: range is full"}},
		{"all errors are reported, not just the first", []string{
			svcYAML("a", "NodePort", "  ports:\n  - port: 80\n    nodePort: 20000\n"),
			svcYAML("b", "Magic", port80)},
			[]string{"nodePort: Invalid value: 20000", "spec.type: Unsupported value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, st, err := build(t, cfg, nil, tt.docs...)
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if snap != nil || st != nil {
				t.Error("a failed build returned a snapshot or state: half-applied")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParseManifestErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown kind", "apiVersion: apps/v1\nkind: Deployment\n", `svc.yaml:2: kind: Unsupported value: "Deployment"`},
		{"wrong apiVersion", "apiVersion: v2\nkind: Service\n", `svc.yaml:1: apiVersion: Unsupported value: "v2"`},
		{"unknown field (kubectl --validate=strict)", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  portz: []\n", `svc.yaml:5: spec.portz: strict decoding error: unknown field "spec.portz"`},
		{"broken YAML", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n", "svc.yaml:"},
		{"wrong type", "apiVersion: v1\nkind: Service\nspec:\n  ports:\n  - port: eighty\n", "svc.yaml:"},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nkind: Service\n", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifests([]byte(tt.yaml), "svc.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestBuildSemantics: changing a Service's type and restarting keep or release its values as
// kube-apiserver does.
func TestBuildSemantics(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	t.Run("clusterIP to nodePort keeps the clusterIP", func(t *testing.T) {
		s1, st, err := build(t, cfg, nil, svcYAML("a", "ClusterIP", port80))
		if err != nil {
			t.Fatal(err)
		}
		s2, _, err := build(t, cfg, st, svcYAML("a", "NodePort", port80))
		if err != nil {
			t.Fatal(err)
		}
		if s1.Services[0].ClusterIPs[0] != s2.Services[0].ClusterIPs[0] || s2.Services[0].Ports[0].NodePort == 0 {
			t.Errorf("before %+v after %+v", s1.Services[0], s2.Services[0])
		}
	})
	t.Run("nodePort to clusterIP releases the nodePort", func(t *testing.T) {
		_, st, err := build(t, cfg, nil, svcYAML("a", "NodePort", port80))
		if err != nil {
			t.Fatal(err)
		}
		np := st.Services["default/a"].NodePorts["80/TCP"]
		_, st2, err := build(t, cfg, st, svcYAML("a", "ClusterIP", port80))
		if err != nil {
			t.Fatal(err)
		}
		if len(st2.Services["default/a"].NodePorts) != 0 {
			t.Errorf("nodePort kept: %v", st2.Services["default/a"])
		}
		s3, _, err := build(t, cfg, st2, svcYAML("a", "ClusterIP", port80), svcYAML("b", "NodePort", fmt.Sprintf("  ports:\n  - port: 80\n    nodePort: %d\n", np)))
		if err != nil {
			t.Fatalf("released nodePort %d not reusable: %v", np, err)
		}
		_ = s3
	})
	t.Run("deleting a service releases its nodePort", func(t *testing.T) {
		_, st, err := build(t, cfg, nil, svcYAML("a", "NodePort", "  ports:\n  - port: 80\n    nodePort: 30005\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, st2, err := build(t, cfg, st, svcYAML("b", "NodePort", "  ports:\n  - port: 80\n    nodePort: 30005\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st2.Services["default/a"]; ok {
			t.Error("deleted service still in state")
		}
	})
	t.Run("restart keeps every value", func(t *testing.T) {
		docs := []string{svcYAML("a", "LoadBalancer", port80), svcYAML("b", "NodePort", port80), svcYAML("c", "ClusterIP", port80)}
		s1, st, err := build(t, cfg, nil, docs...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "t.state.json")
		if err := SaveState(path, st); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		// A new Service whose hash would land on a taken value must not move the old ones.
		s2, st2, err := build(t, cfg, loaded, append(docs, svcYAML("d", "LoadBalancer", port80))...)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range st.Services {
			if !reflect.DeepEqual(v, st2.Services[k]) {
				t.Errorf("%s: before %+v after %+v", k, v, st2.Services[k])
			}
		}
		for i := range s1.Services {
			if s1.Services[i].Ports[0].ID != s2.Services[i].Ports[0].ID {
				t.Errorf("port ID of %s changed", s1.Services[i].Key())
			}
		}
	})
}

// TestBuildAllocationRules: the allocation rules kube-apiserver applies, as Build applies them.
func TestBuildAllocationRules(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	t.Run("allocation is independent of file order", func(t *testing.T) {
		var docs []string
		for i := range 8 {
			typ := []string{"ClusterIP", "NodePort", "LoadBalancer"}[i%3]
			docs = append(docs, svcYAML(fmt.Sprintf("s%d", i), typ, port80))
		}
		_, want, err := build(t, cfg, nil, docs...)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 5 {
			r.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
			_, got, err := build(t, cfg, nil, docs...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("order changed allocation:\n%+v\n%+v", want, got)
			}
		}
	})
	t.Run("pool exhausted leaves the external IP pending and serves the nodePort", func(t *testing.T) {
		var docs []string
		for i := range 5 { // pool /30 has 4 addresses
			docs = append(docs, svcYAML(fmt.Sprintf("lb%d", i), "LoadBalancer", port80))
		}
		snap, _, err := build(t, cfg, nil, docs...)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, s := range snap.Services {
			if s.Pending {
				pending++
				if _, ok := snap.NodePorts[NodePortKey{s.Ports[0].NodePort, TCP}]; !ok {
					t.Errorf("%s pending without nodePort frontend", s.Key())
				}
			}
		}
		if pending != 1 {
			t.Errorf("%d pending, want 1", pending)
		}
	})
	t.Run("allocateLoadBalancerNodePorts false allocates no nodePort", func(t *testing.T) {
		snap, _, err := build(t, cfg, nil, svcYAML("a", "LoadBalancer", "  allocateLoadBalancerNodePorts: false\n"+port80))
		if err != nil {
			t.Fatal(err)
		}
		if s := snap.Services[0]; s.Ports[0].NodePort != 0 || !s.ExternalIP.IsValid() {
			t.Errorf("%+v", s)
		}
	})
	t.Run("one nodePort for TCP and UDP of the same port", func(t *testing.T) {
		snap, _, err := build(t, cfg, nil, svcYAML("dns", "NodePort", "  ports:\n  - {name: t, port: 53, protocol: TCP}\n  - {name: u, port: 53, protocol: UDP}\n"))
		if err != nil {
			t.Fatal(err)
		}
		p := snap.Services[0].Ports
		if p[0].NodePort == 0 || p[0].NodePort != p[1].NodePort {
			t.Errorf("nodePorts %d %d", p[0].NodePort, p[1].NodePort)
		}
	})
	t.Run("clusterIP is never the network or broadcast address", func(t *testing.T) {
		small := mustConfig(t, "network: {serviceCIDR: 198.19.0.0/30}\n")
		snap, _, err := build(t, small, nil, svcYAML("a", "ClusterIP", port80), svcYAML("b", "ClusterIP", port80))
		if err != nil {
			t.Fatal(err)
		}
		got := []netip.Addr{snap.Services[0].ClusterIPs[0], snap.Services[1].ClusterIPs[0]}
		for _, a := range got {
			if a.String() != "198.19.0.1" && a.String() != "198.19.0.2" {
				t.Errorf("allocated %s", a)
			}
		}
		if _, _, err := build(t, small, nil, svcYAML("a", "ClusterIP", port80), svcYAML("b", "ClusterIP", port80), svcYAML("c", "ClusterIP", port80)); err == nil || !strings.Contains(err.Error(), "range is full") {
			t.Errorf("third service: %v", err)
		}
	})
	t.Run("session affinity defaults to 10800 seconds", func(t *testing.T) {
		snap, _, err := build(t, cfg, nil, svcYAML("a", "ClusterIP", "  sessionAffinity: ClientIP\n"+port80))
		if err != nil {
			t.Fatal(err)
		}
		if s := snap.Services[0]; !s.SessionAffinityClientIP || s.AffinityTimeoutSeconds != 10800 {
			t.Errorf("%+v", s)
		}
	})
}

func TestLabExample(t *testing.T) {
	cfg, err := config.Load("../../configs/lab-node-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := LoadManifests(cfg.Services.Manifests)
	if err != nil {
		t.Fatal(err)
	}
	snap, st, err := Build(objs, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	web := snap.Lookup("default/web")
	if web == nil || web.Type != TypeLoadBalancer || !cfg.Network.LoadBalancerPools[0].CIDRs[0].Contains(web.ExternalIP) {
		t.Fatalf("web: %+v", web)
	}
	if len(web.Ports) != 2 || web.Ports[1].Protocol != UDP || web.Ports[0].NodePort == 0 {
		t.Errorf("web ports %+v", web.Ports)
	}
	eps := web.Ports[0].Endpoints
	if len(eps) != 3 || !eps[0].Ready || eps[1].Ready || !eps[2].Terminating || !eps[2].Serving || eps[0].Port != 8080 || eps[0].Zone != "lab-a" {
		t.Errorf("web endpoints %+v", eps)
	}
	if id := snap.Frontends[Frontend{web.ExternalIP, 80, TCP}]; id != web.Ports[0].ID {
		t.Errorf("VIP frontend %d, want %d", id, web.Ports[0].ID)
	}
	if id := snap.Frontends[Frontend{web.ClusterIPs[0], 9000, UDP}]; id != web.Ports[1].ID {
		t.Errorf("clusterIP UDP frontend %d", id)
	}
	np := snap.Lookup("default/web-nodeport")
	if np.Ports[0].NodePort != 30080 || np.Ports[1].NodePort == 0 {
		t.Errorf("nodeports %+v", np.Ports)
	}
	if got := np.Ports[1].Endpoints; len(got) != 2 || got[0].Port != 8081 {
		t.Errorf("named targetPort not resolved: %+v", got)
	}
	h := snap.Lookup("default/web-headless")
	if !h.Headless || h.LoadBalanced() || len(h.Ports[0].Endpoints) != 2 || h.Ports[0].Endpoints[0].Hostname != "web-0" {
		t.Errorf("headless %+v", h)
	}
	if svc, port := snap.Port(web.Ports[1].ID); svc != web || port.Port != 9000 {
		t.Errorf("Port(%d) = %v %v", web.Ports[1].ID, svc, port)
	}
	if len(st.Services) != 4 {
		t.Errorf("state %+v", st)
	}
}

func TestBrokenManifestsFolder(t *testing.T) {
	cfg, err := config.Load("../../configs/testdata/lab-broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := LoadManifests(cfg.Services.Manifests)
	if err == nil {
		_, _, err = Build(objs, cfg, nil)
	}
	if err == nil {
		t.Fatal("broken manifests accepted")
	}
	for _, w := range []string{"broken-yaml.yaml:3:", "misc.yaml:2: kind: Unsupported value", "misc.yaml:12: spec.bogusField"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	// With the parse errors out of the way, Build reports the semantic ones.
	var good []Object
	for _, f := range []string{"nodeport-out-of-range.yaml", "collisions.yaml"} {
		data, _ := os.ReadFile(filepath.Join("../../configs/testdata/broken", f))
		o, err := ParseManifests(data, f)
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, o...)
	}
	_, _, err = Build(good, cfg, nil)
	for _, w := range []string{
		"nodeport-out-of-range.yaml:9: spec.ports[0].nodePort: Invalid value: 20000: provided port is not in the valid range. The range of valid ports is 30000-32767",
		"collisions.yaml:20: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
		`collisions.yaml:17: spec.clusterIPs[0]: Invalid value: "10.0.0.1": failed to allocate IP 10.0.0.1: the provided network does not match the current range`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}

func TestIncrementalReuseAndDiff(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	b := NewBuilder(cfg)
	docs := []string{svcYAML("a", "ClusterIP", port80), svcYAML("b", "NodePort", port80)}
	s1, st, err := b.Build(mustObjects(t, strings.Join(docs, "---\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	docs[1] = svcYAML("b", "NodePort", "  sessionAffinity: ClientIP\n"+port80)
	docs = append(docs, svcYAML("c", "ClusterIP", port80))
	s2, _, err := b.Build(mustObjects(t, strings.Join(docs, "---\n")), st)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Services[0] != s2.Services[0] {
		t.Error("unchanged Service a was rebuilt, not reused")
	}
	d := s2.Diff(s1)
	if !reflect.DeepEqual(d, Diff{Added: []string{"default/c"}, Changed: []string{"default/b"}}) {
		t.Errorf("diff %+v", d)
	}
	if d := s1.Diff(s2); !reflect.DeepEqual(d.Removed, []string{"default/c"}) {
		t.Errorf("reverse diff %+v", d)
	}
	// A failed reload changes nothing in the builder.
	if _, _, err := b.Build(mustObjects(t, svcYAML("a", "Magic", port80)), st); err == nil {
		t.Fatal("bad reload accepted")
	}
	s3, _, _ := b.Build(mustObjects(t, strings.Join(docs, "---\n")), st)
	if s3.Services[0] != s2.Services[0] {
		t.Error("cache lost after a failed reload")
	}
}

func FuzzLoadManifests(f *testing.F) {
	data, _ := os.ReadFile("../../configs/services.yaml")
	f.Add(data)
	for _, name := range []string{"collisions.yaml", "misc.yaml", "nodeport-out-of-range.yaml", "broken-yaml.yaml"} {
		d, _ := os.ReadFile(filepath.Join("../../configs/testdata/broken", name))
		f.Add(d)
	}
	f.Add([]byte(svcYAML("a", "LoadBalancer", "  loadBalancerIP: 198.19.1.1\n  clusterIP: 198.19.0.7\n  ports:\n  - {name: x, port: 53, protocol: UDP, targetPort: dns, nodePort: 30001}\n")))
	cfg := mustConfig(f, testConfig)
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := ParseManifests(data, "fuzz.yaml")
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		snap, st, err := Build(objs, cfg, nil)
		if err != nil {
			if snap != nil || st != nil {
				t.Fatal("half-applied")
			}
			return
		}
		for fe, id := range snap.Frontends {
			if s, p := snap.Port(id); s == nil || p.Port != fe.Port {
				t.Fatalf("frontend %v -> %d dangling", fe, id)
			}
		}
	})
}
