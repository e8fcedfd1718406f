package sni_test

import (
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/sni"
)

// benchSizes sweeps table sizes so that a flat cost is visible.
var benchSizes = []int{10, 100, 1000, 10000}

// benchTable binds n patterns, half exact and half wildcards, spread over
// n/2 zones: "h<i>.z<i>.example.com" and "*.z<i>.example.com". It returns
// mixed-case names that hit exact patterns, hit wildcards (two labels
// beneath, past a miss on the narrower suffix) and miss.
func benchTable(b *testing.B, n int) (tab *sni.Table[int], exact, wild, miss []string) {
	b.Helper()
	tab = new(sni.Table[int])
	err := tab.Update(func(bt *sni.Batch[int]) error {
		for i := range n / 2 {
			if err := bt.Set(fmt.Sprintf("h%d.z%d.example.com", i, i), i); err != nil {
				return err
			}
			if err := bt.Set(fmt.Sprintf("*.z%d.example.com", i), -i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	const names = 64
	for k := range names {
		i := k * 7919 % (n / 2)
		exact = append(exact, fmt.Sprintf("H%d.Z%d.Example.com", i, i))
		wild = append(wild, fmt.Sprintf("www.App%d.z%d.example.COM", k, i))
		miss = append(miss, fmt.Sprintf("Host%d.Z%d.example.org", k, i))
	}
	return tab, exact, wild, miss
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range benchSizes {
		tab, exact, wild, miss := benchTable(b, n)
		for _, c := range []struct {
			name  string
			names []string
			hit   bool
		}{{"exact", exact, true}, {"wildcard", wild, true}, {"miss", miss, false}} {
			b.Run(fmt.Sprintf("domains=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok := tab.Match(c.names[i&63]); ok != c.hit {
						b.Fatalf("Match(%q) ok = %v", c.names[i&63], ok)
					}
					i++
				}
			})
		}
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	for _, n := range benchSizes {
		tab, exact, wild, miss := benchTable(b, n)
		for _, c := range []struct {
			name  string
			names []string
		}{{"exact", exact}, {"wildcard", wild}, {"miss", miss}} {
			b.Run(fmt.Sprintf("domains=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						tab.Match(c.names[i&63])
						i++
					}
				})
			})
		}
	}
}

// BenchmarkGetCertificate measures the handshake hook on a wildcard hit
// and on the default.
func BenchmarkGetCertificate(b *testing.B) {
	s, err := sni.NewSelector(sni.SelectorConfig{Default: mustCert("default.test")})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Set("*.example.com", mustCert("*.example.com")); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"Www.Example.com", ""} {
		hello := &tls.ClientHelloInfo{ServerName: name}
		b.Run(fmt.Sprintf("sni=%q", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.GetCertificate(hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSet shows the writers' copy-on-write cost, O(n) per change.
func BenchmarkSet(b *testing.B) {
	for _, n := range benchSizes {
		tab, _, _, _ := benchTable(b, n)
		b.Run(fmt.Sprintf("domains=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tab.Set("new.example.com", 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
