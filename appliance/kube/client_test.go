package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsvc/lb/appliance/config"
)

const kubeconfigYAML = `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://198.18.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: lb
  user: {token: test-token}
contexts:
- name: lab
  context: {cluster: lab, user: lb}
current-context: lab
`

func TestNewClient(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(good, []byte(kubeconfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "broken.conf")
	if err := os.WriteFile(bad, []byte("clusters: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sc      config.ServicesConfig
		wantErr string
	}{
		{name: "kubeconfig names the API server", sc: config.ServicesConfig{Kubeconfig: good}},
		{name: "missing kubeconfig file", sc: config.ServicesConfig{Kubeconfig: filepath.Join(dir, "none.conf")}, wantErr: "load kubeconfig " + dir},
		{name: "broken kubeconfig file", sc: config.ServicesConfig{Kubeconfig: bad}, wantErr: "load kubeconfig " + bad},
		{name: "no API source", sc: config.ServicesConfig{}, wantErr: "neither services.kubeconfig nor services.inCluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := RESTConfig(tc.sc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rc.Host != "https://198.18.0.1:6443" || rc.BearerToken != "test-token" || rc.UserAgent != UserAgent {
				t.Errorf("rest config host %q token %q agent %q", rc.Host, rc.BearerToken, rc.UserAgent)
			}
			if _, err := NewClient(tc.sc); err != nil {
				t.Errorf("NewClient: %v", err)
			}
		})
	}
}

func TestInClusterOutsideAPod(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := NewClient(config.ServicesConfig{InCluster: true}); err == nil || !strings.Contains(err.Error(), "load in-cluster credentials") {
		t.Errorf("error %v, want load in-cluster credentials", err)
	}
}
