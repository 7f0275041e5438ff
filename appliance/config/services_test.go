package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseServicesSource(t *testing.T) {
	const net = "network: {serviceCIDR: 198.19.0.0/24}\n"
	tests := []struct {
		name    string
		yaml    string
		wantErr []string
		want    ServicesConfig // Manifests not compared
	}{
		{name: "no services section serves unclassed services from manifests", yaml: net,
			want: ServicesConfig{ServeUnclassed: true}},
		{name: "kubeconfig is relative to the config file", yaml: net + "services:\n  kubeconfig: kube/admin.conf\n",
			want: ServicesConfig{Kubeconfig: filepath.Join("dir", "kube", "admin.conf"), ServeUnclassed: true}},
		{name: "inCluster credentials", yaml: net + "services:\n  inCluster: true\n",
			want: ServicesConfig{InCluster: true, ServeUnclassed: true}},
		{name: "a loadBalancerClass turns unclassed services off by default", yaml: net + "services:\n  inCluster: true\n  loadBalancerClass: example.com/edge\n",
			want: ServicesConfig{InCluster: true, LoadBalancerClass: "example.com/edge"}},
		{name: "serveUnclassed together with a class", yaml: net + "services:\n  inCluster: true\n  loadBalancerClass: example.com/edge\n  serveUnclassed: true\n",
			want: ServicesConfig{InCluster: true, LoadBalancerClass: "example.com/edge", ServeUnclassed: true}},
		{name: "manifests and kubeconfig are mutually exclusive", yaml: net + "services:\n  manifests: [a.yaml]\n  kubeconfig: k.conf\n",
			wantErr: []string{"lb.yaml:3: services.manifests: may not be used together with services.kubeconfig"}},
		{name: "manifests and inCluster are mutually exclusive", yaml: net + "services:\n  inCluster: true\n  manifests: [a.yaml]\n",
			wantErr: []string{"lb.yaml:4: services.manifests: may not be used together with services.inCluster"}},
		{name: "kubeconfig and inCluster are mutually exclusive", yaml: net + "services:\n  kubeconfig: k.conf\n  inCluster: true\n",
			wantErr: []string{"lb.yaml:4: services.inCluster: may not be true when services.kubeconfig is set"}},
		{name: "loadBalancerClass needs the API", yaml: net + "services:\n  manifests: [a.yaml]\n  loadBalancerClass: example.com/edge\n",
			wantErr: []string{"lb.yaml:4: services.loadBalancerClass: only applies to Services from the Kubernetes API"}},
		{name: "serveUnclassed needs the API", yaml: net + "services:\n  serveUnclassed: true\n",
			wantErr: []string{"lb.yaml:3: services.serveUnclassed: only applies to Services from the Kubernetes API"}},
		{name: "serving nothing is an error", yaml: net + "services:\n  inCluster: true\n  serveUnclassed: false\n",
			wantErr: []string{"lb.yaml:4: services.serveUnclassed: false with no services.loadBalancerClass would serve no Service"}},
		{name: "invalid class name", yaml: net + "services:\n  inCluster: true\n  loadBalancerClass: \"not valid!\"\n",
			wantErr: []string{`lb.yaml:4: services.loadBalancerClass: Invalid value: "not valid!"`}},
		{name: "clusterName names the appliance cluster", yaml: net + "services:\n  inCluster: true\n  clusterName: edge-lb_1.a\n",
			want: ServicesConfig{InCluster: true, ClusterName: "edge-lb_1.a", ServeUnclassed: true}},
		{name: "clusterName with a character no annotation value takes", yaml: net + "services:\n  inCluster: true\n  clusterName: edge/lb\n",
			wantErr: []string{`lb.yaml:4: services.clusterName: Invalid value: "edge/lb": character '/'`}},
		{name: "clusterName longer than an annotation value", yaml: net + "services:\n  inCluster: true\n  clusterName: " + strings.Repeat("a", 64) + "\n",
			wantErr: []string{"services.clusterName: Invalid value", "64 characters, more than 63"}},
		{name: "inCluster must be a boolean", yaml: net + "services:\n  inCluster: yes-please\n",
			wantErr: []string{"lb.yaml:3: services.inCluster: must be true or false"}},
		{name: "empty kubeconfig", yaml: net + "services:\n  kubeconfig: \"\"\n",
			wantErr: []string{"lb.yaml:3: services.kubeconfig: must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), filepath.Join("dir", "lb.yaml"))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				got := c.Services
				got.Manifests = nil
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("services %+v, want %+v", got, tt.want)
				}
				if got.FromAPI() != (tt.want.Kubeconfig != "" || tt.want.InCluster) {
					t.Errorf("FromAPI %v", got.FromAPI())
				}
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

// FuzzParseServices fuzzes the services section (sources and class filter) of the config file.
func FuzzParseServices(f *testing.F) {
	const net = "network: {serviceCIDR: 198.19.0.0/24}\n"
	for _, s := range []string{"services:\n  kubeconfig: k.conf\n  loadBalancerClass: example.com/edge\n  serveUnclassed: true\n",
		"services:\n  inCluster: true\n  manifests: [a.yaml]\n", "services:\n  inCluster: yes\n  serveUnclassed: false\n",
		"services: {kubeconfig: '', inCluster: [1]}\n"} {
		f.Add([]byte(net + s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "lb.yaml")
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
		if c != nil {
			s := c.Services
			if s.FromAPI() && len(s.Manifests) > 0 || s.Kubeconfig != "" && s.InCluster || s.FromAPI() && s.LoadBalancerClass == "" && !s.ServeUnclassed {
				t.Fatalf("accepted an inconsistent services section: %+v", s)
			}
		}
	})
}

// TestDefaultBindIsDerived checks that no cluster.bind means "" (the daemon derives a
// cluster-role interface's address), never a wildcard address reachable on every interface.
func TestDefaultBindIsDerived(t *testing.T) {
	c, err := Parse([]byte("network: {serviceCIDR: 198.19.0.0/24}\ncluster: {insecure: true}\n"), filepath.Join("dir", "lb.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Bind != "" {
		t.Errorf("default cluster.bind %q, want \"\" (derived by the daemon)", c.Cluster.Bind)
	}
}
