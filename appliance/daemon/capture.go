package daemon

import (
	"fmt"
	"net/http"

	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/appliance/dataplane"
	"github.com/xdpsvc/lb/appliance/service"
)

// captureRoutes is the admin API's capture endpoint over the node's data plane; closing done
// ends captures in progress.
func (n *node) captureRoutes(done <-chan struct{}) map[string]http.Handler {
	h := capture.Handler(capture.HandlerConfig{
		Target: n.dp,
		ResolveService: func(key string) ([]capture.Rule, error) {
			return ServiceCaptureRules(n.snapshot(), n.ports, key)
		},
		Logger: n.log,
		Done:   done,
	})
	return map[string]http.Handler{"GET /api/v1/capture": h}
}

// ServiceCaptureRules returns capture rules matching every frontend of the Service key
// ("namespace/name") in snap: its ClusterIPs and external IP with each port, and every node
// address of ports with each nodePort. Translated frames match through the frontend side too,
// because the capture tests each frame before and after translation.
func ServiceCaptureRules(snap *service.Snapshot, ports []dataplane.Port, key string) ([]capture.Rule, error) {
	if snap == nil {
		return nil, fmt.Errorf("service %s: no services loaded", key)
	}
	for _, s := range snap.Services {
		if s.Key() != key {
			continue
		}
		var rules []capture.Rule
		for _, p := range s.Ports {
			proto := uint8(p.Protocol)
			for _, ip := range s.ClusterIPs {
				rules = append(rules, capture.Rule{Addr: ip, Port: p.Port, Proto: proto})
			}
			if s.ExternalIP.IsValid() {
				rules = append(rules, capture.Rule{Addr: s.ExternalIP, Port: p.Port, Proto: proto})
			}
			if p.NodePort != 0 {
				for _, dp := range ports {
					for _, pf := range dp.Prefixes {
						rules = append(rules, capture.Rule{Addr: pf.Addr(), Port: p.NodePort, Proto: proto})
					}
				}
			}
		}
		return rules, nil
	}
	return nil, fmt.Errorf("service %s not found", key)
}
