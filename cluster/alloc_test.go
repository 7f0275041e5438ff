package cluster

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestAllocationStoreResolve(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		sets []AllocationSet
		want map[string]Allocation
	}{
		{
			name: "earliest allocation wins",
			sets: []AllocationSet{
				{Origin: "lb-a", Generation: 1, Items: []Allocation{{Service: "ns/web", ClusterIP: ip("198.19.0.10"), CreatedUnixMilli: 200}}},
				{Origin: "lb-b", Generation: 1, Items: []Allocation{{Service: "ns/web", ClusterIP: ip("198.19.0.11"), CreatedUnixMilli: 100}}},
			},
			want: map[string]Allocation{"ns/web": {Service: "ns/web", ClusterIP: ip("198.19.0.11"), CreatedUnixMilli: 100}},
		},
		{
			name: "tie goes to lowest origin",
			sets: []AllocationSet{
				{Origin: "lb-c", Generation: 1, Items: []Allocation{{Service: "ns/web", NodePorts: []uint16{30001}, CreatedUnixMilli: 5}}},
				{Origin: "lb-b", Generation: 1, Items: []Allocation{{Service: "ns/web", NodePorts: []uint16{30002}, CreatedUnixMilli: 5}}},
			},
			want: map[string]Allocation{"ns/web": {Service: "ns/web", NodePorts: []uint16{30002}, CreatedUnixMilli: 5}},
		},
		{
			name: "newer generation replaces older",
			sets: []AllocationSet{
				{Origin: "lb-a", Generation: 2, Items: []Allocation{{Service: "ns/web", ClusterIP: ip("198.19.0.12")}}},
				{Origin: "lb-a", Generation: 1, Items: []Allocation{{Service: "ns/web", ClusterIP: ip("198.19.0.10")}}},
			},
			want: map[string]Allocation{"ns/web": {Service: "ns/web", ClusterIP: ip("198.19.0.12")}},
		},
		{
			name: "value taken by an earlier service is cleared",
			sets: []AllocationSet{
				{Origin: "lb-a", Generation: 1, Items: []Allocation{
					{Service: "ns/a", ClusterIP: ip("198.19.0.10"), ExternalIP: ip("198.19.1.1"), NodePorts: []uint16{30000, 30001}, CreatedUnixMilli: 1},
				}},
				{Origin: "lb-b", Generation: 1, Items: []Allocation{
					{Service: "ns/b", ClusterIP: ip("198.19.0.10"), ExternalIP: ip("198.19.1.1"), NodePorts: []uint16{30001, 30002}, CreatedUnixMilli: 2},
				}},
			},
			want: map[string]Allocation{
				"ns/a": {Service: "ns/a", ClusterIP: ip("198.19.0.10"), ExternalIP: ip("198.19.1.1"), NodePorts: []uint16{30000, 30001}, CreatedUnixMilli: 1},
				"ns/b": {Service: "ns/b", NodePorts: []uint16{0, 30002}, CreatedUnixMilli: 2},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every merge order gives the same answer.
			for _, order := range [][]int{{0, 1}, {1, 0}} {
				st := NewAllocationStore()
				for _, i := range order {
					st.Merge(tc.sets[i])
				}
				if got := st.Resolve(); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("order %v: got %+v, want %+v", order, got, tc.want)
				}
			}
		})
	}
}

func TestAllocationStoreForget(t *testing.T) {
	st := NewAllocationStore()
	st.Merge(AllocationSet{Origin: "lb-a", Generation: 1, Items: []Allocation{{Service: "ns/a"}}})
	if st.Merge(AllocationSet{Origin: "lb-a", Generation: 1}) {
		t.Fatal("same generation merged")
	}
	if !st.Forget("lb-a") || len(st.Resolve()) != 0 {
		t.Fatal("forget left allocations behind")
	}
}
