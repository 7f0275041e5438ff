package service

import (
	"net/netip"
	"strings"
	"testing"
)

// TestBuildAPIAllocated covers BuildOptions.APIAllocated: kube-apiserver's ClusterIPs and
// nodePorts are used as they are, never allocated, range-checked or taken from the State.
func TestBuildAPIAllocated(t *testing.T) {
	cfg := mustConfig(t, testConfig) // serviceCIDR 198.19.0.0/24, nodePortRange 30000-30009
	prevState := &State{Version: StateVersion, Services: map[string]ServiceState{
		"default/a": {ClusterIPs: []netip.Addr{netip.MustParseAddr("198.19.0.99")}, NodePorts: map[string]uint16{"80/TCP": 30005}},
	}}
	tests := []struct {
		name    string
		docs    []string
		prev    *State
		wantErr []string
		check   func(t *testing.T, s *Snapshot)
	}{
		{name: "apiserver clusterIP and nodePort are kept verbatim, even outside the configured ranges",
			docs: []string{svcYAML("a", "NodePort", "  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n    nodePort: 31234\n")},
			prev: prevState,
			check: func(t *testing.T, s *Snapshot) {
				a := s.Lookup("default/a")
				if a.ClusterIPs[0] != netip.MustParseAddr("10.96.0.10") || a.Ports[0].NodePort != 31234 {
					t.Errorf("got clusterIP %v nodePort %d, want 10.96.0.10 and 31234", a.ClusterIPs, a.Ports[0].NodePort)
				}
			}},
		{name: "load balancer gets its external IP from the pool",
			docs: []string{svcYAML("a", "LoadBalancer", "  clusterIP: 198.19.0.10\n  ports:\n  - port: 80\n    nodePort: 30001\n")},
			check: func(t *testing.T, s *Snapshot) {
				a := s.Lookup("default/a")
				if !netip.MustParsePrefix("198.19.1.0/30").Contains(a.ExternalIP) || a.Pending {
					t.Errorf("external IP %v pending %v", a.ExternalIP, a.Pending)
				}
			}},
		{name: "dual-stack service contributes its clusterIP of the serviceCIDR's family",
			docs: []string{svcYAML("a", "ClusterIP", "  ipFamilyPolicy: RequireDualStack\n  clusterIPs: [\"fd00::10\", 198.19.0.10]\n"+port80)},
			check: func(t *testing.T, s *Snapshot) {
				if got := s.Lookup("default/a").ClusterIPs; len(got) != 1 || got[0] != netip.MustParseAddr("198.19.0.10") {
					t.Errorf("clusterIPs %v", got)
				}
			}},
		{name: "missing clusterIP is not allocated in API mode",
			docs:    []string{svcYAML("a", "ClusterIP", port80)},
			prev:    prevState,
			wantErr: []string{"spec.clusterIP: Required value: no clusterIP of this appliance's family allocated by kube-apiserver"}},
		{name: "missing nodePort is not allocated in API mode",
			docs:    []string{svcYAML("a", "NodePort", "  clusterIP: 198.19.0.10\n"+port80)},
			prev:    prevState,
			wantErr: []string{"spec.ports[0].nodePort: Required value: no nodePort allocated by kube-apiserver"}},
		{name: "clusterIP of the other family is rejected",
			docs:    []string{svcYAML("a", "ClusterIP", "  clusterIP: fd00::10\n"+port80)},
			wantErr: []string{`spec.clusterIPs[0]: Invalid value: "fd00::10": IP family does not match serviceCIDR 198.19.0.0/24`}},
		{name: "clusterIP collision across services is rejected",
			docs: []string{svcYAML("a", "ClusterIP", "  clusterIP: 198.19.0.10\n"+port80),
				svcYAML("b", "ClusterIP", "  clusterIP: 198.19.0.10\n"+port80)},
			wantErr: []string{`Invalid value: "198.19.0.10": provided IP is already allocated (to Service default/a)`}},
		{name: "nodePort collision across services is rejected",
			docs: []string{svcYAML("a", "NodePort", "  clusterIP: 198.19.0.10\n  ports:\n  - port: 80\n    nodePort: 31000\n"),
				svcYAML("b", "NodePort", "  clusterIP: 198.19.0.11\n  ports:\n  - port: 81\n    nodePort: 31000\n")},
			wantErr: []string{"spec.ports[0].nodePort: Invalid value: 31000: provided port is already allocated (to Service default/a)"}},
		{name: "headless service needs no clusterIP",
			docs: []string{svcYAML("a", "ClusterIP", "  clusterIP: None\n"+port80)},
			check: func(t *testing.T, s *Snapshot) {
				if a := s.Lookup("default/a"); !a.Headless || len(s.Frontends) != 0 {
					t.Errorf("headless %v frontends %v", a.Headless, s.Frontends)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilderWithOptions(cfg, BuildOptions{APIAllocated: true})
			snap, st, err := b.Build(mustObjects(t, strings.Join(tc.docs, "---\n")), tc.prev)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nwant it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st == nil {
				t.Fatal("no state")
			}
			tc.check(t, snap)
		})
	}
}

// TestBuildAPIAllocatedKeepsExternalIP: external IPs and port IDs still come from the State.
func TestBuildAPIAllocatedKeepsExternalIP(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	objs := mustObjects(t, svcYAML("a", "LoadBalancer", "  clusterIP: 198.19.0.10\n  ports:\n  - port: 80\n    nodePort: 30001\n"))
	want := netip.MustParseAddr("198.19.1.3")
	prev := &State{Version: StateVersion, Services: map[string]ServiceState{"default/a": {LoadBalancerIP: want, PortIDs: map[string]PortID{"80/TCP": 7}}}}
	snap, st, err := NewBuilderWithOptions(cfg, BuildOptions{APIAllocated: true}).Build(objs, prev)
	if err != nil {
		t.Fatal(err)
	}
	a := snap.Lookup("default/a")
	if a.ExternalIP != want || a.Ports[0].ID != 7 || st.Services["default/a"].LoadBalancerIP != want {
		t.Errorf("external IP %v port ID %d, want %v and 7", a.ExternalIP, a.Ports[0].ID, want)
	}
}

// FuzzBuildAPIAllocated builds arbitrary manifests in API mode: never a panic, nothing
// half-applied, and every ClusterIP and nodePort served is one the objects carry.
func FuzzBuildAPIAllocated(f *testing.F) {
	f.Add([]byte(svcYAML("a", "LoadBalancer", "  clusterIP: 198.19.0.10\n  ports:\n  - port: 80\n    nodePort: 32999\n")))
	f.Add([]byte(svcYAML("a", "ClusterIP", "  ipFamilyPolicy: RequireDualStack\n  clusterIPs: [\"fd00::10\", 198.19.0.10]\n"+port80)))
	f.Add([]byte(svcYAML("a", "NodePort", "  clusterIP: 198.19.0.10\n  ports:\n  - {name: a, port: 53, protocol: UDP, nodePort: 31000}\n  - {name: b, port: 53, protocol: TCP, nodePort: 31000}\n")))
	f.Add([]byte(svcYAML("a", "ClusterIP", port80) + "---\n" + svcYAML("b", "ClusterIP", "  clusterIP: None\n"+port80)))
	cfg := mustConfig(f, testConfig)
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _ := ParseManifests(data, "fuzz.yaml")
		snap, st, err := NewBuilderWithOptions(cfg, BuildOptions{APIAllocated: true}).Build(objs, nil)
		if err != nil {
			if snap != nil || st != nil {
				t.Fatal("half-applied")
			}
			return
		}
		given := map[string]bool{}
		nodePorts := map[int32]bool{}
		for _, o := range objs {
			if o.Service != nil {
				given[o.Name()+"|"+o.Service.Spec.ClusterIP] = true
				for _, ip := range o.Service.Spec.ClusterIPs {
					given[o.Name()+"|"+ip] = true
				}
				for _, p := range o.Service.Spec.Ports {
					nodePorts[p.NodePort] = true
				}
			}
		}
		for _, s := range snap.Services {
			for _, ip := range s.ClusterIPs {
				if !given[s.Key()+"|"+ip.String()] {
					t.Fatalf("%s: clusterIP %v was not in the object", s.Key(), ip)
				}
			}
			for _, p := range s.Ports {
				if p.NodePort != 0 && !nodePorts[int32(p.NodePort)] {
					t.Fatalf("%s: nodePort %d was not in the object", s.Key(), p.NodePort)
				}
			}
		}
	})
}
