package daemon

import (
	"testing"

	"github.com/xdpsvc/lb/cluster"
)

// TestFirstLiveAppliance: a pending Service's status is written by exactly one node, the live
// appliance that sorts first; dead members and agents do not count, the node itself always
// does.
func TestFirstLiveAppliance(t *testing.T) {
	agent := cluster.MemberInfo{Name: "a-agent", State: cluster.StateAlive, MetaValid: true, Meta: cluster.Meta{Role: cluster.RoleBackend}}
	cases := []struct {
		name    string
		members []cluster.MemberInfo
		self    string
		want    bool
	}{
		{name: "alone", members: []cluster.MemberInfo{appliance("lb-b", cluster.StateAlive)}, self: "lb-b", want: true},
		{name: "not in its own view yet", self: "lb-b", want: true},
		{name: "first by name", members: []cluster.MemberInfo{appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive)}, self: "lb-a", want: true},
		{name: "second by name", members: []cluster.MemberInfo{appliance("lb-a", cluster.StateAlive), appliance("lb-b", cluster.StateAlive)}, self: "lb-b", want: false},
		{name: "the first is dead", members: []cluster.MemberInfo{appliance("lb-a", cluster.StateDead), appliance("lb-b", cluster.StateAlive)}, self: "lb-b", want: true},
		{name: "the first left", members: []cluster.MemberInfo{appliance("lb-a", cluster.StateLeft), appliance("lb-b", cluster.StateAlive)}, self: "lb-b", want: true},
		{name: "an agent sorts first", members: []cluster.MemberInfo{agent, appliance("lb-b", cluster.StateAlive)}, self: "lb-b", want: true},
		{name: "itself seen dead", members: []cluster.MemberInfo{appliance("lb-a", cluster.StateDead), appliance("lb-b", cluster.StateAlive)}, self: "lb-a", want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstLiveAppliance(tc.members, tc.self); got != tc.want {
				t.Errorf("firstLiveAppliance = %v, want %v", got, tc.want)
			}
		})
	}
}
