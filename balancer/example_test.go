package balancer_test

import (
	"fmt"
	"net/netip"

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
		m, err := g.Pick(balancer.Key{})
		if err != nil {
			fmt.Println(err)
			return
		}
		m.Begin() // a connection to m starts …
		counts[m.ID()]++
		m.End() // … and ends
	}
	fmt.Println(counts)
	// Output: map[a:5 b:1 c:1]
}

func ExampleParseScheduler() {
	for _, name := range []string{"wrr", "sch", "lc"} {
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
	// balancer: Scheduler "lc": unknown; want wrr, rr, sch, tch, qch or wlc
}

func ExampleMaglev() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{By: balancer.HashSourceIP}},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	client := netip.MustParseAddr("192.0.2.10")
	first, _ := g.Pick(balancer.Key{Src: netip.AddrPortFrom(client, 40000)})
	again, _ := g.Pick(balancer.Key{Src: netip.AddrPortFrom(client, 40001)})
	fmt.Println("same backend for the same client:", first.ID() == again.ID())
	// Output: same backend for the same client: true
}

func ExampleGroup_PickSticky() {
	g, _ := balancer.New(balancer.Config{},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	// A cookie said "b". Draining b keeps its sessions; taking it out of
	// service does not.
	_ = g.SetWeight("b", 0)
	m, _ := g.PickSticky("b", balancer.Key{})
	fmt.Println("draining:", m.ID())
	_ = g.SetHealthy("b", false)
	m, _ = g.PickSticky("b", balancer.Key{})
	fmt.Println("unhealthy:", m.ID())
	m, _ = g.PickSticky("forged", balancer.Key{})
	fmt.Println("forged:", m.ID())
	// Output:
	// draining: b
	// unhealthy: a
	// forged: a
}

func ExampleGroup_SetHealthy() {
	g, _ := balancer.New(balancer.Config{},
		balancer.Backend{ID: "primary", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "standby", Addr: "127.0.0.1:8002", Weight: 100, Standby: true},
	)
	show := func() {
		m, err := g.Pick(balancer.Key{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(m.ID())
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
	_ = g.SetWeight("a", 0)
	<-changed // closed by the change: a watcher now reads Members
	for _, m := range g.Members() {
		fmt.Println(m.ID(), "weight", m.Weight())
	}
	// Output: a weight 0
}

func ExampleGroup_Replace() {
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100})
	err := g.Replace([]balancer.Backend{
		{ID: "a", Addr: "127.0.0.1:8001", Weight: 50},
		{ID: "b", Addr: "127.0.0.1:8002", Weight: 101},
	})
	fmt.Println(err)
	fmt.Println(g) // unchanged: nothing is half applied
	// Output:
	// balancer: Weight 101: out of range 0–100
	// balancer.Group{a(127.0.0.1:8001 w=100)}
}

func ExampleGroup_PickNext() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{}},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:8001", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:8002", Weight: 100},
	)
	k := balancer.Key{Src: netip.MustParseAddrPort("192.0.2.10:40000")}
	first, _ := g.Pick(k)
	// Connecting to first failed: the same key now gets the other member.
	next, _ := g.PickNext(k, []*balancer.Member{first})
	fmt.Println(first.ID() != next.ID())
	_, err := g.PickNext(k, []*balancer.Member{first, next})
	fmt.Println(err)
	// Output:
	// true
	// balancer: no backend available
}
