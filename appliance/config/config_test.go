package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const labConfig = `node:
  name: lb-a
interfaces:
  - name: veth-ext
    role: external
  - name: veth-int
    role: cluster
network:
  clusterCIDRs: [198.18.1.0/24]
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools:
    - name: default
      cidrs: [198.19.1.0/28]
cluster:
  bind: 198.18.0.11:7946
  join: [198.18.0.12:7946]
services:
  manifests: [services.yaml]
`

// pools has a valid first pool and a second one whose first CIDR is invalid and whose later ones
// overlap: the errors must name each CIDR by its index in the file, at its own line.
const pools = `network:
  serviceCIDR: 198.19.0.0/24
  loadBalancerPools:
  - name: a
    cidrs:
    - 198.19.1.0/28
  - name: b
    cidrs:
    - 198.19.2.0/33
    - 198.19.0.0/25
    - 198.19.1.8/29
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings, each must appear in the error text
		check   func(t *testing.T, c *Config)
	}{
		{name: "lab config with defaults filled in", yaml: labConfig, check: func(t *testing.T, c *Config) {
			if c.Node.Name != "lb-a" || c.Network.NodePortRange != (PortRange{30000, 32767}) || c.Admin.Listen != "127.0.0.1:9100" {
				t.Errorf("defaults: %+v", c)
			}
			if c.Network.ServiceCIDR != netip.MustParsePrefix("198.19.0.0/24") || len(c.Network.LoadBalancerPools) != 1 {
				t.Errorf("network: %+v", c.Network)
			}
			if c.State.Path != filepath.Join("dir", "lb-a.state.json") {
				t.Errorf("state path %q", c.State.Path)
			}
			if c.Services.Manifests[0] != filepath.Join("dir", "services.yaml") {
				t.Errorf("manifests %q", c.Services.Manifests)
			}
			if c.Interfaces[1].Role != RoleCluster {
				t.Errorf("role %q", c.Interfaces[1].Role)
			}
		}},
		{name: "node name defaults to hostname", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n", check: func(t *testing.T, c *Config) {
			h, _ := os.Hostname()
			if c.Node.Name != h {
				t.Errorf("node %q, hostname %q", c.Node.Name, h)
			}
		}},
		{name: "explicit absolute state path is kept as given", yaml: "network: {serviceCIDR: 198.19.0.0/24}\nstate: {path: /var/lib/appliance/s.json}\n", check: func(t *testing.T, c *Config) {
			if c.State.Path != "/var/lib/appliance/s.json" {
				t.Errorf("state %q", c.State.Path)
			}
		}},
		{name: "invalid CIDR names file line and field", yaml: "network:\n  serviceCIDR: 198.19.0.0/33\n",
			wantErr: []string{`lb.yaml:2: network.serviceCIDR: invalid CIDR "198.19.0.0/33"`}},
		{name: "host bits set", yaml: "network:\n  serviceCIDR: 198.19.0.1/24\n", wantErr: []string{"did you mean 198.19.0.0/24"}},
		{name: "missing serviceCIDR", yaml: "node: {name: a}\n", wantErr: []string{"lb.yaml:1: network.serviceCIDR: required"}},
		{name: "unknown key is an error", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  servicecidr: x\n", wantErr: []string{"lb.yaml:3: network.servicecidr: unknown field"}},
		{name: "duplicate key is an error", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  serviceCIDR: 198.19.0.0/24\n", wantErr: []string{"lb.yaml:3: network.serviceCIDR: duplicate key"}},
		{name: "bad port range", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  nodePortRange: 32767-30000\n", wantErr: []string{"lb.yaml:3: network.nodePortRange: invalid port range"}},
		{name: "pool overlapping serviceCIDR", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  loadBalancerPools:\n  - name: a\n    cidrs: [198.19.0.128/25]\n",
			wantErr: []string{"lb.yaml:5: network.loadBalancerPools[0].cidrs[0]: 198.19.0.128/25 overlaps serviceCIDR"}},
		{name: "pools overlapping each other", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  loadBalancerPools:\n  - name: a\n    cidrs: [198.19.1.0/28]\n  - name: b\n    cidrs: [198.19.1.8/29]\n",
			wantErr: []string{`lb.yaml:7: network.loadBalancerPools[1].cidrs[0]: 198.19.1.8/29 overlaps 198.19.1.0/28 of pool "a"`}},
		{name: "paths and lines of list items: a bad second pool's first CIDR", yaml: pools,
			wantErr: []string{`lb.yaml:9: network.loadBalancerPools[1].cidrs[0]: invalid CIDR "198.19.2.0/33"`,
				`lb.yaml:10: network.loadBalancerPools[1].cidrs[1]: 198.19.0.0/25 overlaps serviceCIDR 198.19.0.0/24`,
				`lb.yaml:11: network.loadBalancerPools[1].cidrs[2]: 198.19.1.8/29 overlaps 198.19.1.0/28 of pool "a"`}},
		{name: "paths and lines of list items: interfaces, join, manifests, clusterCIDRs",
			yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  clusterCIDRs:\n  - 198.18.1.0/24\n  - 198.18.2.1/24\n" +
				"interfaces:\n- name: a\n- name: a\ncluster:\n  join:\n  - 198.18.0.12:7946\n  - nope\nservices:\n  manifests:\n  - a.yaml\n  - ''\n",
			wantErr: []string{`lb.yaml:5: network.clusterCIDRs[1]: invalid CIDR "198.18.2.1/24": host bits set`,
				`lb.yaml:8: interfaces[1].name: duplicate interface "a"`, `lb.yaml:12: cluster.join[1]: invalid address "nope"`,
				`lb.yaml:16: services.manifests[1]: must not be empty`}},
		{name: "duplicate pool name", yaml: "network:\n  serviceCIDR: 198.19.0.0/24\n  loadBalancerPools:\n  - {name: a, cidrs: [198.19.1.0/28]}\n  - {name: a, cidrs: [198.19.2.0/28]}\n",
			wantErr: []string{`lb.yaml:5: network.loadBalancerPools[1].name: duplicate pool name "a"`}},
		{name: "bad role", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ninterfaces:\n- {name: eth0, role: outside}\n", wantErr: []string{`lb.yaml:3: interfaces[0].role: invalid role "outside"`}},
		{name: "interface without name", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ninterfaces:\n- {role: cluster}\n", wantErr: []string{`lb.yaml:3: interfaces[0].name: required`}},
		{name: "bad bind address", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ncluster:\n  bind: 198.18.0.11\nadmin:\n  listen: 127.0.0.1:99999\n",
			wantErr: []string{`lb.yaml:3: cluster.bind: invalid address "198.18.0.11"`, `lb.yaml:5: admin.listen: invalid address "127.0.0.1:99999"`}},
		{name: "all errors are collected", yaml: "network:\n  serviceCIDR: nope\n  nodePortRange: x\nbogus: 1\n",
			wantErr: []string{"lb.yaml:2: network.serviceCIDR", "lb.yaml:3: network.nodePortRange", "lb.yaml:4: bogus: unknown field"}},
		{name: "cluster timings and quorum", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ncluster:\n  probeInterval: 300ms\n  probeTimeout: 150ms\n  suspicionMult: 3\n  requireQuorum: false\n  expectedMembers: 3\n  flowSyncBytesPerSecond: 0\n",
			check: func(t *testing.T, c *Config) {
				cc := c.Cluster
				if cc.ProbeInterval != 300*time.Millisecond || cc.ProbeTimeout != 150*time.Millisecond || cc.SuspicionMult != 3 ||
					cc.RequireQuorum || cc.ExpectedMembers != 3 || cc.FlowSyncBytesPerSecond != 0 || cc.GossipInterval != 50*time.Millisecond {
					t.Errorf("cluster: %+v", cc)
				}
			}},
		{name: "cluster defaults", yaml: "network: {serviceCIDR: 198.19.0.0/24}\n", check: func(t *testing.T, c *Config) {
			if cc := c.Cluster; !cc.RequireQuorum || cc.ProbeInterval != 200*time.Millisecond || cc.FlowSyncBytesPerSecond != 4<<20 {
				t.Errorf("cluster: %+v", cc)
			}
		}},
		{name: "bad cluster timings", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ncluster:\n  probeInterval: 0s\n  gossipInterval: fast\n  suspicionMult: 0\n  requireQuorum: yes please\n",
			wantErr: []string{"lb.yaml:3: cluster.probeInterval: invalid duration", "lb.yaml:4: cluster.gossipInterval: invalid duration",
				"lb.yaml:5: cluster.suspicionMult: must be between 1 and 100", "lb.yaml:6: cluster.requireQuorum: must be true or false"}},
		{name: "probe timeout above interval", yaml: "network: {serviceCIDR: 198.19.0.0/24}\ncluster: {probeInterval: 100ms, probeTimeout: 200ms}\n",
			wantErr: []string{"cluster.probeTimeout: must not exceed cluster.probeInterval"}},
		{name: "broken YAML", yaml: "network:\n  serviceCIDR: [\n", wantErr: []string{"lb.yaml:"}},
		{name: "wrong type", yaml: "network: [1]\n", wantErr: []string{"lb.yaml:1: network: must be a mapping, not a list"}},
		{name: "empty file", yaml: "", wantErr: []string{"lb.yaml:1: empty config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), filepath.Join("dir", "lb.yaml"))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Join("dir", "lb.yaml"), "lb.yaml")
			for _, w := range tt.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

func TestExampleConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "serviceCIDR") {
			continue // a manifest file, loaded by the service package's tests
		}
		n++
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if n == 0 {
		t.Fatal("no example configs found in configs/")
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(labConfig))
	f.Add([]byte("network:\n  serviceCIDR: 198.19.0.0/33\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte(pools))
	f.Add([]byte("network: {serviceCIDR: ::/0, loadBalancerPools: [{name: a, cidrs: [::/1]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "lb.yaml")
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
