package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/tstest"
)

// TestWrongKeyIsRefused runs three appliance nodes whose gossip is encrypted with one key and a
// fourth node, joining the same addresses, with another key. The fourth must never become a
// member of the others' cluster, and, seeing only itself out of the four members it expects, must
// claim no VIP: the three keep exactly one owner of the VIP and serve it.
func TestWrongKeyIsRefused(t *testing.T) {
	l := startLabNodes(t, 4, 2, 0)
	m := manifests("198.18.1.21", "198.18.1.22")
	key, wrongKey := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	nodes := startCluster(t, l, m, key, key, key, wrongKey)
	good, intruder := nodes[:3], nodes[3]
	client := l.Clients[0]

	membersOf := func(n *node) map[string]string {
		var ms []admin.MemberStatus
		n.api("/api/v1/members", &ms)
		out := map[string]string{}
		for _, mm := range ms {
			out[mm.Name] = mm.State
		}
		return out
	}
	tstest.Eventually(t, 15*time.Second, "the three keyed nodes agree on one VIP owner and serve", func() error {
		owners := map[string]bool{}
		for _, n := range good {
			ms := membersOf(n)
			alive := 0
			for _, st := range ms {
				if st == "alive" {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("%s sees members %v", n.name(), ms)
			}
			owners[vipOwner(n)] = true
		}
		if len(owners) != 1 || owners[""] {
			return fmt.Errorf("owners %v", owners)
		}
		_, err := get(client, "http://198.19.1.1/")
		return err
	})
	owner := vipOwner(good[0])

	// Let the intruder try for several join rounds (every 250 ms) and probe periods.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range good {
			if st, ok := membersOf(n)[intruder.name()]; ok {
				t.Fatalf("%s lists the wrongly keyed %s as a member (%s)", n.name(), intruder.name(), st)
			}
		}
		ms := membersOf(intruder)
		if len(ms) != 1 {
			t.Fatalf("the wrongly keyed node sees members %v", ms)
		}
		if mt := intruder.metrics(); !strings.Contains(mt, "\nappliance_vips_held ") {
			t.Fatal("no appliance_vips_held metric")
		} else if h := metricValue(t, mt, "appliance_vips_held"); h != 0 {
			t.Fatalf("the wrongly keyed node holds %v VIPs", h)
		}
		if o := vipOwner(intruder); o != "" {
			t.Fatalf("the wrongly keyed node thinks %q holds the VIP", o)
		}
		if o := vipOwner(good[1]); o != owner {
			t.Fatalf("VIP owner changed from %s to %s while the intruder tried to join", owner, o)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for range 10 {
		if _, err := get(client, "http://198.19.1.1/"); err != nil {
			t.Fatalf("VIP through %s: %v", owner, err)
		}
	}
	t.Logf("%s (wrong key) stayed out; %s kept the VIP", intruder.name(), owner)
}
