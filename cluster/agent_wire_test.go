package cluster

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func agentEP(svc string, ports ...AgentPort) AgentEndpoint {
	return AgentEndpoint{Service: svc, Addr: netip.MustParseAddr("198.18.1.21"), State: EndpointReady, Ports: ports}
}

var tcp8080 = AgentPort{Port: 8080, Protocol: ProtocolTCP}

func TestMetaEndpointsSortedOnEncode(t *testing.T) {
	m := Meta{Role: RoleBackend, Endpoints: []AgentEndpoint{agentEP("ns/b", tcp8080), agentEP("ns/a", tcp8080)}}
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoints[0].Service != "ns/a" || got.Endpoints[1].Service != "ns/b" {
		t.Fatalf("endpoints %+v, want sorted", got.Endpoints)
	}
	if m.Endpoints[0].Service != "ns/b" {
		t.Fatal("EncodeMeta reordered the caller's slice")
	}
}

func TestMetaEndpointEncodeRejects(t *testing.T) {
	// Long service names fill 512 bytes with few endpoints.
	var big []AgentEndpoint
	for i := range 4 {
		big = append(big, agentEP("ns/"+strings.Repeat(string(rune('a'+i)), 150), tcp8080))
	}
	tooMany := make([]AgentEndpoint, 33)
	for i := range tooMany {
		tooMany[i] = agentEP("ns/s"+string(rune('a'+i)), tcp8080)
	}
	tests := []struct {
		name string
		eps  []AgentEndpoint
	}{
		{"over 512 bytes", big},
		{"too many endpoints", tooMany},
		{"no slash", []AgentEndpoint{agentEP("web", tcp8080)}},
		{"empty namespace", []AgentEndpoint{agentEP("/web", tcp8080)}},
		{"two slashes", []AgentEndpoint{agentEP("a/b/c", tcp8080)}},
		{"twice", []AgentEndpoint{agentEP("ns/a", tcp8080), agentEP("ns/a", tcp8080)}},
		{"no ports", []AgentEndpoint{agentEP("ns/a")}},
		{"port 0", []AgentEndpoint{agentEP("ns/a", AgentPort{Protocol: ProtocolTCP})}},
		{"bad protocol", []AgentEndpoint{agentEP("ns/a", AgentPort{Port: 1, Protocol: 9})}},
		{"repeated port", []AgentEndpoint{agentEP("ns/a", tcp8080, AgentPort{Port: 9, Protocol: ProtocolTCP})}},
		{"long port name", []AgentEndpoint{agentEP("ns/a", AgentPort{Name: strings.Repeat("p", 64), Port: 1, Protocol: ProtocolTCP})}},
		{"no address", []AgentEndpoint{{Service: "ns/a", State: EndpointReady, Ports: []AgentPort{tcp8080}}}},
		{"bad state", []AgentEndpoint{{Service: "ns/a", Addr: netip.MustParseAddr("198.18.1.2"), State: 7, Ports: []AgentPort{tcp8080}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := EncodeMeta(Meta{Role: RoleBackend, Endpoints: tc.eps}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// metaV2 builds version-2 metadata of a backend with no addresses and the given endpoint bytes.
func metaV2(eps ...byte) []byte { return append([]byte{MetaVersion, 2, 0, 0, 0, 0}, eps...) }

func TestDecodeMetaEndpointsRejects(t *testing.T) {
	ep := func(svc string, addr []byte, state byte, ports ...byte) []byte {
		b := append([]byte{byte(len(svc))}, svc...)
		b = append(b, addr...)
		return append(append(b, state), ports...)
	}
	a4 := []byte{4, 198, 18, 1, 21}
	p8080 := []byte{1, 0, 0x1f, 0x90, 1} // one port: no name, 8080, TCP
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"missing endpoint count", metaV2(), ErrShort},
		{"too many endpoints", metaV2(200), ErrInvalid},
		{"truncated endpoint", metaV2(1, 4, 'n', 's'), ErrShort},
		{"no ports", metaV2(append([]byte{1}, ep("ns/a", a4, 1, 0)...)...), ErrInvalid},
		{"too many ports", metaV2(append([]byte{1}, ep("ns/a", a4, 1, 200)...)...), ErrInvalid},
		{"truncated port", metaV2(append([]byte{1}, ep("ns/a", a4, 1, 1, 0, 0x1f)...)...), ErrShort},
		{"bad state", metaV2(append([]byte{1}, ep("ns/a", a4, 0, p8080...)...)...), ErrInvalid},
		{"empty address", metaV2(append([]byte{1}, ep("ns/a", []byte{0}, 1, p8080...)...)...), ErrInvalid},
		{"bad service", metaV2(append([]byte{1}, ep("nsa", a4, 1, p8080...)...)...), ErrInvalid},
		{"bad protocol", metaV2(append([]byte{1}, ep("ns/a", a4, 1, 1, 0, 0x1f, 0x90, 3)...)...), ErrInvalid},
		{"port zero", metaV2(append([]byte{1}, ep("ns/a", a4, 1, 1, 0, 0, 0, 1)...)...), ErrInvalid},
		{"out of order", metaV2(append(append([]byte{2}, ep("ns/b", a4, 1, p8080...)...), ep("ns/a", a4, 1, p8080...)...)...), ErrInvalid},
		{"repeated", metaV2(append(append([]byte{2}, ep("ns/a", a4, 1, p8080...)...), ep("ns/a", a4, 1, p8080...)...)...), ErrInvalid},
		{"trailing", metaV2(0, 0), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeMeta(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// The hand-built good case decodes, so the rejections above are about the one bad field.
	good := metaV2(append([]byte{1}, ep("ns/a", a4, 1, p8080...)...)...)
	m, err := DecodeMeta(good)
	want := Meta{Role: RoleBackend, Endpoints: []AgentEndpoint{agentEP("ns/a", tcp8080)}}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("good case: %+v, %v", m, err)
	}
}

func TestDecodeMetaVersion1(t *testing.T) {
	// Version 1 (before endpoints) still decodes.
	m, err := DecodeMeta([]byte{1, 1, 1, 1, 'x', 1, 4, 198, 18, 0, 11, 0})
	want := Meta{Role: RoleAppliance, Leaving: true, Version: "x", ExternalIPs: []netip.Addr{netip.MustParseAddr("198.18.0.11")}}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v, %v", m, err)
	}
}

// FuzzDecodeBackendMeta: a backend agent's metadata, decoded straight from the agent cluster
// (agents are untrusted). Whatever decodes must satisfy what the appliance relies on: every
// endpoint passes checkAgentEndpoint, Services are sorted and unique, and the metadata encodes
// back to the same bytes' meaning.
func FuzzDecodeBackendMeta(f *testing.F) {
	udp := AgentPort{Name: "echo", Port: 9000, Protocol: ProtocolUDP}
	seeds := []Meta{
		{Role: RoleBackend, Endpoints: []AgentEndpoint{agentEP("default/web", tcp8080)}},
		{Role: RoleBackend, Version: "v1", Leaving: true, Endpoints: []AgentEndpoint{
			agentEP("ns/a", AgentPort{Name: "http", Port: 8080, Protocol: ProtocolTCP}, udp),
			{Service: "ns/b", Addr: netip.MustParseAddr("2001:2::21"), State: EndpointDraining, Ports: []AgentPort{udp}}}},
		{Role: RoleBackend, Endpoints: []AgentEndpoint{{Service: "ns/c", Addr: netip.MustParseAddr("198.18.1.22"),
			State: EndpointNotReady, Ports: []AgentPort{tcp8080}}}},
	}
	for _, m := range seeds {
		b, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		for i, e := range m.Endpoints {
			if err := checkAgentEndpoint(e); err != nil {
				t.Fatalf("decoded endpoint %+v: %v", e, err)
			}
			if i > 0 && m.Endpoints[i-1].Service >= e.Service {
				t.Fatalf("endpoints not sorted and unique: %+v", m.Endpoints)
			}
		}
		re, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		if m2, err := DecodeMeta(re); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v -> %+v (%v)", m, m2, err)
		}
	})
}
