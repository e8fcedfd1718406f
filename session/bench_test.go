package session

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkCookieEncode(b *testing.B) {
	s := newSticky(b, Config{})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.EncodeAt("10.0.0.3:8080", t0)
	}
}

func BenchmarkCookieDecode(b *testing.B) {
	s := newSticky(b, Config{})
	tok := s.EncodeAt("10.0.0.3:8080", t0)
	forged := tok[:TokenLen-2] + "AA"
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.DecodeAt(tok, t0); !ok {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("forged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.DecodeAt(forged, t0); ok {
				b.Fatal("forged token decoded")
			}
		}
	})
	b.Run("lookup-header", func(b *testing.B) {
		h := http.Header{"Cookie": {"lang=en; theme=dark; SERVERID=" + tok + "; _ga=GA1.2.3"}}
		b.ReportAllocs()
		for b.Loop() {
			if s.LookupAt(h, t0).ID == "" {
				b.Fatal("no session")
			}
		}
	})
}

func BenchmarkRewriteRequest(b *testing.B) {
	s := newSticky(b, Config{Mode: Rewrite, CookieName: "JSESSIONID"})
	line := "lang=en; JSESSIONID=abcdef0123456789~" + s.EncodeAt("a", t0)
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{"Cookie": {line}}
		if s.RequestAt(h, t0).ID != "a" {
			b.Fatal("no session")
		}
	}
}

func BenchmarkAffinityLookup(b *testing.B) {
	now := t0.Add(time.Second)
	for _, n := range []int{10, 100, 1000, 10000, 100000} {
		a := newAffinity(b, AffinityConfig{PersistenceTimeout: time.Hour, MaxEntries: 1 << 20})
		addrs := make([]netip.Addr, n)
		for i := range addrs {
			addrs[i] = addrN(i)
			a.SetAt(addrs[i], "backend-1", t0)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := a.LookupAt(addrs[i%n], now); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
		if n == 10000 {
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						a.LookupAt(addrs[i%n], now)
						i += 7
					}
				})
			})
		}
	}
}

func BenchmarkAffinitySet(b *testing.B) {
	a := newAffinity(b, AffinityConfig{PersistenceTimeout: time.Hour, MaxEntries: 1 << 12})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.SetAt(addrN(i%(1<<14)), "backend-1", t0) // 4× the capacity: evicts
		i++
	}
}
