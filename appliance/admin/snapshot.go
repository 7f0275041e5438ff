package admin

import (
	"strconv"
	"time"

	"github.com/xdpsvc/lb/appliance/service"
)

// ServicesFromSnapshot converts a desired state into the API's Service view, without counters,
// endpoints' readiness filtered to the ready ones, and no VIP holder (the daemon fills those).
func ServicesFromSnapshot(snap *service.Snapshot) []ServiceStatus {
	out := make([]ServiceStatus, 0, len(snap.Services))
	for _, s := range snap.Services {
		st := ServiceStatus{
			Namespace:    s.Namespace,
			Name:         s.Name,
			Type:         s.Type.String(),
			Headless:     s.Headless,
			ExternalName: s.ExternalName,
			Pending:      s.Pending,
			Ports:        make([]PortStatus, 0, len(s.Ports)),
		}
		for _, ip := range s.ClusterIPs {
			st.ClusterIPs = append(st.ClusterIPs, ip.String())
		}
		if s.ExternalIP.IsValid() {
			st.ExternalIP = s.ExternalIP.String()
		}
		if s.CreationTimestampUnix != 0 {
			st.Created = time.Unix(s.CreationTimestampUnix, 0)
		}
		for _, p := range s.Ports {
			ps := PortStatus{
				Name: p.Name, Protocol: p.Protocol.String(), Port: p.Port, NodePort: p.NodePort,
				TargetPort: p.TargetPortName, ReadyEndpoints: []string{},
			}
			if ps.TargetPort == "" {
				ps.TargetPort = strconv.Itoa(int(p.TargetPort))
			}
			for _, e := range p.Endpoints {
				if e.Ready {
					ps.ReadyEndpoints = append(ps.ReadyEndpoints, endpointString(e))
				}
			}
			st.Ports = append(st.Ports, ps)
		}
		out = append(out, st)
	}
	return out
}

// EndpointsFromSnapshot lists every endpoint of every Service port.
func EndpointsFromSnapshot(snap *service.Snapshot) []EndpointStatus {
	var out []EndpointStatus
	for _, s := range snap.Services {
		for _, p := range s.Ports {
			port := p.Name
			if port == "" {
				port = strconv.Itoa(int(p.Port)) + "/" + p.Protocol.String()
			}
			for _, e := range p.Endpoints {
				out = append(out, EndpointStatus{
					Namespace: s.Namespace, Service: s.Name, Port: port, Address: endpointString(e),
					Ready: e.Ready, Serving: e.Serving, Terminating: e.Terminating, Node: e.NodeName,
				})
			}
		}
	}
	return out
}

func endpointString(e service.Endpoint) string {
	if e.Addr.Is6() {
		return "[" + e.Addr.String() + "]:" + strconv.Itoa(int(e.Port))
	}
	return e.Addr.String() + ":" + strconv.Itoa(int(e.Port))
}
