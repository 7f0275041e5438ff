package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsvc/lb/bench/lab"
	"github.com/xdpsvc/lb/bench/tstest"
)

// TestSoak runs mixed traffic through one appliance for APPLIANCE_SOAK (e.g. 10m): new HTTP
// connections, long-lived TCP echo connections exchanging data every 50 ms, UDP echo, and a
// reload every 20 s that removes and restores a backend. It then checks that nothing leaked:
// every UMEM frame is back in the free/fill pool (none held), conntrack shrinks back once the
// traffic stops, and the appliance's goroutines and heap did not grow. Skipped unless the
// variable is set (it is not part of make test).
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("APPLIANCE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("soak: set APPLIANCE_SOAK=10m to run")
	}
	l := startLab(t, 3)
	all := manifests("198.18.1.21", "198.18.1.22", "198.18.1.23")
	n := startNode(t, l, 0, all)
	client := l.Clients[0]
	tstest.Eventually(t, 10*time.Second, "VIP", func() error { _, err := get(client, "http://198.19.1.1/"); return err })

	// Warm up, then take the baseline.
	for range 200 {
		_, _ = get(client, "http://198.19.1.1/")
	}
	base := n.metrics()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var c soakCounts
	wg := startSoakTraffic(ctx, client, &c)
	reloads := 0
	tick := time.NewTicker(20 * time.Second)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			reloads++
			if reloads%2 == 1 {
				n.writeManifests(manifests("198.18.1.21", "198.18.1.22"))
			} else {
				n.writeManifests(all)
			}
			t.Logf("%v: http ok %d err %d, echo exchanges %d broken %d, udp ok %d err %d, reloads %d",
				time.Duration(reloads)*20*time.Second, c.httpOK.Load(), c.httpErr.Load(), c.echoOK.Load(), c.echoBroken.Load(), c.udpOK.Load(), c.udpErr.Load(), reloads)
		}
	}
	tick.Stop()
	wg.Wait()
	n.writeManifests(all)

	// Let the data plane settle: no traffic, every frame back in the pools.
	var end string
	tstest.Eventually(t, 10*time.Second, "UMEM frames back", func() error {
		end = n.metrics()
		for _, q := range []string{"ext0", "int0"} {
			name := `appliance_xsk_umem_frames{iface="` + q + `",queue="0",state="held"}`
			if v := metricValue(t, end, name); v != 0 {
				return fmt.Errorf("%s = %v", name, v)
			}
		}
		return nil
	})
	t.Logf("traffic: http ok %d err %d; echo exchanges %d, broken %d; udp ok %d err %d; reloads %d",
		c.httpOK.Load(), c.httpErr.Load(), c.echoOK.Load(), c.echoBroken.Load(), c.udpOK.Load(), c.udpErr.Load(), reloads)
	for _, m := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "appliance_conntrack_entries"} {
		t.Logf("%s: %v at start, %v at end", m, metricValue(t, base, m), metricValue(t, end, m))
	}
	if g0, g1 := metricValue(t, base, "go_goroutines"), metricValue(t, end, "go_goroutines"); g1 > g0+5 {
		t.Errorf("goroutines grew from %v to %v", g0, g1)
	}
	if h0, h1 := metricValue(t, base, "go_memstats_heap_inuse_bytes"), metricValue(t, end, "go_memstats_heap_inuse_bytes"); h1 > h0+64<<20 {
		t.Errorf("heap in use grew from %v to %v", h0, h1)
	}
	for _, line := range strings.Split(end, "\n") {
		if strings.HasPrefix(line, "appliance_xsk_umem_frames") || strings.HasPrefix(line, "appliance_dropped_packets_total") && !strings.HasSuffix(line, " 0") {
			t.Log(line)
		}
	}
	if c.httpOK.Load() == 0 || c.echoOK.Load() == 0 || c.udpOK.Load() == 0 {
		t.Fatal("a traffic kind never succeeded")
	}
	// Conntrack: with the traffic stopped, entries expire (TIME_WAIT 120 s, UDP 30/120 s) and the
	// table empties; check it shrinks rather than wait out every timeout.
	ct0 := metricValue(t, end, "appliance_conntrack_entries")
	tstest.Eventually(t, 3*time.Minute, "conntrack shrinking", func() error {
		if v := metricValue(t, n.metrics(), "appliance_conntrack_entries"); v > ct0/4 {
			return fmt.Errorf("conntrack entries %v (were %v at the end of traffic)", v, ct0)
		}
		return nil
	})
}

// soakCounts are the outcomes of the soak's traffic, counted by its goroutines.
type soakCounts struct {
	httpOK, httpErr, udpOK, udpErr, echoOK, echoBroken atomic.Int64
}

// startSoakTraffic sends the soak's traffic from client until ctx ends: new HTTP connections, long-lived
// TCP echo connections (re-opened when a reload ends them) and UDP echo. Wait on the group it returns.
func startSoakTraffic(ctx context.Context, client *lab.NS, counts *soakCounts) *sync.WaitGroup {
	var wg sync.WaitGroup

	for range 4 { // new connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := get(client, "http://198.19.1.1/"); err != nil {
					counts.httpErr.Add(1)
				} else {
					counts.httpOK.Add(1)
				}
			}
		}()
	}
	for range 8 { // long-lived connections, re-opened when a reload ends them
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for ctx.Err() == nil {
				c, err := lab.Dial(client, "tcp", "198.19.1.1:7000")
				if err != nil {
					counts.echoBroken.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for ctx.Err() == nil {
					_ = c.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := c.Write([]byte("ping\n")); err != nil {
						counts.echoBroken.Add(1)
						break
					}
					if _, err := c.Read(buf); err != nil {
						counts.echoBroken.Add(1)
						break
					}
					counts.echoOK.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
				c.Close()
			}
		}()
	}
	wg.Add(1)
	go func() { // UDP
		defer wg.Done()
		c, err := lab.Dial(client, "udp", "198.19.1.1:9000")
		if err != nil {
			counts.udpErr.Add(1)
			return
		}
		defer c.Close()
		buf := make([]byte, 128)
		for ctx.Err() == nil {
			_, _ = c.Write([]byte("soak"))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil {
				counts.udpErr.Add(1)
			} else {
				counts.udpOK.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return &wg
}
