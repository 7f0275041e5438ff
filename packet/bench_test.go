package packet

import (
	"testing"
)

func reportPkts(b *testing.B) {
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(ns, "ns/pkt")
	if ns > 0 {
		b.ReportMetric(1e9/ns, "pkt/s")
	}
}

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"ipv4-tcp", tcp4Frame(b, frameOpts{payload: 10}, "A")},
		{"ipv6-tcp", tcp6Frame(b, frameOpts{payload: 10}, "A")},
		{"ipv4-icmp-error", icmpErr4Frame(b, frameOpts{}, 3, 3, innerUDP4(b, 8))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var h Headers
			b.ReportAllocs()
			for b.Loop() {
				if Parse(c.frame, &h) != OK {
					b.Fatal("parse")
				}
			}
			reportPkts(b)
		})
	}
}

// BenchmarkRewrite is a full NAT of one TCP packet (addresses, ports, TTL, IP and TCP checksums).
func BenchmarkRewrite(b *testing.B) {
	b.Run("nat4-tcp", func(b *testing.B) {
		f := tcp4Frame(b, frameOpts{payload: 10}, "A")
		h := mustParse(b, f)
		src, dst := a4(ipSNAT), a4(ipBackend)
		b.ReportAllocs()
		for b.Loop() {
			f[EthHeaderLen+ipv4TTLOffset] = 64 // untagged frame
			if NAT4(f, h, src, 33000, dst, 8080) != OK {
				b.Fatal("nat")
			}
		}
		reportPkts(b)
	})
	b.Run("nat6-tcp", func(b *testing.B) {
		f := tcp6Frame(b, frameOpts{payload: 10}, "A")
		h := mustParse(b, f)
		src, dst := a16(ip6SNAT), a16(ip6Back)
		b.ReportAllocs()
		for b.Loop() {
			f[EthHeaderLen+ipv6HopLimitOffset] = 64 // untagged frame
			if NAT6(f, h, src, 33000, dst, 8080) != OK {
				b.Fatal("nat")
			}
		}
		reportPkts(b)
	})
	b.Run("parse+nat4+macs", func(b *testing.B) {
		f := tcp4Frame(b, frameOpts{payload: 10}, "A")
		var h Headers
		src, dst := a4(ipSNAT), a4(ipBackend)
		var m1, m2 [6]byte
		b.ReportAllocs()
		for b.Loop() {
			f[EthHeaderLen+ipv4TTLOffset] = 64 // untagged frame
			if Parse(f, &h) != OK || NAT4(f, &h, src, 33000, dst, 8080) != OK || SetMACs(f, m1, m2) != OK {
				b.Fatal("nat")
			}
		}
		reportPkts(b)
	})
}
