package acl

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLiveUpdate runs checks on several goroutines while a writer adds,
// removes and replaces batches, and asserts that every snapshot a reader
// loads holds each batch wholly or not at all. Run it with -race.
func TestLiveUpdate(t *testing.T) {
	for _, size := range []int{3, persistMax + 10} {
		t.Run(fmt.Sprintf("batch=%d", size), func(t *testing.T) {
			batch := func(first byte) []Entry {
				es := make([]Entry, size)
				for i := range es {
					es[i] = Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{first, byte(i), 0, 0}), 16)}
				}
				return es
			}
			prefixes := func(es []Entry) []netip.Prefix {
				ps := make([]netip.Prefix, len(es))
				for i, e := range es {
					ps[i] = e.Prefix
				}
				return ps
			}
			a, b := batch(10), batch(11)
			g, err := NewGroup(GroupConfig{Name: "live", Family: IPv4}, a...)
			if err != nil {
				t.Fatal(err)
			}
			pol, err := NewPolicy(PolicyConfig{Group: g, Mode: Whitelist, Family: IPv4})
			if err != nil {
				t.Fatal(err)
			}
			// probe returns the addresses whose presence must agree in one
			// snapshot: the first and last entry of each batch.
			probe := func(es []Entry) (netip.Addr, netip.Addr) {
				return es[0].Prefix.Addr().Next(), es[len(es)-1].Prefix.Addr().Next()
			}
			a0, a1 := probe(a)
			b0, b1 := probe(b)

			var stop atomic.Bool
			var torn atomic.Int64
			var checks atomic.Int64
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					for !stop.Load() {
						s := g.snap.Load()
						if s.table.Contains(a0) != s.table.Contains(a1) || s.table.Contains(b0) != s.table.Contains(b1) {
							torn.Add(1)
						}
						_ = pol.Allow(a0) // the public path, for the race detector
						checks.Add(1)
					}
				})
			}
			for i := range 200 {
				var err error
				switch i % 4 {
				case 0:
					err = g.Add(b...)
				case 1:
					err = g.Remove(prefixes(a)...)
				case 2:
					err = g.Replace(a...)
				case 3:
					// A bad batch must change nothing.
					bad := append(append([]Entry(nil), b...), Entry{Prefix: netip.MustParsePrefix("2001:db8::/32")})
					if g.Add(bad...) == nil {
						t.Error("Add(batch with IPv6 entry) = nil, want error")
					}
				}
				if err != nil {
					t.Fatalf("update %d: %v", i, err)
				}
			}
			stop.Store(true)
			wg.Wait()
			if n := torn.Load(); n > 0 {
				t.Fatalf("%d of %d checks saw a half-applied batch", n, checks.Load())
			}
			if !pol.Allow(a0) || pol.Allow(b0) || g.Len() != size {
				t.Fatalf("final state: Allow(a)=%v Allow(b)=%v Len=%d, want true false %d", pol.Allow(a0), pol.Allow(b0), g.Len(), size)
			}
		})
	}
}
