package lab

import (
	"testing"

	"github.com/xdpsvc/lb/appliance/service"
)

// TestManifestsGolden checks the YAML Manifests writes, to the byte, for a Service with every field and
// one without endpoints, and that the appliance's manifest loader accepts it.
func TestManifestsGolden(t *testing.T) {
	got := Manifests(
		Service{Name: "web", LoadBalancerIP: "198.19.1.1", ClusterIP: "198.19.0.10",
			Ports: []ServicePort{
				{Name: "http", Protocol: "TCP", Port: 80, TargetPort: 8080, NodePort: 30080},
				{Name: "echo", Protocol: "UDP", Port: 9000, TargetPort: 9000},
			},
			Endpoints: []Endpoint{{Addr: "198.18.1.21"}, {Addr: "198.18.1.22", NotReady: true}}},
		Service{Name: "empty", LoadBalancerIP: "198.19.1.2", Ports: []ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: 8080}}},
	)
	const want = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.1
  clusterIP: 198.19.0.10
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
    - {name: echo, protocol: UDP, port: 9000, targetPort: 9000}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}, {name: echo, protocol: UDP, port: 9000}]
endpoints:
  - addresses: [198.18.1.21]
    conditions: {ready: true}
  - addresses: [198.18.1.22]
    conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.19.1.2
  ports:
    - {name: http, protocol: TCP, port: 80, targetPort: 8080}
`
	if got != want {
		t.Fatalf("Manifests:\n%s\nwant:\n%s", got, want)
	}
	objs, err := service.ParseManifests([]byte(got), "services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Errorf("%d objects, want 3", len(objs))
	}
}
