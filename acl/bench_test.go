package acl_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/acl"
)

var benchSizes = []int{10, 1000, 100000}

// benchPolicy returns a whitelist of n random prefixes of family fam and
// 1024 sources, half inside some entry (so lookups walk deep) and half
// random.
func benchPolicy(b *testing.B, fam acl.Family, n int) (*acl.Policy, []netip.Addr) {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), uint64(fam)))
	randAddr := func() netip.Addr {
		if fam == acl.IPv4 {
			var a [4]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			return netip.AddrFrom4(a)
		}
		var a [16]byte
		a[0] = 0x20 // global unicast, never IPv4-mapped
		for i := 1; i < len(a); i++ {
			a[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(a)
	}
	es := make([]acl.Entry, n)
	for i := range es {
		a := randAddr()
		bits := 16 + r.IntN(17) // /16–/32
		if fam == acl.IPv6 {
			bits = 32 + r.IntN(97) // /32–/128
		}
		p, _ := a.Prefix(bits)
		es[i] = acl.Entry{Prefix: p}
	}
	g, err := acl.NewGroup(acl.GroupConfig{Name: "bench", Family: fam}, es...)
	if err != nil {
		b.Fatal(err)
	}
	p, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: acl.Whitelist, Family: fam})
	if err != nil {
		b.Fatal(err)
	}
	srcs := make([]netip.Addr, 1024)
	for i := range srcs {
		if i%2 == 0 {
			srcs[i] = es[r.IntN(n)].Prefix.Addr()
		} else {
			srcs[i] = randAddr()
		}
	}
	return p, srcs
}

var sink bool

func benchAllow(b *testing.B, fam acl.Family) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			p, srcs := benchPolicy(b, fam, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink = p.Allow(srcs[i&1023])
				i++
			}
		})
	}
}

func benchAllowParallel(b *testing.B, fam acl.Family) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			p, srcs := benchPolicy(b, fam, n)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i, ok := 0, false
				for pb.Next() {
					ok = p.Allow(srcs[i&1023])
					i++
				}
				_ = ok
			})
		})
	}
}

// BenchmarkAllow measures one IPv4 check; the cost should not grow with n.
func BenchmarkAllow(b *testing.B) { benchAllow(b, acl.IPv4) }

// BenchmarkAllowV6 is BenchmarkAllow for IPv6.
func BenchmarkAllowV6(b *testing.B) { benchAllow(b, acl.IPv6) }

// BenchmarkAllowParallel runs IPv4 checks on every P while nothing
// updates: checks share nothing but the snapshot pointer.
func BenchmarkAllowParallel(b *testing.B) { benchAllowParallel(b, acl.IPv4) }

// BenchmarkAllowV6Parallel is BenchmarkAllowParallel for IPv6.
func BenchmarkAllowV6Parallel(b *testing.B) { benchAllowParallel(b, acl.IPv6) }

// BenchmarkAllowMapped measures the unmapping an IPv4 listener pays when
// Go hands it 16-byte peer addresses.
func BenchmarkAllowMapped(b *testing.B) {
	p, srcs := benchPolicy(b, acl.IPv4, 1000)
	for i, s := range srcs {
		srcs[i] = netip.AddrFrom16(s.As16())
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sink = p.Allow(srcs[i&1023])
		i++
	}
}

// BenchmarkGroupAdd measures adding then removing one entry in a group of
// n: the cost of a live update, which copies only the trie paths it
// touches.
func BenchmarkGroupAdd(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			p, _ := benchPolicy(b, acl.IPv4, n)
			g := p.Group()
			e := acl.Entry{Prefix: netip.MustParsePrefix("198.51.100.0/24")}
			b.ReportAllocs()
			for b.Loop() {
				if err := g.Add(e); err != nil {
					b.Fatal(err)
				}
				if err := g.Remove(e.Prefix); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseEntry measures parsing one CIDR with a comment.
func BenchmarkParseEntry(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := acl.ParseEntry("2001:db8:1234::/48 # lab"); err != nil {
			b.Fatal(err)
		}
	}
}
