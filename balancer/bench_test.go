package balancer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

var schedulers = []struct {
	name string
	s    Scheduler
}{
	{"wrr", WeightedRoundRobin()},
	{"rr", RoundRobin()},
	{"sch", Maglev{By: HashSourceIP}},
	{"tch", Maglev{By: HashFourTuple}},
	{"qch", Maglev{By: HashConnID}},
	{"wlc", LeastConnections()},
	{"hash", Maglev{By: HashKey}},
	{"ewma", PeakEWMA()},
}

var sizes = []int{10, 100, 1000, 10000}

// benchGroup builds a group of n members with weights 1–100.
func benchGroup(b *testing.B, s Scheduler, n int) *Group {
	b.Helper()
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprintf("backend-%05d", i), Addr: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), Weight: 1 + i*37%100}
	}
	g, err := New(Config{Scheduler: s}, bs...)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// benchKeys returns 1024 keys with a four-tuple, a connection ID and a
// request hash, so that every scheduler has its input.
func benchKeys() []Key {
	ks := fourTuples(1024)
	for i := range ks {
		ks[i].Hash, ks[i].HasHash = HashQUICConnID([]byte{byte(i), byte(i >> 8), 3, 4, 5, 6, 7, 8}), true
	}
	return ks
}

// BenchmarkPick measures the pick alone: Pick counts the work begun, and
// the benchmark never ends it.
func BenchmarkPick(b *testing.B) {
	ks := benchKeys()
	for _, sc := range schedulers {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/n=%d", sc.name, n), func(b *testing.B) {
				g := benchGroup(b, sc.s, n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := g.Pick(ks[i&1023]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkPickDone measures a pick and its Done, what a request costs
// the balancer.
func BenchmarkPickDone(b *testing.B) {
	ks := benchKeys()
	for _, sc := range schedulers {
		for _, n := range []int{10, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", sc.name, n), func(b *testing.B) {
				g := benchGroup(b, sc.s, n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					p, err := g.Pick(ks[i&1023])
					if err != nil {
						b.Fatal(err)
					}
					p.Done(DoneInfo{Latency: time.Millisecond})
					i++
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	ks := benchKeys()
	for _, sc := range schedulers {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/n=%d", sc.name, n), func(b *testing.B) {
				g := benchGroup(b, sc.s, n)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := g.Pick(ks[i&1023]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkBuild measures the cost of one change (a snapshot rebuild),
// which every Add, Remove, SetWeight and SetHealthy pays.
func BenchmarkBuild(b *testing.B) {
	for _, sc := range schedulers {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/n=%d", sc.name, n), func(b *testing.B) {
				g := benchGroup(b, sc.s, n)
				id := g.Members()[0].ID()
				b.ReportAllocs()
				w := 0
				for b.Loop() {
					if err := g.SetWeight(id, 1+w%100); err != nil {
						b.Fatal(err)
					}
					w++
				}
			})
		}
	}
}

// BenchmarkGroupChange measures one member change on a group of n members,
// the cost a stream of discovery updates pays per update: each op sets a
// random member's weight to the other of two values, so that every op
// really changes something.
func BenchmarkGroupChange(b *testing.B) {
	for _, sc := range []struct {
		name string
		s    Scheduler
	}{
		{"wrr", WeightedRoundRobin()},
		{"rr", RoundRobin()},
		{"wlc", LeastConnections()},
		{"sch", Maglev{By: HashSourceIP}},
		{"ewma", PeakEWMA()},
	} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", sc.name, n), func(b *testing.B) {
				g := benchGroup(b, sc.s, n)
				ids := g.IDs()
				r := rand.New(rand.NewPCG(1, 2))
				runtime.GC() // the building's garbage is not a change's cost
				b.ReportAllocs()
				for b.Loop() {
					id := ids[r.IntN(len(ids))]
					m, _ := g.Member(id)
					w := 50
					if m.Weight() == 50 {
						w = 60
					}
					if err := g.SetWeight(id, w); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
