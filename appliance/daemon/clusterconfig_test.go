package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestClusterBind: cluster.bind as given, else the first address of the first cluster-role
// port, else of the first both-role port, on defaultGossipPort; never a wildcard address.
func TestClusterBind(t *testing.T) {
	pfx := netip.MustParsePrefix
	ext := dataplane.Port{Name: "ext0", Role: dataplane.RoleExternal, Prefixes: []netip.Prefix{pfx("198.18.0.11/24")}}
	clu := dataplane.Port{Name: "int0", Role: dataplane.RoleCluster, Prefixes: []netip.Prefix{pfx("198.18.1.11/24"), pfx("198.18.1.12/24")}}
	cluBare := dataplane.Port{Name: "int1", Role: dataplane.RoleCluster}
	both := dataplane.Port{Name: "both0", Role: dataplane.RoleBoth, Prefixes: []netip.Prefix{pfx("2001:2::11/64")}}
	cases := []struct {
		name    string
		bind    string
		ports   []dataplane.Port
		want    string
		wantErr bool
	}{
		{name: "set: as given", bind: "198.18.9.9:8000", ports: []dataplane.Port{clu}, want: "198.18.9.9:8000"},
		{name: "set, not IP:port", bind: "lb-a:7946", ports: []dataplane.Port{clu}, wantErr: true},
		{name: "cluster role first, whatever the order", ports: []dataplane.Port{ext, both, clu}, want: "198.18.1.11:7946"},
		{name: "a cluster port without an address is skipped", ports: []dataplane.Port{cluBare, clu}, want: "198.18.1.11:7946"},
		{name: "no cluster port: role both", ports: []dataplane.Port{ext, cluBare, both}, want: "[2001:2::11]:7946"},
		{name: "external only: refused", ports: []dataplane.Port{ext}, wantErr: true},
		{name: "no ports: refused", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clusterBind(tc.bind, tc.ports)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("bind %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("bind %v, want %s", got, tc.want)
			}
		})
	}
}

// TestRunRefusesGossipWithoutKey: with neither cluster.secretKeyFile nor cluster.insecure the
// daemon does not start (config.ClusterKey's error), and a key file others may read is refused.
func TestRunRefusesGossipWithoutKey(t *testing.T) {
	for name, tc := range map[string]struct {
		cluster string
		keyMode os.FileMode
		want    string
	}{
		"no key":                {cluster: "{bind: 127.0.0.1:%d}", want: "cluster.secretKeyFile: Required value"},
		"key readable by group": {cluster: "{bind: 127.0.0.1:%d, secretKeyFile: gossip.key}", keyMode: 0o640, want: "cluster.secretKeyFile"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := "node: {name: lb-a}\ninterfaces: [{name: test0}]\nnetwork: {clusterCIDRs: [198.18.1.0/24], serviceCIDR: 198.19.0.0/24}\n" +
				"cluster: " + fmt.Sprintf(tc.cluster, freePort(t)) + fmt.Sprintf("\nservices: {manifests: [svc.yaml]}\nadmin: {listen: 127.0.0.1:%d}\n", freePort(t))
			for f, data := range map[string]string{"lb.yaml": cfg, "svc.yaml": ""} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.keyMode != 0 {
				if err := os.WriteFile(filepath.Join(dir, "gossip.key"), cluster.EncodeKey([]byte("0123456789abcdef")), tc.keyMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, "gossip.key"), tc.keyMode); err != nil {
					t.Fatal(err)
				}
			}
			err := Run(t.Context(), Options{
				ConfigPath: filepath.Join(dir, "lb.yaml"),
				Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
				Ports: []dataplane.Port{{Name: "test0", Ifindex: 1 << 20, MAC: [6]byte{2, 0, 0, 0, 0, 1},
					Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.11/24")}}},
				OpenIO: func([]dataplane.Port, *dataplane.DataPlane, *slog.Logger) (IOLayer, error) {
					t.Fatal("the data plane was opened without a gossip key")
					return nil, nil
				},
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
