package e2e

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/bench/lab"
)

// vipOwner asks a node who holds the web Service's VIP.
func vipOwner(n *node) string {
	var svcs []admin.ServiceStatus
	n.api("/api/v1/services", &svcs)
	for _, s := range svcs {
		if s.Name == "web" {
			return s.VIPHolder
		}
	}
	return ""
}

// TestVIPFailover runs three appliance nodes, kills the VIP owner with SIGKILL while a client
// opens new connections continuously and holds long-lived connections exchanging data every
// 50 ms, and measures the time until new connections through the VIP succeed again. It checks
// that a survivor takes the VIP and serves, and that no long-lived connection broke; the
// figures are logged. APPLIANCE_FAILOVER_KILLS=N repeats the kill N times (the killed node is
// restarted between kills) and logs the distribution.
func TestVIPFailover(t *testing.T) {
	kills := 1
	if v, err := strconv.Atoi(os.Getenv("APPLIANCE_FAILOVER_KILLS")); err == nil && v > 0 {
		kills = v
	}
	l := startLabNodes(t, 3, 2, 0)
	m := manifests("198.18.1.21", "198.18.1.22")
	nodes := startCluster(t, l, m)
	client := l.Clients[0]
	byName := map[string]*node{}
	for _, n := range nodes {
		byName[n.name()] = n
	}
	waitFor(t, 15*time.Second, "three members and one VIP owner agreed by all", func() error {
		owners := map[string]bool{}
		for _, n := range nodes {
			var ms []admin.MemberStatus
			n.api("/api/v1/members", &ms)
			alive := 0
			for _, mm := range ms {
				if mm.State == "alive" {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("%s sees %d alive members", n.ns.Name, alive)
			}
			owners[vipOwner(n)] = true
		}
		if len(owners) != 1 || owners[""] {
			return fmt.Errorf("owners %v", owners)
		}
		_, err := get(client, "http://198.19.1.1/")
		return err
	})

	var serving []time.Duration
	for k := range kills {
		owner := vipOwner(nodes[0])
		victim := byName[owner]
		if victim == nil {
			t.Fatalf("owner %q unknown", owner)
		}
		// Long-lived connections through the VIP, exchanging data every 50 ms.
		var broken atomic.Int64
		stop := make(chan struct{})
		var lw sync.WaitGroup
		for range 5 {
			c, err := lab.Dial(client, "tcp", "198.19.1.1:7000")
			if err != nil {
				t.Fatal(err)
			}
			lw.Add(1)
			go func() {
				defer lw.Done()
				defer c.Close()
				buf := make([]byte, 16)
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					_ = c.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := c.Write([]byte("x\n")); err != nil {
						broken.Add(1)
						return
					}
					if _, err := c.Read(buf); err != nil {
						broken.Add(1)
						return
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		killed := time.Now()
		if err := syscall.Kill(victim.proc.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// New connections, each with a short timeout, until one succeeds.
		var back time.Duration
		for time.Since(killed) < 20*time.Second {
			c := lab.HTTPClient(client)
			c.Timeout = 200 * time.Millisecond
			resp, err := c.Get("http://198.19.1.1/")
			if err == nil {
				resp.Body.Close()
				back = time.Since(killed)
				break
			}
		}
		close(stop)
		lw.Wait()
		if back == 0 {
			t.Fatalf("kill %d: the VIP did not serve again within 20 s after %s died", k+1, owner)
		}
		serving = append(serving, back)
		var survivor *node
		for _, n := range nodes {
			if n != victim {
				survivor = n
			}
		}
		newOwner := vipOwner(survivor)
		t.Logf("kill %d: %s killed, VIP served again after %v by %s; long-lived connections broken: %d of 5",
			k+1, owner, back.Round(time.Millisecond), newOwner, broken.Load())
		if newOwner == owner || newOwner == "" {
			t.Fatalf("VIP owner after the kill is %q", newOwner)
		}
		// Flow-state sync and the floating SNAT address (the VIP) keep established connections.
		if b := broken.Load(); b != 0 {
			t.Errorf("kill %d: %d of 5 long-lived connections broke", k+1, b)
		}
		<-victim.proc.Done()
		if k+1 < kills {
			victim.start(m)
			waitFor(t, 15*time.Second, "VIP back to a steady owner", func() error {
				if o := vipOwner(victim); o == "" || o != vipOwner(survivor) {
					return fmt.Errorf("owners disagree")
				}
				_, err := get(client, "http://198.19.1.1/")
				return err
			})
		}
	}
	sort.Slice(serving, func(i, j int) bool { return serving[i] < serving[j] })
	t.Logf("VIP serving again after owner death over %d kills: min %v median %v max %v",
		len(serving), serving[0].Round(time.Millisecond), serving[len(serving)/2].Round(time.Millisecond), serving[len(serving)-1].Round(time.Millisecond))
}
