package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	"github.com/serialx/hashring"
	"github.com/stathat/consistent"

	"github.com/lbkit/lbkit/balancer"
)

// Every job runs over 10 backends weighted 10, 20, …, 100 (peers without
// weights get the same 10 backends unweighted). Inputs are precomputed:
// keys cycles through 1024 clients so that no benchmark times building its
// input.
const (
	backends = 10
	nkeys    = 1024
)

var (
	weights = func() []int {
		w := make([]int, backends)
		for i := range w {
			w[i] = 10 * (i + 1)
		}
		return w
	}()
	nodes = NodeNames(backends)
	keys  = func() *Keys {
		ks := NewKeys(nkeys, 1)
		// The qch scheduler places by the connection ID's hash; give it
		// the bytes the rings hash as strings, so both hash the same
		// input (hashed here, as a UDP listener does before its pick).
		for i := range ks.Keys {
			ks.Keys[i].Hash, ks.Keys[i].HasHash = balancer.HashQUICConnID([]byte(ks.IPs[i])), true
		}
		return ks
	}()
)

// ourGroup returns a group of the benchmark backends under s.
func ourGroup(b *testing.B, s balancer.Scheduler) *balancer.Group {
	b.Helper()
	bs := make([]balancer.Backend, backends)
	for i := range bs {
		bs[i] = balancer.Backend{Addr: nodes[i], Weight: weights[i]}
	}
	g, err := balancer.New(balancer.Config{Scheduler: s}, bs...)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// pick is one pick of key i; it reports whether a backend was chosen.
type pick func(i int) bool

// A contender is set up once per benchmark (the balancer, as a server
// holds it) and then hands each goroutine its pick.
type contender func(b *testing.B) (perGoroutine func() pick)

// run times c serially and in parallel, reporting allocations.
func run(b *testing.B, name string, c contender) {
	b.Run(name+"/serial", func(b *testing.B) {
		p := c(b)()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !p(i & (nkeys - 1)) {
				b.Fatal("no pick")
			}
			i++
		}
	})
	b.Run(name+"/parallel", func(b *testing.B) {
		next := c(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			p := next()
			i := 0
			for pb.Next() {
				if !p(i & (nkeys - 1)) {
					b.Error("no pick")
					return
				}
				i++
			}
		})
	})
}

// shared is a contender whose goroutines all use the one pick build
// returns.
func shared(build func(b *testing.B) pick) contender {
	return func(b *testing.B) func() pick {
		p := build(b)
		return func() pick { return p }
	}
}

// ours is a contender picking from a group of the benchmark backends
// under s: the pick alone, by the Picker that s builds for the group (what
// Group.Pick asks), so that neither the group's snapshot load nor any
// completion counting is timed.
func ours(s balancer.Scheduler) contender {
	return shared(func(b *testing.B) pick {
		return ourPick(b, s, ourGroup(b, s))
	})
}

// oursHashing is ours for qch, with the connection ID hashed inside the
// timed pick (as a UDP listener does before it picks), since the rings
// beside it hash their string key inside theirs.
func oursHashing(s balancer.Scheduler) contender {
	ids := make([][]byte, len(keys.IPs))
	for i, ip := range keys.IPs {
		ids[i] = []byte(ip)
	}
	return shared(func(b *testing.B) pick {
		p, err := s.Build(ourGroup(b, s).Members())
		if err != nil {
			b.Fatal(err)
		}
		return func(i int) bool {
			k := keys.Keys[i]
			k.Hash = balancer.HashQUICConnID(ids[i])
			return p.Pick(k) != nil
		}
	})
}

// ourPick returns a pick of key i by the Picker s builds over g's members.
func ourPick(b *testing.B, s balancer.Scheduler, g *balancer.Group) pick {
	b.Helper()
	p, err := s.Build(g.Members())
	if err != nil {
		b.Fatal(err)
	}
	return func(i int) bool {
		return p.Pick(keys.Keys[i]) != nil
	}
}

// caddyPolicy is a contender for Caddy selection policy s over one pool of
// healthy upstreams. Each goroutine builds its one request outside the
// timed loop and sets its RemoteAddr from the precomputed clients before
// every pick. This favours Caddy: a server builds a request per stream
// anyway, but here it costs nothing.
func caddyPolicy(s reverseproxy.Selector) contender {
	return func(b *testing.B) func() pick {
		pool := CaddyPool(nodes)
		return func() pick {
			req, err := http.NewRequest(http.MethodGet, "http://example.com/", nil)
			if err != nil {
				panic(err) // a constant URL
			}
			return func(i int) bool {
				req.RemoteAddr = keys.Remote[i]
				return s.Select(pool, req, nil) != nil
			}
		}
	}
}

// gokitRR is go-kit's round robin over n fixed endpoints.
func gokitRR(n int) contender {
	return shared(func(b *testing.B) pick {
		eps := make(sd.FixedEndpointer, n)
		for i := range eps {
			eps[i] = func(context.Context, any) (any, error) { return i, nil }
		}
		rr := lb.NewRoundRobin(eps)
		return func(int) bool {
			e, err := rr.Endpoint()
			return err == nil && e != nil
		}
	})
}

func BenchmarkRoundRobin(b *testing.B) {
	run(b, "lbkit-rr", ours(balancer.RoundRobin()))
	run(b, "caddy", caddyPolicy(new(reverseproxy.RoundRobinSelection)))
	run(b, "gokit", gokitRR(backends))
}

func BenchmarkWeightedRoundRobin(b *testing.B) {
	run(b, "lbkit-wrr", ours(balancer.WeightedRoundRobin()))
	s, err := CaddyWRR(weights)
	if err != nil {
		b.Fatal(err)
	}
	run(b, "caddy", caddyPolicy(s))
}

func BenchmarkIPHash(b *testing.B) {
	run(b, "lbkit-sch", ours(balancer.Maglev{By: balancer.HashSourceIP}))
	run(b, "caddy", caddyPolicy(reverseproxy.IPHashSelection{}))
}

// BenchmarkConsistentHash places string keys on the rings; we hash the
// same bytes as a QUIC connection ID (qch) and, for the four-tuple form of
// the same client, tch.
func BenchmarkConsistentHash(b *testing.B) {
	run(b, "lbkit-qch", oursHashing(balancer.Maglev{By: balancer.HashConnID}))
	run(b, "lbkit-tch", ours(balancer.Maglev{By: balancer.HashFourTuple}))
	run(b, "stathat", shared(func(b *testing.B) pick {
		c := consistent.New() // no weights: 20 replicas a member
		c.Set(nodes)
		return func(i int) bool {
			s, err := c.Get(keys.IPs[i])
			return err == nil && s != ""
		}
	}))
	run(b, "hashring", shared(func(b *testing.B) pick {
		w := make(map[string]int, backends)
		for i, n := range nodes {
			w[n] = weights[i] // weight = points on the ring
		}
		r := hashring.NewWithWeights(w)
		return func(i int) bool {
			_, ok := r.GetNode(keys.IPs[i])
			return ok
		}
	}))
}

// BenchmarkLeastConn times a pick with every backend idle; neither side
// counts the request, so the counters stay at zero throughout.
func BenchmarkLeastConn(b *testing.B) {
	run(b, "lbkit-wlc", ours(balancer.LeastConnections()))
	run(b, "caddy", caddyPolicy(reverseproxy.LeastConnSelection{}))
}

// BenchmarkPick times the pick alone of every built-in scheduler at 10 and
// 10,000 members, beside go-kit's round robin over as many endpoints. At
// 10 members the weights are 10, 20, …, 100 (a wrr cycle of 55 picks); at
// 10,000 they are 10–100 in steps of 10 (wrr-table: a cycle of 55,000,
// kept whole) or 1–100 with gcd 1 (wrr-lazy: a cycle of 505,000, walked in
// computed blocks). rr-nokey passes the zero Key, which isolates rr's own
// work from the cost of passing a Key (80 bytes, by value).
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 10000} {
		names := NodeNames(n)
		group := func(b *testing.B, s balancer.Scheduler, weight func(i int) int) *balancer.Group {
			bs := make([]balancer.Backend, n)
			for i := range bs {
				bs[i] = balancer.Backend{Addr: names[i], Weight: weight(i)}
			}
			g, err := balancer.New(balancer.Config{Scheduler: s}, bs...)
			if err != nil {
				b.Fatal(err)
			}
			return g
		}
		tens := func(i int) int { return 10 * (1 + i%10) }
		varied := func(i int) int { return 1 + i*37%100 }
		sched := func(s balancer.Scheduler, weight func(int) int) contender {
			return shared(func(b *testing.B) pick { return ourPick(b, s, group(b, s, weight)) })
		}
		pre := fmt.Sprintf("n=%d/", n)
		run(b, pre+"lbkit-rr", sched(balancer.RoundRobin(), tens))
		run(b, pre+"lbkit-rr-nokey", shared(func(b *testing.B) pick {
			p, err := balancer.RoundRobin().Build(group(b, balancer.RoundRobin(), tens).Members())
			if err != nil {
				b.Fatal(err)
			}
			return func(int) bool { return p.Pick(balancer.Key{}) != nil }
		}))
		if n == 10 {
			run(b, pre+"lbkit-wrr", sched(balancer.WeightedRoundRobin(), tens))
		} else {
			run(b, pre+"lbkit-wrr-table", sched(balancer.WeightedRoundRobin(), tens))
			run(b, pre+"lbkit-wrr-lazy", sched(balancer.WeightedRoundRobin(), varied))
		}
		run(b, pre+"lbkit-sch", sched(balancer.Maglev{By: balancer.HashSourceIP}, tens))
		run(b, pre+"lbkit-tch", sched(balancer.Maglev{By: balancer.HashFourTuple}, tens))
		run(b, pre+"lbkit-wlc", sched(balancer.LeastConnections(), tens))
		run(b, pre+"gokit-rr", gokitRR(n))
	}
}
