package lab

import (
	"strings"
	"testing"
)

const validState = `{"version":1,"prefix":"l1a2b","ownerPID":1234,"ownerStartTicks":99,
"namespaces":["l1a2b-sw","l1a2b-n1","l1a2b-c1","l1a2b-b12","l1a2b-k3"],
"processes":[{"pid":4321,"startTicks":7,"namespace":"l1a2b-b12","argv":["bench","backend"]}],
"created":"2026-01-02T03:04:05Z"}`

func TestDecodeState(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "valid", in: validState},
		{name: "persistent", in: `{"version":1,"prefix":"demo","ownerPID":0,"namespaces":["demo-sw"],"processes":[],"created":"2026-01-02T03:04:05Z"}`},
		{name: "not json", in: `nope`, wantErr: "decode lab state"},
		{name: "unknown field", in: `{"version":1,"prefix":"demo","extra":1}`, wantErr: "unknown field"},
		{name: "trailing data", in: `{"version":1,"prefix":"demo"} {}`, wantErr: "trailing data"},
		{name: "wrong version", in: `{"version":2,"prefix":"demo"}`, wantErr: "version 2"},
		{name: "bad prefix", in: `{"version":1,"prefix":"-rf"}`, wantErr: "prefix"},
		{name: "foreign namespace", in: `{"version":1,"prefix":"demo","namespaces":["cni-1234"]}`, wantErr: "not a namespace of lab"},
		{name: "other lab's namespace", in: `{"version":1,"prefix":"demo","namespaces":["demo2-sw"]}`, wantErr: "not a namespace of lab"},
		{name: "path in namespace", in: `{"version":1,"prefix":"demo","namespaces":["demo-sw/../x"]}`, wantErr: "not a namespace of lab"},
		{name: "init pid", in: `{"version":1,"prefix":"demo","processes":[{"pid":1,"namespace":"demo-sw"}]}`, wantErr: "pid"},
		{name: "negative owner", in: `{"version":1,"prefix":"demo","ownerPID":-1}`, wantErr: "negative"},
		{name: "process elsewhere", in: `{"version":1,"prefix":"demo","processes":[{"pid":50,"namespace":"x-sw"}]}`, wantErr: "processes[0].namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := DecodeState([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeState: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("DecodeState = %+v, %v; want error containing %q", st, err, tc.wantErr)
			}
		})
	}
}

// FuzzDecodeState: a state file decides what Down and Sweep delete, so whatever it holds must either be
// rejected or name only namespaces of its own lab.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(validState))
	f.Add([]byte(`{"version":1,"prefix":"demo","namespaces":["demo-sw"]}`))
	f.Add([]byte(`{"version":1,"prefix":"demo","namespaces":["cni-1234"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		for _, ns := range st.Namespaces {
			if !strings.HasPrefix(ns, st.Prefix+"-") || strings.ContainsAny(ns, "/. ") || checkNSName(st.Prefix, ns) != nil {
				t.Fatalf("accepted namespace %q for prefix %q", ns, st.Prefix)
			}
		}
		for _, p := range st.Processes {
			if p.PID <= 1 || checkNSName(st.Prefix, p.Namespace) != nil {
				t.Fatalf("accepted process %+v", p)
			}
		}
	})
}
