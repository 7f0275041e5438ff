package pktgen

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseSocketMappings(t *testing.T) {
	maps := `00400000-00600000 r-xp 00000000 08:01 123 /usr/bin/x
7f0000001000-7f0000002000 rw-s 100000000 00:08 4242 socket:[4242]
7f0000003000-7f0000005000 rw-s 180000000 00:08 4242 socket:[4242]
7f0000006000-7f0000007000 rw-s 00000000 00:08 42 socket:[42]
`
	tests := []struct {
		name    string
		maps    string
		ino     uint64
		want    int
		wantErr bool
	}{
		{"two rings of 4242", maps, 4242, 2, false},
		{"one ring of 42", maps, 42, 1, false},
		{"none of 7", maps, 7, 0, false},
		{"bad range", "zz-7f00 rw-s 0 00:08 9 socket:[9]\n", 9, 0, true},
		{"empty range", "7f00-7f00 rw-s 0 00:08 9 socket:[9]\n", 9, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSocketMappings(bufio.NewScanner(strings.NewReader(tc.maps)), tc.ino)
			if (err != nil) != tc.wantErr || len(got) != tc.want {
				t.Fatalf("got %v, %v; want %d ranges, error %v", got, err, tc.want, tc.wantErr)
			}
			if tc.name == "two rings of 4242" && (got[0][0] != 0x7f0000001000 || got[1][1] != 0x7f0000005000) {
				t.Fatalf("ranges %x", got)
			}
		})
	}
}
