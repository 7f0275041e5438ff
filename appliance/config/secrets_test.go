package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkKey fails the test unless err contains wantErr (when set) or, without wantErr, err is nil
// and a key was returned exactly when wantKey. It reports whether a key check without error ran.
func checkKey(t *testing.T, k []byte, err error, wantKey bool, wantErr string) bool {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err %v, want one containing %q", err, wantErr)
		}
		return false
	}
	if err != nil || (k != nil) != wantKey {
		t.Fatalf("key %x, err %v", k, err)
	}
	return true
}

func TestClusterKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(good, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte("0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cluster string
		wantKey bool
		wantErr string
	}{
		{"no key and not insecure is refused", "{}", false, "Required value"},
		{"insecure on purpose", "{insecure: true}", false, ""},
		{"key file", "{secretKeyFile: gossip.key}", true, ""},
		{"key file readable by others", "{secretKeyFile: open.key}", false, "chmod 600"},
		{"missing key file", "{secretKeyFile: nope.key}", false, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte("network: {serviceCIDR: 198.19.0.0/24}\ncluster: "+tc.cluster+"\n"), filepath.Join(dir, "lb.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			k, err := cfg.ClusterKey()
			checkKey(t, k, err, tc.wantKey, tc.wantErr)
		})
	}
	if !errors.Is(func() error { _, err := (&Config{}).ClusterKey(); return err }(), ErrNoClusterKey) {
		t.Fatal("an empty config's error is not ErrNoClusterKey")
	}
}

func TestNewKeysParse(t *testing.T) {
	y := `network:
  serviceCIDR: 198.19.0.0/24
  snat:
    ports: 50000-59999
    addresses: [198.18.1.11]
cluster:
  bind: 198.18.1.11:7946
  insecure: true
admin:
  socket: /run/appliance/admin.sock
  tokenFile: admin.token
dataPlane:
  newFlowsPerSourcePerSecond: 0
  localRepliesPerSecond: 100
  localReplyBurst: 10
`
	cfg, err := Parse([]byte(y), "/etc/appliance/lb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Network.SNAT.Ports != (PortRange{50000, 59999}) || len(cfg.Network.SNAT.Addresses) != 1 ||
		!cfg.Cluster.Insecure || cfg.Admin.Socket != "/run/appliance/admin.sock" || cfg.Admin.TokenFile != "/etc/appliance/admin.token" ||
		cfg.DataPlane.NewFlowsPerSourcePerSecond != 0 || cfg.DataPlane.LocalRepliesPerSecond != 100 || cfg.DataPlane.LocalReplyBurst != 10 {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"cluster: {bind: lb-a.example:7946}", "cluster.bind: invalid address"},
		{"cluster: {insecure: true, secretKeyFile: k}", "cluster.insecure"},
		{"  snat: {ports: 80-90}", "network.snat.ports"},
		{"  snat: {addresses: [nope]}", "network.snat.addresses[0]"},
		{"dataPlane: {localReplyBurst: 0}", "dataPlane.localReplyBurst"},
	} {
		doc := "network: {serviceCIDR: 198.19.0.0/24}\n" + tc.yaml + "\n"
		if strings.HasPrefix(tc.yaml, "  ") {
			doc = "network:\n  serviceCIDR: 198.19.0.0/24\n" + tc.yaml + "\n"
		}
		_, err := Parse([]byte(doc), "lb.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestAgentKey: cluster.agents parses with its defaults, and its key is required when agents
// are enabled, must be a key file of its own, and may not be the appliances' key.
func TestAgentKey(t *testing.T) {
	dir := t.TempDir()
	for name, key := range map[string]string{"gossip.key": "0123456789abcdef\n", "agents.key": "fedcba9876543210\n", "same.key": "0123456789abcdef"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		agents   string
		wantKey  bool
		wantBind string
		wantErr  string
	}{
		{"disabled by default", "{}", false, "198.18.1.11:7947", ""},
		{"enabled without a key is refused", "{enabled: true}", false, "", "Required value"},
		{"enabled, insecure on purpose", "{enabled: true, insecure: true}", false, "198.18.1.11:7947", ""},
		{"own key and bind", "{enabled: true, secretKeyFile: agents.key, bind: 198.18.1.11:8000, join: [198.18.1.12:8000]}", true, "198.18.1.11:8000", ""},
		{"the appliances' key is refused", "{enabled: true, secretKeyFile: same.key}", false, "", "appliances' key"},
		{"missing key file", "{enabled: true, secretKeyFile: nope.key}", false, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "network: {serviceCIDR: 198.19.0.0/24}\ncluster: {bind: 198.18.1.11:7946, secretKeyFile: gossip.key, agents: " + tc.agents + "}\n"
			cfg, err := Parse([]byte(y), filepath.Join(dir, "lb.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			k, err := cfg.AgentKey()
			if !checkKey(t, k, err, tc.wantKey, tc.wantErr) {
				return
			}
			if got := cfg.Cluster.AgentBind(); got != tc.wantBind {
				t.Fatalf("agent bind %s, want %s", got, tc.wantBind)
			}
		})
	}
	if _, err := Parse([]byte("network: {serviceCIDR: 198.19.0.0/24}\ncluster: {insecure: true, agents: {insecure: true, secretKeyFile: x}}\n"),
		filepath.Join(dir, "lb.yaml")); err == nil {
		t.Fatal("agents.insecure together with agents.secretKeyFile accepted")
	}
}
