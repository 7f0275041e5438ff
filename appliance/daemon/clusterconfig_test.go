package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/cluster"
)

// TestClusterConfig: the appliance config's cluster section, the ports and the secret key
// become the cluster.Config field by field; a bad bind address is refused.
func TestClusterConfig(t *testing.T) {
	mac := func(b byte) [6]byte { return [6]byte{2, 0, 0, 0, 0, b} }
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	ports := []dataplane.Port{
		{Name: "ext0", MAC: mac(1), Role: dataplane.RoleExternal, Prefixes: []netip.Prefix{pfx("198.18.0.11/24")}},
		{Name: "int0", MAC: mac(2), Role: dataplane.RoleCluster, Prefixes: []netip.Prefix{pfx("198.18.1.11/24")}},
		{Name: "both0", MAC: mac(3), Role: dataplane.RoleBoth, Prefixes: []netip.Prefix{pfx("198.18.2.11/24"), pfx("2001:2::11/64")}},
	}
	base := func(mod func(*config.ClusterConfig)) *config.Config {
		cfg := &config.Config{Node: config.NodeConfig{Name: "lb-a"}, Cluster: config.ClusterConfig{
			Bind: "198.18.0.11:7946", ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
			SuspicionMult: 5, GossipInterval: 50 * time.Millisecond, PushPullInterval: 10 * time.Second,
			RequireQuorum: true, ForgetDeadAfter: time.Hour, FlowSyncBytesPerSecond: 1 << 20,
		}}
		if mod != nil {
			mod(&cfg.Cluster)
		}
		return cfg
	}
	cases := []struct {
		name        string
		cfg         *config.Config
		ports       []dataplane.Port
		key         []byte
		wantErr     bool
		wantMembers int
		wantSyncing bool
	}{
		{name: "alone", cfg: base(nil), wantMembers: 1},
		{name: "two peers to join, flow sync on: syncing", cfg: base(func(c *config.ClusterConfig) {
			c.Join = []string{"198.18.0.12:7946", "198.18.0.13:7946", "198.18.0.11:7946"}
		}), ports: ports, key: []byte("0123456789abcdef"), wantMembers: 3, wantSyncing: true},
		{name: "peers, flow sync off: not syncing", cfg: base(func(c *config.ClusterConfig) {
			c.Join = []string{"198.18.0.12:7946"}
			c.FlowSyncBytesPerSecond = 0
		}), wantMembers: 2},
		{name: "expectedMembers set", cfg: base(func(c *config.ClusterConfig) { c.ExpectedMembers = 5 }),
			wantMembers: 5, wantSyncing: true},
		{name: "bad bind", cfg: base(func(c *config.ClusterConfig) { c.Bind = "lb-a" }), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clusterConfig(tc.cfg, tc.ports, tc.key)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cc := tc.cfg.Cluster
			if got.Name != "lb-a" || got.BindAddr != netip.MustParseAddrPort(cc.Bind) || !slices.Equal(got.Join, cc.Join) {
				t.Errorf("identity: name %q bind %v join %v", got.Name, got.BindAddr, got.Join)
			}
			if got.ProbeInterval != cc.ProbeInterval || got.ProbeTimeout != cc.ProbeTimeout || got.SuspicionMult != cc.SuspicionMult ||
				got.GossipInterval != cc.GossipInterval || got.PushPullInterval != cc.PushPullInterval {
				t.Errorf("timings not copied: %+v", got)
			}
			if got.RequireQuorum != cc.RequireQuorum || got.ForgetDeadAfter != cc.ForgetDeadAfter {
				t.Errorf("quorum: require %v forgetDeadAfter %v", got.RequireQuorum, got.ForgetDeadAfter)
			}
			if got.ExpectedMembers != tc.wantMembers {
				t.Errorf("expected members %d, want %d", got.ExpectedMembers, tc.wantMembers)
			}
			if string(got.SecretKey) != string(tc.key) {
				t.Errorf("secret key %q, want %q", got.SecretKey, tc.key)
			}
			m := got.Meta
			if m.Role != cluster.RoleAppliance || m.Version != version || m.Syncing != tc.wantSyncing {
				t.Errorf("meta role %v version %q syncing %v, want syncing %v", m.Role, m.Version, m.Syncing, tc.wantSyncing)
			}
			var wantMACs [][6]byte
			var wantExt, wantCl []netip.Addr
			if tc.ports != nil {
				wantMACs = [][6]byte{mac(1), mac(2), mac(3)}
				wantExt = []netip.Addr{addr("198.18.0.11"), addr("198.18.2.11"), addr("2001:2::11")}
				wantCl = []netip.Addr{addr("198.18.1.11"), addr("198.18.2.11"), addr("2001:2::11")}
			}
			if !slices.Equal(m.MACs, wantMACs) || !slices.Equal(m.ExternalIPs, wantExt) || !slices.Equal(m.ClusterIPs, wantCl) {
				t.Errorf("meta MACs %v external %v cluster %v, want %v %v %v", m.MACs, m.ExternalIPs, m.ClusterIPs, wantMACs, wantExt, wantCl)
			}
		})
	}
}
