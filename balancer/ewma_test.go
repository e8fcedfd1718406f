package balancer_test

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/balancertest"
)

func TestPeakEWMAConformance(t *testing.T) {
	balancertest.TestScheduler(t, balancer.PeakEWMA, balancertest.Options{})
}

func TestHashKeyConformance(t *testing.T) {
	balancertest.TestScheduler(t, func() balancer.Scheduler { return balancer.Maglev{By: balancer.HashKey} },
		balancertest.Options{Consistent: true})
}

// sim drives a group through a fake clock: requests arrive every
// interval, each picks a member, and its outcome is reported through Done
// when the member's latency has passed. Everything — clock, arrivals,
// random pairs — is deterministic.
type sim struct {
	g        *balancer.Group
	now      time.Time
	interval time.Duration
	latency  map[string]time.Duration
	pending  completions
}

type completion struct {
	at time.Time
	p  balancer.Picked
	d  time.Duration
}

type completions []completion

func (c completions) Len() int           { return len(c) }
func (c completions) Less(i, j int) bool { return c[i].at.Before(c[j].at) }
func (c completions) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c *completions) Push(x any)        { *c = append(*c, x.(completion)) }
func (c *completions) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

func newSim(t *testing.T, sched func(now func() time.Time, rnd func() uint64) balancer.Scheduler) *sim {
	t.Helper()
	s := &sim{now: time.Unix(1_000_000, 0), interval: 5 * time.Millisecond,
		latency: map[string]time.Duration{"a": 10 * time.Millisecond, "b": 10 * time.Millisecond, "c": 10 * time.Millisecond}}
	r := rand.New(rand.NewPCG(1, 2))
	g, err := balancer.New(balancer.Config{Scheduler: sched(func() time.Time { return s.now }, r.Uint64)},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:1"},
		balancer.Backend{ID: "b", Addr: "127.0.0.1:2"},
		balancer.Backend{ID: "c", Addr: "127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	s.g = g
	return s
}

// run makes n picks and returns how many went to each member.
func (s *sim) run(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		next := s.now.Add(s.interval)
		for len(s.pending) > 0 && !s.pending[0].at.After(next) {
			c := heap.Pop(&s.pending).(completion)
			s.now = c.at
			c.p.Done(balancer.DoneInfo{Latency: c.d})
		}
		s.now = next
		p, err := s.g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		id := p.Member.ID()
		got[id]++
		d := s.latency[id]
		heap.Push(&s.pending, completion{at: s.now.Add(d), p: p, d: d})
	}
	return got
}

func share(got map[string]int, id string) float64 {
	n := 0
	for _, c := range got {
		n += c
	}
	return float64(got[id]) / float64(n)
}

func peakEWMA(now func() time.Time, rnd func() uint64) balancer.Scheduler {
	s, err := balancer.NewPeakEWMA(balancer.PeakEWMAConfig{Now: now, Rand: rnd})
	if err != nil {
		panic(err)
	}
	return s
}

// The acceptance test of the ewma scheduler: three members, one turns 10×
// slower mid-run. Requests arrive every 5 ms (a light load: a fast
// member has about one request in flight), so a least-connections count
// alone barely tells the slow member apart; latency does.
func TestPeakEWMAAvoidsSlowMemberAndRecovers(t *testing.T) {
	const (
		bound  = 100  // picks after the slowdown within which c's share must fall
		window = 2000 // picks over which a share is measured
		tol    = 0.2  // relative tolerance of "about 1/3"
	)
	s := newSim(t, peakEWMA)
	warm := s.run(t, window)
	for _, id := range []string{"a", "b", "c"} {
		if sh := share(warm, id); sh < (1-tol)/3 || sh > (1+tol)/3 {
			t.Fatalf("all equal: share of %s = %.3f over %d picks, want 1/3 ± %.0f%% (%v)", id, sh, window, 100*tol, warm)
		}
	}

	s.latency["c"] = 100 * time.Millisecond
	s.run(t, bound)
	slow := s.run(t, window)
	if sh := share(slow, "c"); sh >= 0.05 {
		t.Errorf("c 10× slower: its share over picks %d–%d after the slowdown = %.3f, want < 0.05 (%v)", bound, bound+window, sh, slow)
	}

	// c recovers; its 100 ms peak decays (Tau 10s) until it is tried
	// again, and its fast answers pull the estimate down with the same
	// time constant: about a third after 10 s, all of it within a few
	// Tau (Finagle's and Linkerd's pace).
	s.latency["c"] = 10 * time.Millisecond
	s.run(t, int(90*time.Second/s.interval)) // 90 s of traffic
	back := s.run(t, window)
	if sh := share(back, "c"); sh < (1-tol)/3 || sh > (1+tol)/3 {
		t.Errorf("c fast again, 90s later: share = %.3f over %d picks, want 1/3 ± %.0f%% (%v)", sh, window, 100*tol, back)
	}
	t.Logf("shares of c: warm %.3f, slow %.3f, recovered %.3f", share(warm, "c"), share(slow, "c"), share(back, "c"))
}

// The same traffic under wlc: without latency, the slow member keeps far
// more than 5%. This is what the ewma scheduler is for.
func TestLeastConnectionsMissesSlowMember(t *testing.T) {
	s := newSim(t, func(func() time.Time, func() uint64) balancer.Scheduler { return balancer.LeastConnections() })
	s.run(t, 2000)
	s.latency["c"] = 100 * time.Millisecond
	s.run(t, 100)
	sh := share(s.run(t, 2000), "c")
	t.Logf("wlc: share of c while slow = %.3f", sh)
	if sh < 0.05 {
		t.Errorf("wlc, c 10× slower: share = %.3f, expected ≥ 0.05 (the light load hides it)", sh)
	}
}

func TestPickAndDoneAllocateNothing(t *testing.T) {
	for _, sched := range []balancer.Scheduler{balancer.PeakEWMA(), balancer.Maglev{By: balancer.HashKey}, balancer.WeightedRoundRobin(), balancer.LeastConnections()} {
		t.Run(sched.Name(), func(t *testing.T) {
			g, err := balancer.New(balancer.Config{Scheduler: sched},
				balancer.Backend{ID: "a", Addr: "127.0.0.1:1"}, balancer.Backend{ID: "b", Addr: "127.0.0.1:2", Weight: 300})
			if err != nil {
				t.Fatal(err)
			}
			k := balancer.Key{Hash: 42, HasHash: true}
			if n := testing.AllocsPerRun(1000, func() {
				p, err := g.Pick(k)
				if err != nil {
					t.Fatal(err)
				}
				p.Done(balancer.DoneInfo{Latency: time.Millisecond})
			}); n != 0 {
				t.Errorf("Pick+Done allocates %v times, want 0", n)
			}
		})
	}
}

func TestNewPeakEWMA(t *testing.T) {
	for _, tt := range []struct {
		cfg  balancer.PeakEWMAConfig
		want string
	}{
		{balancer.PeakEWMAConfig{Tau: -time.Second}, "balancer: Tau -1s: negative"},
		{balancer.PeakEWMAConfig{DefaultLatency: -time.Millisecond}, "balancer: DefaultLatency -1ms: negative"},
	} {
		if _, err := balancer.NewPeakEWMA(tt.cfg); fmt.Sprint(err) != tt.want {
			t.Errorf("NewPeakEWMA(%+v) = %v, want %s", tt.cfg, err, tt.want)
		}
	}
	if s, err := balancer.NewPeakEWMA(balancer.PeakEWMAConfig{}); err != nil || s.Name() != balancer.NameEWMA {
		t.Errorf("NewPeakEWMA(zero) = %v, %v; want the ewma scheduler", s, err)
	}
}

// The first outcome replaces DefaultLatency: one 1 ms answer is enough to
// prefer a member with a request in flight (cost 1 ms × 2) over one with
// no data (30 ms × 1). Blended into the default instead, that answer
// would leave the estimate near 30 ms for seconds (Tau 10 s).
func TestPeakEWMAFirstOutcomeReplacesDefault(t *testing.T) {
	now := time.Unix(0, 0)
	s := peakEWMA(func() time.Time { return now }, rand.New(rand.NewPCG(1, 2)).Uint64)
	g, err := balancer.New(balancer.Config{Scheduler: s},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:1"}, balancer.Backend{ID: "b", Addr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := g.PickSticky("a", balancer.Key{})
	now = now.Add(time.Millisecond)
	p.Done(balancer.DoneInfo{Latency: time.Millisecond})
	held, _ := g.PickSticky("a", balancer.Key{}) // one request in flight on a
	defer held.Done(balancer.DoneInfo{})
	for i := range 10 {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		if id := p.Member.ID(); id != "a" {
			t.Errorf("Pick(step %d) = %s, want a", i, id)
		}
		p.Done(balancer.DoneInfo{})
	}
}

// A lower outcome moves the estimate as Finagle's does: the old estimate
// decays over the time since its last update and the outcome takes the
// weight that decay freed, est·e^(−Δt/Tau) + rtt·(1 − e^(−Δt/Tau)); it is
// not decayed twice. a answers in 100 ms, then in 1 ns one Tau later, so
// its estimate is 100/e ≈ 36.8 ms (decayed twice it would be 100/e² ≈
// 13.5 ms); b answers in 20 ms at that moment, and is picked.
func TestPeakEWMALowerOutcomeDecaysOnce(t *testing.T) {
	const tau = 10 * time.Second
	now := time.Unix(0, 0)
	s, err := balancer.NewPeakEWMA(balancer.PeakEWMAConfig{Tau: tau, Now: func() time.Time { return now },
		Rand: rand.New(rand.NewPCG(1, 2)).Uint64})
	if err != nil {
		t.Fatal(err)
	}
	g, err := balancer.New(balancer.Config{Scheduler: s},
		balancer.Backend{ID: "a", Addr: "127.0.0.1:1"}, balancer.Backend{ID: "b", Addr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	report := func(id string, d time.Duration) {
		t.Helper()
		p, err := g.PickSticky(id, balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		p.Done(balancer.DoneInfo{Latency: d})
	}
	report("a", 100*time.Millisecond)
	now = now.Add(tau)
	report("a", 1)
	report("b", 20*time.Millisecond)
	for i := range 10 {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		if id := p.Member.ID(); id != "b" {
			t.Errorf("Pick(step %d) = %s, want b (a ≈ 36.8ms, b 20ms)", i, id)
		}
		p.Done(balancer.DoneInfo{})
	}
}
