package balancer_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/lbkit/lbkit/balancer"
)

func Example() {
	g, err := balancer.New(balancer.Config{}, // smooth weighted round robin
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 5},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 1},
		balancer.Backend{ID: "c", Addr: "127.0.0.1:8003", Weight: 1},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Any 7 consecutive picks hold each member in proportion to its
	// weight, interleaved (a a b a c a a, from a random point of the cycle).
	counts := map[string]int{}
	for range 7 {
		p, err := g.Pick(balancer.Key{}) // a request to p.Member starts …
		if err != nil {
			fmt.Println(err)
			return
		}
		counts[p.Member.ID()]++
		p.Done(balancer.DoneInfo{Latency: 3 * time.Millisecond}) // … and ends
	}
	fmt.Println(counts)
	// Output: map[a:5 b:1 c:1]
}

func ExampleParseScheduler() {
	for _, name := range []string{"wrr", "SCH", "lc"} {
		s, err := balancer.ParseScheduler(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(s.Name())
	}
	// Output:
	// wrr
	// sch
	// balancer: Scheduler "lc": unknown; want wrr, rr, sch, tch, qch, wlc, hash or ewma
}

func ExampleMaglev() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{By: balancer.HashSourceIP}},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	client := netip.MustParseAddr("192.0.2.10")
	first, _ := g.Pick(balancer.Key{Src: netip.AddrPortFrom(client, 40000)})
	first.Done(balancer.DoneInfo{})
	again, _ := g.Pick(balancer.Key{Src: netip.AddrPortFrom(client, 40001)})
	again.Done(balancer.DoneInfo{})
	fmt.Println("same backend for the same client:", first.Member == again.Member)
	// Output: same backend for the same client: true
}

func ExampleGroup_PickSticky() {
	g, _ := balancer.New(balancer.Config{},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	// A cookie said "b". Draining b keeps its sessions; maintenance or
	// ill health does not.
	show := func(what, id string) {
		p, _ := g.PickSticky(id, balancer.Key{})
		fmt.Println(what, p.Member.ID())
		p.Done(balancer.DoneInfo{})
	}
	_ = g.SetState("b", balancer.Drain)
	show("draining:", "b")
	_ = g.SetState("b", balancer.Maint)
	show("maintenance:", "b")
	_ = g.SetState("b", balancer.Ready)
	_ = g.SetHealthy("b", false)
	show("unhealthy:", "b")
	show("forged:", "forged")
	// Output:
	// draining: b
	// maintenance: a
	// unhealthy: a
	// forged: a
}

func ExampleGroup_SetHealthy() {
	g, _ := balancer.New(balancer.Config{},
		balancer.Backend{ID: "primary", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "standby", Addr: "127.0.0.1:8002", Weight: 100, Standby: true},
	)
	show := func() {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(p.Member.ID())
		p.Done(balancer.DoneInfo{})
	}
	show()
	_ = g.SetHealthy("primary", false)
	show()
	_ = g.SetHealthy("standby", false)
	show()
	_ = g.SetHealthy("primary", true)
	show()
	// Output:
	// primary
	// standby
	// balancer: no backend available
	// primary
}

func ExampleGroup_Changed() {
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100})
	changed := g.Changed()
	_ = g.SetState("a", balancer.Drain)
	<-changed // closed by the change: a watcher now reads Members
	for _, m := range g.Members() {
		fmt.Println(m.ID(), m.State())
	}
	// Output: a drain
}

func ExampleGroup_Replace() {
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100})
	err := g.Replace([]balancer.Backend{
		{ID: "a", Addr: "127.0.0.1:8001", Weight: 50},
		{ID: "b", Addr: "127.0.0.1:8002", Weight: 65536},
	})
	fmt.Println(err)
	fmt.Println(g) // unchanged: nothing is half applied
	// Output:
	// balancer: Weight 65536: out of range 1–65535
	// balancer.Group{a(127.0.0.1:8001 w=100)}
}

func ExampleGroup_PickNext() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{}},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	k := balancer.Key{Src: netip.MustParseAddrPort("192.0.2.10:40000")}
	first, _ := g.Pick(k)
	// Connecting to first failed: report it, and the same key now gets the
	// other member.
	first.Done(balancer.DoneInfo{Err: errors.New("connection refused")})
	next, _ := g.PickNext(k, []*balancer.Member{first.Member})
	fmt.Println(first.Member.ID() != next.Member.ID())
	next.Done(balancer.DoneInfo{Err: errors.New("connection refused")})
	_, err := g.PickNext(k, []*balancer.Member{first.Member, next.Member})
	fmt.Println(err)
	// Output:
	// true
	// balancer: no backend available
}

func ExamplePeakEWMA() {
	// A fake clock and a seeded source make the example repeatable; a
	// real group uses balancer.PeakEWMA().
	now := time.Unix(0, 0)
	r := rand.New(rand.NewPCG(1, 2))
	s, _ := balancer.NewPeakEWMA(balancer.PeakEWMAConfig{Now: func() time.Time { return now }, Rand: r.Uint64})
	g, _ := balancer.New(balancer.Config{Scheduler: s},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001"},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002"},
		balancer.Backend{ID: "slow", Addr: "127.0.0.1:8003"},
	)
	latency := map[string]time.Duration{"a": 10 * time.Millisecond, "b": 10 * time.Millisecond, "slow": 100 * time.Millisecond}
	counts := map[string]int{}
	for i := range 300 {
		p, _ := g.Pick(balancer.Key{})
		now = now.Add(latency[p.Member.ID()]) // one request at a time
		p.Done(balancer.DoneInfo{Latency: latency[p.Member.ID()]})
		if i >= 100 { // after learning
			counts[p.Member.ID()]++
		}
	}
	fmt.Println("slow member's picks after learning:", counts["slow"])
	// Output: slow member's picks after learning: 0
}

func ExampleMaglev_hashKey() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{By: balancer.HashKey}},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001"},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002"},
	)
	// The caller hashes what identifies the request, here a user header.
	pick := func(user string) string {
		k := balancer.Key{Src: netip.MustParseAddrPort("192.0.2.10:40000")}
		if user != "" {
			k.Hash, k.HasHash = xxhash.Sum64String(user), true
		}
		p, _ := g.Pick(k)
		defer p.Done(balancer.DoneInfo{})
		return p.Member.ID()
	}
	first, again := pick("alice"), pick("alice")
	fmt.Println("same user, same backend:", first == again)
	first, again = pick(""), pick("")
	fmt.Println("no header: by source IP:", first == again)
	// Output:
	// same user, same backend: true
	// no header: by source IP: true
}
