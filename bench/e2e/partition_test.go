package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/tstest"
)

// holdsWeb reports whether a node says it holds the web Service's VIP itself (/api/v1/members).
func holdsWeb(n *node) bool {
	var ms []admin.MemberStatus
	n.api("/api/v1/members", &ms)
	for _, m := range ms {
		if m.Name == n.name() {
			for _, v := range m.VIPs {
				if v == "198.19.1.1" {
					return true
				}
			}
		}
	}
	return false
}

// TestPartitionAndHeal cuts the VIP owner off the external segment (link down), checks that the
// majority side moves the VIP and serves while the isolated node, a minority, holds nothing,
// then heals the link and checks that within a bounded time all three nodes agree on exactly one
// owner and the VIP serves. The time from heal to agreement is logged.
func TestPartitionAndHeal(t *testing.T) {
	l := startLabNodes(t, 3, 2, 0)
	m := manifests("198.18.1.21", "198.18.1.22")
	nodes := startCluster(t, l, m)
	client := l.Clients[0]
	agreed := func() (string, error) {
		owners := map[string]bool{}
		holders := 0
		for _, n := range nodes {
			owners[vipOwner(n)] = true
			if holdsWeb(n) {
				holders++
			}
		}
		if len(owners) != 1 || owners[""] || holders != 1 {
			return "", fmt.Errorf("owners %v, %d nodes hold the VIP", owners, holders)
		}
		for o := range owners {
			return o, nil
		}
		return "", nil
	}
	var owner string
	tstest.Eventually(t, 15*time.Second, "three alive members (none still syncing) and one owner agreed by all", func() (err error) {
		for _, n := range nodes {
			if alive := aliveMembers(n); alive != 3 {
				return fmt.Errorf("%s sees %d alive members", n.name(), alive)
			}
		}
		owner, err = agreed()
		return err
	})

	var cut *node
	for _, n := range nodes {
		if n.name() == owner {
			cut = n
		}
	}
	ctx := t.Context()
	if _, err := cut.ns.Run(ctx, "ip", "link", "set", "ext0", "down"); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	// Poll every 20 ms with short request timeouts, so the two moments are measured, not the
	// poll interval: the isolated node letting go (it notices it lost quorum) and the VIP
	// serving through the majority.
	var released, served time.Duration
	for time.Since(cutAt) < 10*time.Second && (released == 0 || served == 0) {
		if released == 0 && !holdsWeb(cut) {
			released = time.Since(cutAt)
		}
		if served == 0 {
			c := lab.HTTPClient(client)
			c.Timeout = 200 * time.Millisecond
			if resp, err := c.Get("http://198.19.1.1/"); err == nil {
				resp.Body.Close()
				served = time.Since(cutAt)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if released == 0 || served == 0 {
		t.Fatalf("10 s after cutting %s off: released after %v, served after %v (0: not yet)", owner, released, served)
	}
	t.Logf("partition: %s (cut off) let the VIP go after %v; the majority served it after %v",
		owner, released.Round(time.Millisecond), served.Round(time.Millisecond))

	if _, err := cut.ns.Run(ctx, "ip", "link", "set", "ext0", "up"); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	tstest.Eventually(t, 15*time.Second, "one owner after healing", func() error {
		if _, err := agreed(); err != nil {
			return err
		}
		for _, n := range nodes {
			if alive := aliveMembers(n); alive != 3 {
				return fmt.Errorf("%s sees %d alive", n.ns.Name, alive)
			}
		}
		return nil
	})
	t.Logf("heal: all three nodes agree on one owner %v after the link came back", time.Since(healed).Round(time.Millisecond))
	tstest.Eventually(t, 10*time.Second, "VIP serves after healing", func() error { _, err := get(client, "http://198.19.1.1/"); return err })
}
