package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseHealthChecks(t *testing.T) {
	base := "network:\n  serviceCIDR: 198.19.0.0/24\n"
	cases := []struct {
		name    string
		yaml    string
		wantErr string // FILE:LINE: FIELD: MESSAGE, empty when valid
		want    HealthChecksConfig
	}{
		{"defaults: enabled", base, "",
			HealthChecksConfig{Enabled: true, Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}},
		{"all fields", base + "healthChecks: {enabled: true, interval: 5s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 5}\n", "",
			HealthChecksConfig{Enabled: true, Interval: 5 * time.Second, Timeout: 500 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 5}},
		{"disabled", base + "healthChecks:\n  enabled: false\n", "",
			HealthChecksConfig{Enabled: false, Interval: 2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 3}},
		{"short interval clamps the default timeout", base + "healthChecks: {interval: 300ms}\n", "",
			HealthChecksConfig{Enabled: true, Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 3}},
		{"explicit timeout above interval", base + "healthChecks:\n  interval: 1s\n  timeout: 2s\n",
			"lb.yaml:5: healthChecks.timeout: must not exceed healthChecks.interval (1s)", HealthChecksConfig{}},
		{"bad duration", base + "healthChecks:\n  interval: soon\n",
			`lb.yaml:4: healthChecks.interval: invalid duration "soon"`, HealthChecksConfig{}},
		{"threshold 0", base + "healthChecks:\n  healthyThreshold: 0\n",
			"lb.yaml:4: healthChecks.healthyThreshold: must be between 1 and 100", HealthChecksConfig{}},
		{"threshold not a number", base + "healthChecks:\n  unhealthyThreshold: many\n",
			"lb.yaml:4: healthChecks.unhealthyThreshold: must be an integer", HealthChecksConfig{}},
		{"enabled not a bool", base + "healthChecks:\n  enabled: yes please\n",
			"lb.yaml:4: healthChecks.enabled: must be true or false", HealthChecksConfig{}},
		{"unknown key", base + "healthChecks:\n  path: /healthz\n",
			"lb.yaml:4: healthChecks.path: unknown field", HealthChecksConfig{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "lb.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.HealthChecks != tc.want {
				t.Fatalf("healthChecks %+v, want %+v", c.HealthChecks, tc.want)
			}
		})
	}
}
