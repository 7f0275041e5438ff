package daemon

import (
	"testing"

	"github.com/xdpsvc/lb/appliance/config"
	"github.com/xdpsvc/lb/appliance/dataplane"
)

func TestSetDataPlaneLimits(t *testing.T) {
	for _, tc := range []struct {
		name                string
		in                  config.DataPlaneConfig
		flows, flowBurst    int
		replies, replyBurst int
	}{
		{"defaults of the config file", config.DefaultConfig().DataPlane, 10_000, 20_000, 1000, 50},
		{"0 turns a limit off", config.DataPlaneConfig{NewFlowsPerSourceBurst: 5, LocalReplyBurst: 7}, -1, 5, -1, 7},
		{"values pass through", config.DataPlaneConfig{NewFlowsPerSourcePerSecond: 3, NewFlowsPerSourceBurst: 4,
			LocalRepliesPerSecond: 5, LocalReplyBurst: 6}, 3, 4, 5, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dataplane.DefaultConfig()
			setDataPlaneLimits(&d, tc.in)
			if d.NewFlowsPerSourcePerSecond != tc.flows || d.NewFlowsPerSourceBurst != tc.flowBurst ||
				d.LocalRepliesPerSecond != tc.replies || d.LocalReplyBurst != tc.replyBurst {
				t.Fatalf("got %d/%d %d/%d", d.NewFlowsPerSourcePerSecond, d.NewFlowsPerSourceBurst, d.LocalRepliesPerSecond, d.LocalReplyBurst)
			}
		})
	}
}
