package service

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const benchConfig = `
node: {name: bench}
network:
  serviceCIDR: 198.19.0.0/17
  loadBalancerPools:
    - name: default
      cidrs: [198.19.128.0/22]
`

func benchService(i int, affinity bool) *corev1.Service {
	typ := corev1.ServiceTypeClusterIP
	switch {
	case i%10 == 0:
		typ = corev1.ServiceTypeLoadBalancer
	case i%5 == 0:
		typ = corev1.ServiceTypeNodePort
	}
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%05d", i), Namespace: "bench"},
		Spec: corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if affinity {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	}
	return s
}

func benchSlice(i int) *discoveryv1.EndpointSlice {
	name, port, ready := "http", int32(8080), true
	es := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("svc-%05d-x", i), Namespace: "bench", Labels: map[string]string{LabelServiceName: fmt.Sprintf("svc-%05d", i)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for j := range 10 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(2 + (i*10+j)/250%250), byte(1 + (i*10+j)%250)})
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

func benchObjects(b *testing.B, n int) []Object {
	objs := make([]Object, 0, 2*n)
	for i := range n {
		for _, v := range []any{benchService(i, false), benchSlice(i)} {
			o, err := NewObject(v, "bench.yaml", i)
			if err != nil {
				b.Fatal(err)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// BenchmarkBuild: a full build of 10,000 Services with 10 endpoints each (target < 500 ms/op).
func BenchmarkBuild(b *testing.B) {
	cfg := mustConfig(b, benchConfig)
	objs := benchObjects(b, 10000)
	b.ReportAllocs() // b.Loop starts the timer: the setup above is not measured
	for b.Loop() {
		if _, _, err := Build(objs, cfg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReloadOneChanged: an incremental reload of the same 10,000 Services where one changed.
func BenchmarkReloadOneChanged(b *testing.B) {
	cfg := mustConfig(b, benchConfig)
	objs := benchObjects(b, 10000)
	bl := NewBuilder(cfg)
	_, st, err := bl.Build(objs, nil)
	if err != nil {
		b.Fatal(err)
	}
	var versions [2]Object
	versions[0] = objs[2*777]
	versions[1], _ = NewObject(benchService(777, true), "bench.yaml", 777)
	b.ReportAllocs() // b.Loop starts the timer: the setup above is not measured
	i := 0
	for b.Loop() {
		i++
		objs[2*777] = versions[i%2]
		var snap *Snapshot
		if snap, st, err = bl.Build(objs, st); err != nil {
			b.Fatal(err)
		}
		_ = snap
	}
}
