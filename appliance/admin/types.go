package admin

import "time"

// ServiceStatus is one Service as `appliance get services` and /api/v1/services show it.
type ServiceStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is ClusterIP, NodePort, LoadBalancer or ExternalName.
	Type       string   `json:"type"`
	ClusterIPs []string `json:"clusterIPs,omitempty"`
	// Headless is true for clusterIP: None; such Services are not load-balanced.
	Headless     bool   `json:"headless,omitempty"`
	ExternalName string `json:"externalName,omitempty"`
	// ExternalIP is the LoadBalancer address, empty while pending.
	ExternalIP string `json:"externalIP,omitempty"`
	// Pending is true for a LoadBalancer Service that has no external IP.
	Pending bool `json:"pending,omitempty"`
	// VIPHolder names the node that announces ExternalIP.
	VIPHolder string       `json:"vipHolder,omitempty"`
	Ports     []PortStatus `json:"ports"`
	Created   time.Time    `json:"created"`
}

// PortStatus is one port of a Service with its traffic counters.
type PortStatus struct {
	Name       string `json:"name,omitempty"`
	Protocol   string `json:"protocol"`
	Port       uint16 `json:"port"`
	NodePort   uint16 `json:"nodePort,omitempty"`
	TargetPort string `json:"targetPort"`
	// ReadyEndpoints are the addr:port pairs that get new flows.
	ReadyEndpoints []string `json:"readyEndpoints"`
	Packets        uint64   `json:"packets"`
	Bytes          uint64   `json:"bytes"`
	NewFlows       uint64   `json:"newFlows"`
	ActiveFlows    uint64   `json:"activeFlows"`
}

// EndpointStatus is one endpoint of one Service port.
type EndpointStatus struct {
	Namespace   string `json:"namespace"`
	Service     string `json:"service"`
	Port        string `json:"port"`
	Address     string `json:"address"`
	Ready       bool   `json:"ready"`
	Serving     bool   `json:"serving"`
	Terminating bool   `json:"terminating"`
	Node        string `json:"node,omitempty"`
}

// FlowStatus is one connection-tracking entry.
type FlowStatus struct {
	Protocol string `json:"protocol"`
	Client   string `json:"client"`
	Frontend string `json:"frontend"`
	Backend  string `json:"backend"`
	// SNAT is the address:port the backend sees as the client; empty when the source is kept.
	SNAT      string `json:"snat,omitempty"`
	Service   string `json:"service,omitempty"`
	State     string `json:"state"`
	ExpiresIn string `json:"expiresIn"`
}

// MemberStatus is one appliance node as the cluster sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"`
	// Version is the software version the member announces in its cluster metadata; "" when
	// its metadata is unknown.
	Version string   `json:"version,omitempty"`
	VIPs    []string `json:"vips,omitempty"`
}

// Source is what the server reads. The daemon implements it; every method must be safe for
// concurrent use and cheap enough to call once per request.
type Source interface {
	Healthy() error
	Services() []ServiceStatus
	Endpoints() []EndpointStatus
	Flows(limit int) []FlowStatus
	Members() []MemberStatus
}
