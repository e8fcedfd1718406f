package health_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
)

// A *balancer.Group is a StatusSetter.
var _ health.StatusSetter = (*balancer.Group)(nil)

// scripted is a Probe whose n-th call returns the n-th result of script:
// '+' passes, '-' fails with "connection refused" from a real socket error.
type scripted struct {
	script string
	n      atomic.Int64
}

var errScripted = errors.New("scripted failure")

func (s *scripted) Probe(context.Context, string) error {
	i := s.n.Add(1) - 1
	if s.script[i] == '+' {
		return nil
	}
	return errScripted
}

// transitions runs len(script) rounds and describes each event as
// "round:from>to/count".
func transitions(t *testing.T, cfg health.Config, script string) (string, []string) {
	t.Helper()
	rec := newRecorder()
	cfg.Probe, cfg.Setter, cfg.OnChange = &scripted{script: strings.ReplaceAll(script, " ", "")}, rec, rec.onChange
	c := newChecker(t, cfg, health.Target{ID: "b", Addr: "192.0.2.1:80"})
	var got []string
	for i := range len(strings.ReplaceAll(script, " ", "")) {
		round(t, c)
		for _, ev := range rec.takeEvents() {
			got = append(got, fmt.Sprintf("%d:%s>%s/%d", i+1, ev.From, ev.To, ev.Count))
		}
	}
	return strings.Join(got, " "), rec.takeSets()
}

func TestThresholds(t *testing.T) {
	tests := []struct {
		name     string
		cfg      health.Config
		script   string
		want     string
		wantSets string
	}{
		{"pending passes first probe", health.Config{}, "+ + +", "1:pending>healthy/1", "b=true"},
		{"pending fails first probe, then needs 3", health.Config{}, "- + + +", "1:pending>unhealthy/1 4:unhealthy>healthy/3", "b=false b=true"},
		{"down after exactly 3 failures", health.Config{}, "+ - - - -", "1:pending>healthy/1 4:healthy>unhealthy/3", "b=true b=false"},
		{"a pass resets the failures", health.Config{}, "+ - - + - - + - -", "1:pending>healthy/1", "b=true"},
		{"flapping, thresholds 2", health.Config{HealthyThreshold: 2, UnhealthyThreshold: 2}, "+ - - + - + + - -",
			"1:pending>healthy/1 3:healthy>unhealthy/2 7:unhealthy>healthy/2 9:healthy>unhealthy/2", "b=true b=false b=true b=false"},
		{"thresholds 10 and 5", health.Config{HealthyThreshold: 5, UnhealthyThreshold: 10}, "+ ---------- +++++",
			"1:pending>healthy/1 11:healthy>unhealthy/10 16:unhealthy>healthy/5", "b=true b=false b=true"},
		{"thresholds 1, below the CLB: every probe decides", health.Config{TrustNew: true, HealthyThreshold: 1, UnhealthyThreshold: 1}, "+ - + + - -",
			"2:healthy>unhealthy/1 3:unhealthy>healthy/1 5:healthy>unhealthy/1", "b=true b=false b=true b=false"},
		{"thresholds 20, beyond the CLB", health.Config{TrustNew: true, UnhealthyThreshold: 20}, "------------------- + --------------------",
			"40:healthy>unhealthy/20", "b=true b=false"},
		{"trusted needs 3 failures", health.Config{TrustNew: true}, "- - - + + +",
			"3:healthy>unhealthy/3 6:unhealthy>healthy/3", "b=true b=false b=true"},
		{"trusted: told at once, passes tell nothing", health.Config{TrustNew: true}, "+ + -", "", "b=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, sets := transitions(t, tt.cfg, tt.script)
			if got != tt.want {
				t.Errorf("script %q: events %q, want %q", tt.script, got, tt.want)
			}
			if s := strings.Join(sets, " "); s != tt.wantSets {
				t.Errorf("script %q: SetHealthy calls %q, want %q", tt.script, s, tt.wantSets)
			}
		})
	}
}

// TestFlappingServer drives a real HTTP server between 200 and 500 and
// counts the probes before each transition.
func TestFlappingServer(t *testing.T) {
	leakcheck.Check(t)
	var code atomic.Int64
	addr, _ := httpServer(t, func() int { return int(code.Load()) })
	rec := newRecorder()
	c := newChecker(t, health.Config{Kind: health.KindHTTP, Setter: rec, OnChange: rec.onChange},
		health.Target{ID: "web", Addr: addr})
	script := []int{200, 200, 500, 500, 200, 500, 500, 500, 200, 200, 500, 200, 200, 200}
	var got []string
	for i, status := range script {
		code.Store(int64(status))
		round(t, c)
		for _, ev := range rec.takeEvents() {
			got = append(got, fmt.Sprintf("%d:%s(%s)", i+1, ev.To, ev.Reason))
		}
	}
	want := "1:healthy(passed first check) 8:unhealthy(status 500) 14:healthy(passed 3 checks)"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("events %q, want %q", g, want)
	}
	st, _ := c.Status("web")
	if st.Probes != len(script) || st.Passes != 3 || !st.Healthy {
		t.Errorf("Status = %+v, want %d probes, 3 passes, healthy", st, len(script))
	}
}

// TestGroupFollowsChecker wires a Checker to a real balancer.Group over
// loopback servers.
func TestGroupFollowsChecker(t *testing.T) {
	leakcheck.Check(t)
	up, _ := tcpServer(t, false)
	down := closedTCP(t)
	g, err := balancer.New(balancer.Config{},
		balancer.Backend{ID: "up", Addr: up, Weight: 100},
		balancer.Backend{ID: "down", Addr: down, Weight: 100})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	// The group reports to the Checker's Setter, but no Follow: say that
	// a checker decides, as Follow would.
	defer g.HealthChecked()()
	c := newChecker(t, health.Config{Setter: g, OnChange: rec.onChange},
		health.Target{ID: "up", Addr: up}, health.Target{ID: "down", Addr: down})
	if _, err := g.Pick(balancer.Key{}); !errors.Is(err, balancer.ErrNoBackend) {
		t.Fatalf("Pick before any probe: %v, want ErrNoBackend", err)
	}
	round(t, c)
	for i := range 4 {
		p, err := g.Pick(balancer.Key{})
		if err != nil || p.Member.ID() != "up" {
			t.Fatalf("Pick(%d) after one round = %v, %v; want up", i, p.Member, err)
		}
		p.Done(balancer.DoneInfo{})
	}
	for _, ev := range rec.takeEvents() {
		if ev.SetErr != nil {
			t.Errorf("event %+v: SetHealthy error %v", ev, ev.SetErr)
		}
		if ev.ID == "down" && ev.Reason != "connection refused" {
			t.Errorf("down: Reason %q, want connection refused", ev.Reason)
		}
	}
	// A target the group does not know: the error reaches the event.
	if err := c.SetTargets([]health.Target{{ID: "up", Addr: up}, {ID: "ghost", Addr: down}}); err != nil {
		t.Fatal(err)
	}
	round(t, c)
	evs := rec.takeEvents()
	if len(evs) != 1 || evs[0].ID != "ghost" || !errors.Is(evs[0].SetErr, balancer.ErrUnknownBackend) {
		t.Errorf("events %+v, want one for ghost with ErrUnknownBackend", evs)
	}
}

func TestSetTargetsKeepsState(t *testing.T) {
	rec := newRecorder()
	c := newChecker(t, health.Config{Probe: health.ProbeFunc(func(context.Context, string) error { return nil }), OnChange: rec.onChange},
		health.Target{ID: "a", Addr: "192.0.2.1:80"}, health.Target{ID: "b", Addr: "192.0.2.2:80"})
	round(t, c)
	round(t, c)
	if err := c.SetTargets([]health.Target{
		{ID: "a", Addr: "192.0.2.1:80"}, // kept
		{ID: "b", Addr: "192.0.2.9:80"}, // moved: a new target
		{Addr: "192.0.2.3:80"},          // new, ID defaults to Addr
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "healthy 2", "b": "pending 0", "192.0.2.3:80": "pending 0"}
	for _, st := range c.Statuses() {
		if got := fmt.Sprintf("%s %d", st.State, st.Probes); got != want[st.ID] {
			t.Errorf("Status(%s) = %s, want %s", st.ID, got, want[st.ID])
		}
	}
	if err := c.SetTargets([]health.Target{{ID: "a", Addr: "bad"}}); err == nil {
		t.Errorf("SetTargets(bad) = nil, want error")
	}
	if n := len(c.Statuses()); n != 3 {
		t.Errorf("after a refused SetTargets: %d targets, want 3 (unchanged)", n)
	}
	if _, ok := c.Status("gone"); ok {
		t.Errorf("Status(gone) ok, want false")
	}
}

// A member the group removed and added back between two SetTargets calls
// is back at the group's default health; SetTargets tells the group again
// what the Checker knows, without an event.
func TestSetTargetsRetellsKeptTargets(t *testing.T) {
	member := balancer.Backend{ID: "down", Addr: "192.0.2.1:80", Weight: 100}
	target := health.Target{ID: member.ID, Addr: member.Addr}
	g, err := balancer.New(balancer.Config{}, member)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	c := newChecker(t, health.Config{Probe: health.ProbeFunc(func(context.Context, string) error { return errors.New("refused") }),
		Setter: g, OnChange: rec.onChange}, target)
	round(t, c)
	healthy := func() bool { m, _ := g.Member(member.ID); return m.Healthy() }
	if healthy() {
		t.Fatal("after a failed first probe: member healthy")
	}
	if err := g.Remove(member.ID); err != nil {
		t.Fatal(err)
	}
	if err := g.Add(member); err != nil {
		t.Fatal(err)
	}
	rec.takeEvents()
	if err := c.SetTargets([]health.Target{target}); err != nil {
		t.Fatal(err)
	}
	if healthy() {
		t.Error("after SetTargets: the re-added member is healthy, want the Checker's unhealthy")
	}
	if evs := rec.takeEvents(); len(evs) != 0 {
		t.Errorf("SetTargets sent events %+v, want none", evs)
	}
}

func TestConcurrencyBound(t *testing.T) {
	var inflight, peak atomic.Int64
	p := health.ProbeFunc(func(context.Context, string) error {
		n := inflight.Add(1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		inflight.Add(-1)
		return nil
	})
	var ts []health.Target
	for i := range 24 {
		ts = append(ts, health.Target{Addr: fmt.Sprintf("192.0.2.%d:80", i+1)})
	}
	c := newChecker(t, health.Config{Probe: p, Concurrency: 3}, ts...)
	if res := round(t, c); len(res) != 24 {
		t.Fatalf("CheckNow returned %d results, want 24", len(res))
	}
	if got := peak.Load(); got != 3 {
		t.Errorf("peak probes in flight = %d, want 3", got)
	}
}

func TestJitter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ts []health.Target
	for i := range 100 {
		ts = append(ts, health.Target{Addr: fmt.Sprintf("192.0.2.%d:80", i+1)})
	}
	cfg := health.Config{Interval: 10 * time.Second, Rand: rand.New(rand.NewPCG(1, 2)), Now: func() time.Time { return now }}
	c := newChecker(t, cfg, ts...)
	next := health.NextProbesForTest(c)
	distinct := map[time.Time]bool{}
	for id, at := range next {
		// A new target is probed soon, so it need not wait an interval
		// for traffic.
		if off := at.Sub(now); off < 0 || off >= 100*time.Millisecond {
			t.Errorf("target %s: first probe at +%s, want within [0, 100ms)", id, off)
		}
		distinct[at] = true
	}
	if len(distinct) < 95 {
		t.Errorf("100 targets share %d start times, want them spread", len(distinct))
	}
	// After the first probe, each goes on from its own random point of the
	// interval, so the probes of many targets do not align.
	first := now.Add(100 * time.Millisecond)
	if due := health.DueForTest(c, first); len(due) != 100 {
		t.Fatalf("%d targets due 100ms after they came, want 100", len(due))
	}
	second := health.NextProbesForTest(c)
	spread := map[time.Duration]bool{}
	for id, at := range second {
		off := at.Sub(first)
		if off <= 0 || off > 10*time.Second {
			t.Errorf("target %s: second probe at +%s after the first round, want within (0, 10s]", id, off)
		}
		spread[off/time.Second] = true
	}
	if len(spread) < 8 {
		t.Errorf("second probes fall in %d of the interval's 10 seconds, want them spread over it", len(spread))
	}
	third := health.NextProbesForTest(c)
	if due := health.DueForTest(c, first.Add(10*time.Second)); len(due) != 100 {
		t.Fatalf("%d targets due one interval after the first round, want 100", len(due))
	}
	for id, at := range health.NextProbesForTest(c) {
		if got := at.Sub(third[id]); got != 10*time.Second {
			t.Errorf("target %s: third probe %s after the second, want the interval, 10s", id, got)
		}
	}
	cfg.Rand = rand.New(rand.NewPCG(1, 2))
	again := health.NextProbesForTest(newChecker(t, cfg, ts...))
	for id := range next {
		if !next[id].Equal(again[id]) {
			t.Fatalf("same Rand seed, target %s: %v then %v; want reproducible", id, next[id], again[id])
		}
	}
}

// TestScheduledLoop runs the real loop with a 1s interval, bounded by a
// deadline rather than a sleep.
func TestScheduledLoop(t *testing.T) {
	leakcheck.Check(t)
	up, _ := tcpServer(t, false)
	var mu sync.Mutex
	probes := map[string][]time.Time{}
	tcp := health.ProbeFunc(func(ctx context.Context, addr string) error {
		mu.Lock()
		probes[addr] = append(probes[addr], time.Now())
		mu.Unlock()
		var d dialCloser
		return d.dial(ctx, addr)
	})
	rec := newRecorder()
	c := newChecker(t, health.Config{Probe: tcp, Interval: time.Second, Setter: rec, OnChange: rec.onChange},
		health.Target{ID: "up", Addr: up}, health.Target{ID: "down", Addr: closedTCP(t)})
	started := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	got := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case ev := <-rec.ch:
			got[ev.ID] = ev.Healthy
		case <-timeout:
			t.Fatalf("no event for both targets within 5s: %v", got)
		}
	}
	if !got["up"] || got["down"] {
		t.Errorf("health after the first probes = %v, want up true, down false", got)
	}
	// A new target's first probe comes within 100 ms, its second at a
	// random point of the interval after it, then one every interval.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		p := append([]time.Time(nil), probes[up]...)
		mu.Unlock()
		if len(p) >= 3 {
			if gap := p[0].Sub(started); gap > 600*time.Millisecond {
				t.Errorf("first probe of up %s after Start, want within 100 ms", gap)
			}
			if gap := p[1].Sub(p[0]); gap > 1500*time.Millisecond {
				t.Errorf("first two probes of up %s apart, want at most about 1s", gap)
			}
			if gap := p[2].Sub(p[1]); gap < 900*time.Millisecond || gap > 1500*time.Millisecond {
				t.Errorf("probes of up %s apart, want about 1s", gap)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d probes of up in 5s, want three", len(p))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Stop()
	c.Stop() // idempotent
	if err := c.Start(); !errors.Is(err, health.ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
	if res := c.CheckNow(context.Background()); res != nil {
		t.Errorf("CheckNow after Stop = %v, want nil", res)
	}
}

// TestStopCancelsProbes stops a Checker whose probes hang and checks that
// Stop returns at once, ends every goroutine and reports nothing.
func TestStopCancelsProbes(t *testing.T) {
	leakcheck.Check(t)
	hang, accepted := tcpServer(t, true)
	var ts []health.Target
	for i := range 5 {
		ts = append(ts, health.Target{ID: fmt.Sprint(i), Addr: hang})
	}
	rec := newRecorder()
	c, err := health.New(health.Config{Kind: health.KindHTTP, Interval: time.Second, Timeout: 60 * time.Second,
		Setter: rec, OnChange: rec.onChange, Rand: rand.New(rand.NewPCG(0, 0))}, ts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// A round of CheckNow in flight too.
	checkDone := make(chan []health.Result)
	go func() { checkDone <- c.CheckNow(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	c.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %s with hanging probes, want prompt", d)
	}
	<-checkDone
	if sets := rec.takeSets(); len(sets) != 0 {
		t.Errorf("SetHealthy calls after canceled probes: %v, want none", sets)
	}
}
