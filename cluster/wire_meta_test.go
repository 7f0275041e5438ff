package cluster

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var metaCases = []struct {
	name string
	meta Meta
}{
	{"appliance", Meta{Role: RoleAppliance, Version: "v0.1.0",
		ExternalIPs: []netip.Addr{netip.MustParseAddr("198.18.0.11")},
		ClusterIPs:  []netip.Addr{netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("2001:db8::1")}}},
	{"backend bare", Meta{Role: RoleBackend}},
	{"appliance with MACs", Meta{Role: RoleAppliance, Version: "dev",
		ExternalIPs: []netip.Addr{netip.MustParseAddr("198.18.0.11")},
		MACs:        [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 1, 1}}}},
	{"leaving", Meta{Role: RoleAppliance, Leaving: true, Version: "x"}},
	{"backend with endpoints", Meta{Role: RoleBackend, Version: "dev", ClusterIPs: []netip.Addr{netip.MustParseAddr("198.18.1.21")},
		Endpoints: []AgentEndpoint{
			{Service: "default/dns", Addr: netip.MustParseAddr("198.18.1.21"), State: EndpointNotReady,
				Ports: []AgentPort{{Name: "dns", Port: 53, Protocol: ProtocolUDP}, {Name: "dns", Port: 53, Protocol: ProtocolTCP}}},
			{Service: "default/web", Addr: netip.MustParseAddr("198.18.1.21"), State: EndpointReady,
				Ports: []AgentPort{{Port: 8080, Protocol: ProtocolTCP}}},
			{Service: "v6/web", Addr: netip.MustParseAddr("2001:db8::21"), State: EndpointDraining,
				Ports: []AgentPort{{Name: "http", Port: 80, Protocol: ProtocolTCP}}},
		}}},
}

func TestMetaRoundTrip(t *testing.T) {
	for _, tc := range metaCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeMeta(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.meta) {
				t.Fatalf("decoded %+v, want %+v", got, tc.meta)
			}
		})
	}
}

func TestMetaEncodeLimits(t *testing.T) {
	many := make([]netip.Addr, 33)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})
	}
	v6 := make([]netip.Addr, 32)
	for i := range v6 {
		v6[i] = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)})
	}
	tests := []struct {
		name string
		meta Meta
	}{
		{"too many addresses", Meta{Role: RoleAppliance, ExternalIPs: many}},
		{"over 512 bytes", Meta{Role: RoleAppliance, ExternalIPs: v6}},
		{"long version", Meta{Role: RoleAppliance, Version: strings.Repeat("v", 256)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := EncodeMeta(tc.meta); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"wrong version", []byte{9, 1, 0, 0, 0, 0}, ErrVersion},
		{"bad role", []byte{1, 7, 0, 0, 0, 0}, ErrInvalid},
		{"truncated version", []byte{1, 1, 0, 5, 'v'}, ErrShort},
		{"bad address length", []byte{1, 1, 0, 0, 1, 5, 1, 2, 3, 4, 5, 0}, ErrInvalid},
		{"empty address", []byte{1, 1, 0, 0, 1, 0, 0}, ErrInvalid},
		{"mapped address", append(append([]byte{1, 1, 0, 0, 1, 16}, netip.AddrFrom16(netip.MustParseAddr("198.18.0.1").As16()).AsSlice()...), 0), ErrInvalid},
		{"too many addresses", []byte{1, 1, 0, 0, 200}, ErrInvalid},
		{"trailing", []byte{1, 1, 0, 0, 0, 0, 0}, ErrInvalid},
		{"oversized", make([]byte, 600), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeMeta(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, tc := range metaCases {
		b, _ := EncodeMeta(tc.meta)
		f.Add(b)
	}
	f.Add([]byte{1, 1, 0, 0, 1, 5, 1, 2, 3, 4, 5, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		re, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		m2, err := DecodeMeta(re)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v -> %+v (%v)", m, m2, err)
		}
	})
}

func TestMetaSyncingFlag(t *testing.T) {
	b, err := EncodeMeta(Meta{Role: RoleAppliance, Syncing: true, Leaving: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMeta(b)
	if err != nil || !m.Syncing || !m.Leaving {
		t.Fatalf("decoded %+v, %v", m, err)
	}
}
