package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdpsvc/lb/appliance/admin"
)

// TestAdminSocketAndMemberVersion: the daemon serves the admin API on admin.socket too (its
// missing directory made), and the members list shows the version this node gossips.
func TestAdminSocketAndMemberVersion(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "appliance", "admin.sock")
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`node: {name: lb-a}
interfaces: [{name: test0}]
network: {clusterCIDRs: [198.18.1.0/24], serviceCIDR: 198.19.0.0/24}
cluster: {bind: 127.0.0.1:%d, insecure: true}
services: {manifests: [svc.yaml]}
admin: {listen: 127.0.0.1:%d, socket: %s, tokenFile: admin.token}
`, freePort(t), freePort(t), sock)
	for f, data := range map[string]string{"lb.yaml": cfg, "svc.yaml": ""} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runTestDaemon(t, "lb-a", filepath.Join(dir, "lb.yaml"), nil)
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("socket directory: %v, %v; want made 0755", fi, err)
	}
	var ms []admin.MemberStatus
	c := &admin.Client{Base: "unix://" + sock}
	if err := c.Get(t.Context(), "/api/v1/members", &ms); err != nil {
		t.Fatalf("members over the socket: %v", err)
	}
	if len(ms) != 1 || ms[0].Name != "lb-a" || ms[0].Version != version {
		t.Fatalf("members %+v, want lb-a with version %q", ms, version)
	}
}
