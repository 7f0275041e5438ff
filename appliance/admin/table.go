package admin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteServices prints services as `kubectl get services` does:
// NAMESPACE NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE.
func WriteServices(w io.Writer, svcs []ServiceStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tTYPE\tCLUSTER-IP\tEXTERNAL-IP\tPORT(S)\tAGE")
	for _, s := range svcs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, clusterIPColumn(s),
			externalIPColumn(s), PortsColumn(s.Ports), Age(s.Created, now))
	}
	return tw.Flush()
}

func clusterIPColumn(s ServiceStatus) string {
	switch {
	case s.Type == "ExternalName":
		return "<none>"
	case s.Headless:
		return "None"
	case len(s.ClusterIPs) == 0:
		return "<none>"
	}
	return strings.Join(s.ClusterIPs, ",")
}

func externalIPColumn(s ServiceStatus) string {
	switch {
	case s.Type == "ExternalName":
		return s.ExternalName
	case s.ExternalIP != "":
		return s.ExternalIP
	case s.Type == "LoadBalancer":
		return "<pending>"
	}
	return "<none>"
}

// PortsColumn renders ports as kubectl does: 80/TCP, 80:30080/TCP, joined by commas.
func PortsColumn(ports []PortStatus) string {
	if len(ports) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		if p.NodePort != 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			parts = append(parts, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return strings.Join(parts, ",")
}

// Age renders a duration the way kubectl's AGE column does (5s, 3m, 2h, 4d).
func Age(created, now time.Time) string {
	if created.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(created)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 3*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

// WriteEndpoints prints endpoints one per line.
func WriteEndpoints(w io.Writer, eps []EndpointStatus) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSERVICE\tPORT\tENDPOINT\tREADY\tSERVING\tTERMINATING\tNODE")
	for _, e := range eps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%t\t%t\t%s\n", e.Namespace, e.Service, e.Port, e.Address,
			e.Ready, e.Serving, e.Terminating, dash(e.Node))
	}
	return tw.Flush()
}

// WriteFlows prints connection-tracking entries.
func WriteFlows(w io.Writer, flows []FlowStatus) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tCLIENT\tFRONTEND\tBACKEND\tSNAT\tSERVICE\tSTATE\tEXPIRES")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Protocol, f.Client, f.Frontend, f.Backend,
			dash(f.SNAT), dash(f.Service), f.State, f.ExpiresIn)
	}
	return tw.Flush()
}

// WriteMembers prints the cluster's nodes.
func WriteMembers(w io.Writer, ms []MemberStatus) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tVERSION\tVIPS")
	for _, m := range ms {
		vips := "<none>"
		if len(m.VIPs) > 0 {
			vips = strings.Join(m.VIPs, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Address, m.State, dash(m.Version), vips)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
