package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/service"
)

// snapshotSource serves a built snapshot through the admin API, as the daemon does before traffic.
type snapshotSource struct{ snap *service.Snapshot }

func (s snapshotSource) Healthy() error                  { return nil }
func (s snapshotSource) Services() []admin.ServiceStatus { return admin.ServicesFromSnapshot(s.snap) }
func (s snapshotSource) Endpoints() []admin.EndpointStatus {
	return admin.EndpointsFromSnapshot(s.snap)
}
func (s snapshotSource) Flows(int) []admin.FlowStatus  { return nil }
func (s snapshotSource) Members() []admin.MemberStatus { return nil }

func TestGetServicesFromAdminAPI(t *testing.T) {
	cfg, err := config.Load("../configs/lab-node-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := service.LoadManifests(cfg.Services.Manifests)
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := service.Build(objs, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := admin.Start(snapshotSource{snap}, admin.Config{Listen: "127.0.0.1:0", SocketPath: sock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"services table", []string{"get", "services", "--admin", srv.Addr()}, []string{"NAMESPACE", "web", "LoadBalancer", "80:30080/TCP"}},
		{"services json", []string{"get", "svc", "--admin", srv.Addr(), "-o", "json"}, []string{`"name": "web-nodeport"`, `"nodePort": 30080`}},
		{"endpoints table", []string{"get", "endpoints", "--admin", srv.Addr()}, []string{"ENDPOINT", "198.18.1.21"}},
		{"over the socket", []string{"get", "services", "--admin", "unix://" + sock}, []string{"NAMESPACE", "web", "80:30080/TCP"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := dispatch(tc.args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := dispatch([]string{"get", "pods", "--admin", srv.Addr()}, &out, &errb); code != 2 {
		t.Errorf("unknown resource: exit %d, want 2", code)
	}
}

// TestAdminClientFromConfig: with --config the client takes the config's admin.socket when it
// is there, else admin.listen with the token of admin.tokenFile; --admin and --token-file win.
func TestAdminClientFromConfig(t *testing.T) {
	dir := t.TempDir()
	sock, tokenFile := filepath.Join(dir, "admin.sock"), filepath.Join(dir, "admin.token")
	const token = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "lb.yaml")
	cfg := "network: {serviceCIDR: 198.19.0.0/24}\nadmin: {listen: 127.0.0.1:9199, socket: " + sock + ", tokenFile: admin.token}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	c, err := adminClient("", cfgPath, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Base != "127.0.0.1:9199" || c.Token != token {
		t.Errorf("no socket yet: base %q token %q, want admin.listen with admin.tokenFile's token", c.Base, c.Token)
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if c, err = adminClient("", cfgPath, "", false); err != nil {
		t.Fatal(err)
	}
	if c.Base != "unix://"+sock {
		t.Errorf("socket there: base %q, want unix://%s", c.Base, sock)
	}
	if c, err = adminClient("198.18.0.1:9100", cfgPath, "", false); err != nil {
		t.Fatal(err)
	}
	if c.Base != "198.18.0.1:9100" || c.Token != "" {
		t.Errorf("--admin given: base %q token %q, want it as given without the config's token", c.Base, c.Token)
	}
}
