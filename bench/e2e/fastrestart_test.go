package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/tstest"
)

// TestFastRestartKeepsConnections kills the VIP owner with SIGKILL and starts it again at once,
// before the others may have noticed it died (a crash loop under a supervisor). The restarted
// node comes up syncing, asks the others for their flows, and takes its VIPs back only with
// them: the long-lived connections through the VIP must keep exchanging.
func TestFastRestartKeepsConnections(t *testing.T) {
	l := startLabNodes(t, 3, 2, 0)
	m := manifests("198.18.1.21", "198.18.1.22")
	nodes := startCluster(t, l, m)
	client := l.Clients[0]
	var owner *node
	tstest.Eventually(t, 15*time.Second, "three synced members and one VIP owner", func() error {
		owners := map[string]bool{}
		for _, n := range nodes {
			if a := aliveMembers(n); a != 3 {
				return fmt.Errorf("%s sees %d alive members", n.name(), a)
			}
			owners[vipOwner(n)] = true
		}
		if len(owners) != 1 || owners[""] {
			return fmt.Errorf("owners %v", owners)
		}
		for _, n := range nodes {
			if owners[n.name()] {
				owner = n
			}
		}
		_, err := get(client, "http://198.19.1.1/")
		return err
	})
	ll := holdConnections(t, client, 5)
	time.Sleep(500 * time.Millisecond) // the flows reach the others (sync every 250 ms)
	if err := owner.Kill(); err != nil {
		t.Fatal(err)
	}
	<-owner.Process().Done()
	killed := time.Now()
	owner.start()
	tstest.Eventually(t, 15*time.Second, "the restarted node holds the VIP again", func() error {
		for _, n := range nodes {
			if o := vipOwner(n); o != owner.name() {
				return fmt.Errorf("%s says the owner is %q", n.name(), o)
			}
		}
		return nil
	})
	back := time.Since(killed)
	before := ll.exchanged.Load()
	time.Sleep(2 * time.Second)
	ll.stop()
	t.Logf("%s killed and restarted: owner again %v after the kill; %d of 5 long-lived connections broke, %d exchanges in the 2 s after",
		owner.name(), back.Round(time.Millisecond), ll.broken.Load(), ll.exchanged.Load()-before)
	if b := ll.broken.Load(); b != 0 {
		t.Errorf("%d of 5 long-lived connections broke", b)
	}
	if n := ll.exchanged.Load() - before; n < 5 {
		t.Errorf("only %d exchanges in the 2 s after the VIP came back", n)
	}
}
