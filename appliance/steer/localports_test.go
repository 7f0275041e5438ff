package steer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSNATRange(t *testing.T) {
	cases := []struct {
		name                  string
		snatFirst, snatLast   uint16
		localFirst, localLast uint16
		wantErr               bool
		wantInErr             []string
	}{
		{"kernel default below the SNAT range", 61000, 65535, 32768, 60999, false, nil},
		{"adjacent above", 1024, 32767, 32768, 60999, false, nil},
		{"widened host range reaches into SNAT", 61000, 65535, 10000, 65000, true,
			[]string{"61000-65535", "10000-65000", `ip_local_port_range="10000 60999"`, "move the SNAT range"}},
		{"host range above SNAT start", 20000, 30000, 25000, 60999, true,
			[]string{"20000-30000", "25000-60999", `ip_local_port_range="30001 60999"`}},
		{"host range inside SNAT", 10000, 65535, 32768, 60999, true,
			[]string{"10000-65535", "32768-60999", "outside the SNAT range"}},
		{"one shared port", 61000, 65535, 32768, 61000, true, []string{"61000-65535"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckSNATRange(c.snatFirst, c.snatLast, c.localFirst, c.localLast)
			if (err != nil) != c.wantErr {
				t.Fatalf("CheckSNATRange = %v, want error %v", err, c.wantErr)
			}
			for _, s := range c.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestReadLocalPortRange(t *testing.T) {
	cases := []struct {
		name        string
		text        string
		first, last uint16
		wantErr     bool
	}{
		{"kernel format", "32768\t60999\n", 32768, 60999, false},
		{"spaces", " 1024 65535 ", 1024, 65535, false},
		{"one number", "32768\n", 0, 0, true},
		{"reversed", "60999 32768", 0, 0, true},
		{"too big", "1 70000", 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ip_local_port_range")
			if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			first, last, err := ReadLocalPortRange(path)
			if (err != nil) != c.wantErr || first != c.first || last != c.last {
				t.Fatalf("ReadLocalPortRange = %d, %d, %v; want %d, %d, error %v", first, last, err, c.first, c.last, c.wantErr)
			}
		})
	}
	if _, _, err := ReadLocalPortRange(LocalPortRangePath); err != nil {
		t.Skipf("this host has no %s: %v", LocalPortRangePath, err)
	}
}
