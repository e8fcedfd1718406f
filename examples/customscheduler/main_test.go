package main

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/balancertest"
	"github.com/lbkit/lbkit/internal/exampletest"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// The scheduler passes lbkit's conformance kit. Without latency samples
// its picks are two weighted random draws, so shares follow the weights
// within the tolerance of a random scheduler.
func TestSchedulerConformance(t *testing.T) {
	balancertest.TestScheduler(t, func() balancer.Scheduler { return newLatencyScheduler() },
		balancertest.Options{Tolerance: 0.1, Timeout: 20 * time.Second})
}

// Outcomes reported through Picked.Done reach the picker (an Observer)
// and make the estimates; with them, the cheaper of two draws wins: of
// three equal members the fastest gets about 5/9 of the picks, the
// slowest about 1/9.
func TestSchedulerPrefersFast(t *testing.T) {
	s := newLatencyScheduler()
	g, err := balancer.New(balancer.Config{Scheduler: s},
		balancer.Backend{ID: "fast", Addr: "127.0.0.1:1", Weight: 100},
		balancer.Backend{ID: "medium", Addr: "127.0.0.1:2", Weight: 100},
		balancer.Backend{ID: "slow", Addr: "127.0.0.1:3", Weight: 100},
	)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		observe(t, g, "fast", 5*time.Millisecond)
		observe(t, g, "medium", 20*time.Millisecond)
		observe(t, g, "slow", 80*time.Millisecond)
	}
	if got := s.Estimate("slow"); got < 79*time.Millisecond || got > 81*time.Millisecond {
		t.Errorf("Estimate(slow) = %v, want about 80ms", got)
	}
	const picks = 9000
	counts := map[string]int{}
	for range picks {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		p.Done(balancer.DoneInfo{})
		counts[p.Member.ID()]++
	}
	for id, want := range map[string]float64{"fast": 5.0 / 9, "medium": 3.0 / 9, "slow": 1.0 / 9} {
		if got := float64(counts[id]) / picks; got < want-0.04 || got > want+0.04 {
			t.Errorf("share of %s = %.3f, want %.3f ± 0.04 (counts %v)", id, got, want, counts)
		}
	}
}

// The example end to end: the demo load through the HTTP listener is
// answered, the fast backend gets more than the slow one, and the listener
// keeps serving until cancelled.
func TestCustomSchedulerListener(t *testing.T) {
	leakcheck.Check(t)
	var out exampletest.Output
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, config{Listen: "127.0.0.1:0", Requests: 200, ready: func(a string) { ready <- a }}, &out)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("run: %v; output:\n%s", err, &out)
	case <-time.After(15 * time.Second):
		t.Fatalf("demo load not done after 15s; output:\n%s", &out)
	}
	m := regexp.MustCompile(`sent 200 requests: fast (\d+), medium (\d+), slow (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no load summary in output:\n%s", &out)
	}
	fast, _ := strconv.Atoi(m[1])
	slow, _ := strconv.Atoi(m[3])
	if fast <= slow {
		t.Errorf("fast backend got %d requests, slow %d; want fast > slow\n%s", fast, slow, &out)
	}

	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	name, err := get(context.Background(), c, "http://"+addr+"/")
	c.CloseIdleConnections()
	if err != nil || name == "" {
		t.Errorf("GET after the demo: %q, %v", name, err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after cancel")
	}
}

// A pick and its Done, which the picker observes, allocate nothing.
func TestPickAllocs(t *testing.T) {
	s := newLatencyScheduler()
	g, _ := balancer.New(balancer.Config{Scheduler: s},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:1", Weight: 100},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:2", Weight: 50},
	)
	observe(t, g, "a", time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := g.Pick(balancer.Key{})
		p.Done(balancer.DoneInfo{Latency: time.Millisecond})
	}); n != 0 {
		t.Errorf("Pick and Done allocate %v times, want 0", n)
	}
}

// observe reports one outcome of latency d on backend id as the listener
// does: a pick, then Done.
func observe(t *testing.T, g *balancer.Group, id string, d time.Duration) {
	t.Helper()
	p, err := g.PickSticky(id, balancer.Key{})
	if err != nil || p.Member.ID() != id {
		t.Fatalf("PickSticky(%s) = %v, %v", id, p.Member, err)
	}
	p.Done(balancer.DoneInfo{Latency: d})
}
