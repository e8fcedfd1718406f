package attempt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// env records what a loop counts and reports, in order.
type env struct {
	mu       sync.Mutex
	events   []string
	noHealth bool
}

func (e *env) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, fmt.Sprintf(format, args...))
}

func (e *env) NoBackend() { e.add("no backend") }

func (e *env) Failed(m *balancer.Member, err error, connect bool) {
	e.add("failed %s connect=%v: %v", m.ID(), connect, err)
}

func (e *env) Health(*balancer.Group) Reporter {
	if e.noHealth {
		return nil
	}
	return e
}

func (e *env) ReportSuccess(id string) { e.add("health +%s", id) }
func (e *env) ReportFailure(id string) { e.add("health -%s", id) }

// first is a scheduler that always picks its first member (PickNext then
// walks the rest in ID order) and records every outcome it observes.
type first struct {
	mu   sync.Mutex
	seen []string
}

func (s *first) Name() string { return "first" }

func (s *first) Build(ms []*balancer.Member) (balancer.Picker, error) {
	return &firstPicker{s: s, m: ms[0]}, nil
}

type firstPicker struct {
	s *first
	m *balancer.Member
}

func (p *firstPicker) Pick(balancer.Key) *balancer.Member { return p.m }

func (p *firstPicker) Observe(m *balancer.Member, d balancer.DoneInfo) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.seen = append(p.s.seen, fmt.Sprintf("%s err=%v latency=%v", m.ID(), d.Err, d.Latency))
}

func newGroup(t testing.TB, s balancer.Scheduler, ids ...string) *balancer.Group {
	t.Helper()
	bs := make([]balancer.Backend, len(ids))
	for i, id := range ids {
		bs[i] = balancer.Backend{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i)}
	}
	g, err := balancer.New(balancer.Config{Scheduler: s}, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// clock is a fake time source that moves on by step at every reading.
type clock struct {
	t    time.Time
	step time.Duration
}

func (c *clock) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

var (
	errRefused = errors.New("connection refused")
	errReset   = errors.New("connection reset")
)

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func outstanding(g *balancer.Group) int64 {
	var n int64
	for _, m := range g.Members() {
		n += m.Outstanding()
	}
	return n
}

// Every step of the loop, for each kind of failure and for the member
// that works: what passive health hears, what is counted, what the
// scheduler observes, and that every pick is Done once.
func TestLoop(t *testing.T) {
	for _, tt := range []struct {
		name     string
		ids      []string
		sticky   string
		fails    []Failure // the outcome of each attempt in turn; past its end, success
		ok       bool      // the loop ends with a member
		tried    []string
		events   []string
		observed []string
	}{
		{
			name: "first works", ids: []string{"a", "b"}, ok: true,
			tried:    []string{"a"},
			events:   []string{"health +a"},
			observed: []string{"a err=<nil> latency=5ms"},
		},
		{
			name: "sticky", ids: []string{"a", "b"}, sticky: "b", ok: true,
			tried:    []string{"b"},
			events:   []string{"health +b"},
			observed: []string{"b err=<nil> latency=5ms"},
		},
		{
			name: "unreachable then retry then works", ids: []string{"a", "b", "c"},
			fails: []Failure{Unreachable, Retry}, ok: true,
			tried: []string{"a", "b", "c"},
			events: []string{
				"health -a", "failed a connect=true: connection refused",
				"failed b connect=false: connection reset",
				"health +c",
			},
			observed: []string{"a err=connection refused latency=0s", "b err=connection reset latency=0s", "c err=<nil> latency=5ms"},
		},
		{
			name: "final", ids: []string{"a", "b"}, fails: []Failure{Final},
			tried:    []string{"a"},
			events:   []string{"failed a connect=false: connection reset"},
			observed: []string{"a err=connection reset latency=0s"},
		},
		{
			name: "members run out", ids: []string{"a", "b"}, fails: []Failure{Unreachable, Unreachable},
			tried: []string{"a", "b"},
			events: []string{
				"health -a", "failed a connect=true: connection refused",
				"health -b", "failed b connect=true: connection refused",
			},
			observed: []string{"a err=connection refused latency=0s", "b err=connection refused latency=0s"},
		},
		{
			name: "at most Max attempts", ids: []string{"a", "b", "c", "d"}, fails: []Failure{Retry, Retry, Retry, Retry},
			tried: []string{"a", "b", "c"},
			events: []string{
				"failed a connect=false: connection reset",
				"failed b connect=false: connection reset",
				"failed c connect=false: connection reset",
			},
			observed: []string{"a err=connection reset latency=0s", "b err=connection reset latency=0s", "c err=connection reset latency=0s"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &first{}
			g := newGroup(t, s, tt.ids...)
			e := &env{}
			c := &clock{t: time.Unix(0, 0), step: 5 * time.Millisecond}
			a := Loop{Group: g, Sticky: tt.sticky, Env: e, Now: c.now}
			var tried []string
			var at Attempt
			ok := false
			for a.Next() {
				m := a.Member()
				tried = append(tried, m.ID())
				if n := len(tried); n <= len(tt.fails) {
					err := errReset
					if tt.fails[n-1] == Unreachable {
						err = errRefused
					}
					a.Fail(err, tt.fails[n-1])
					continue
				}
				if at, ok = a.Connected(); !ok {
					t.Fatal("Connected() = false, want true")
				}
				break
			}
			if ok != tt.ok {
				t.Fatalf("loop ended with a member: %v, want %v", ok, tt.ok)
			}
			if ok {
				if a.Next() {
					t.Error("Next() after Connected = true, want false")
				}
				if a.Err() != nil {
					t.Errorf("Err() = %v, want nil", a.Err())
				}
				if got, want := at.Retried(), len(tried) > 1; got != want {
					t.Errorf("Retried() = %v, want %v", got, want)
				}
				lat := at.Succeeded()
				at.Done(balancer.DoneInfo{Latency: lat})
			} else if a.Err() == nil || errors.Is(a.Err(), balancer.ErrNoBackend) {
				t.Errorf("Err() = %v, want the last attempt's error", a.Err())
			}
			check(t, "tried", tried, tt.tried)
			check(t, "env", e.events, tt.events)
			check(t, "observed", s.seen, tt.observed)
			if n := outstanding(g); n != 0 {
				t.Errorf("outstanding = %d after every Done, want 0", n)
			}
		})
	}
}

// A client turned away because the first pick found nothing is counted
// once; members running out after attempts is not "no backend".
func TestLoopNoBackend(t *testing.T) {
	g := newGroup(t, nil, "a")
	if err := g.SetState("a", balancer.Maint); err != nil {
		t.Fatal(err)
	}
	e := &env{}
	a := Loop{Group: g, Env: e}
	if a.Next() {
		t.Fatal("Next() = true with no eligible member, want false")
	}
	if !errors.Is(a.Err(), balancer.ErrNoBackend) {
		t.Errorf("Err() = %v, want ErrNoBackend", a.Err())
	}
	check(t, "env", e.events, []string{"no backend"})
}

// A stopping proxy's failures are not the member's fault: Done carries no
// error, nothing is reported or counted, and no other member is tried.
func TestLoopStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Run("Fail", func(t *testing.T) {
		s := &first{}
		g := newGroup(t, s, "a", "b")
		e := &env{}
		a := Loop{Group: g, Stop: ctx, Env: e}
		if !a.Next() {
			t.Fatal("Next() = false, want the first pick")
		}
		a.Fail(errRefused, Unreachable)
		if a.Next() {
			t.Error("Next() after a failure while stopping = true, want false")
		}
		if !a.Stopped() {
			t.Error("Stopped() = false, want true")
		}
		check(t, "env", e.events, nil)
		check(t, "observed", s.seen, []string{"a err=<nil> latency=0s"})
		if n := outstanding(g); n != 0 {
			t.Errorf("outstanding = %d, want 0", n)
		}
	})
	t.Run("Connected", func(t *testing.T) {
		s := &first{}
		g := newGroup(t, s, "a")
		e := &env{}
		a := Loop{Group: g, Stop: ctx, Env: e}
		a.Next()
		if _, ok := a.Connected(); ok {
			t.Error("Connected() while stopping = true, want false")
		}
		check(t, "env", e.events, nil)
		check(t, "observed", s.seen, []string{"a err=<nil> latency=0s"})
		if n := outstanding(g); n != 0 {
			t.Errorf("outstanding = %d, want 0", n)
		}
	})
}

// A member taken by the loop that turns out unreachable (a UDP flow's
// ICMP error) is reported and counted as a connect failure.
func TestAttemptFailed(t *testing.T) {
	s := &first{}
	g := newGroup(t, s, "a")
	e := &env{}
	a := Loop{Group: g, Env: e}
	a.Next()
	at, _ := a.Connected()
	at.Failed(errRefused)
	at.Done(balancer.DoneInfo{Err: errRefused})
	check(t, "env", e.events, []string{"health -a", "failed a connect=true: connection refused"})
	check(t, "observed", s.seen, []string{"a err=connection refused latency=0s"})
}

// Without passive health the loop reports nothing, and the zero Attempt
// does nothing.
func TestNoHealth(t *testing.T) {
	g := newGroup(t, nil, "a")
	e := &env{noHealth: true}
	a := Loop{Group: g, Env: e}
	a.Next()
	a.Fail(errRefused, Unreachable)
	check(t, "env", e.events, []string{"failed a connect=true: connection refused"})
	var zero Attempt
	zero.Succeeded()
	zero.Failed(errRefused)
	zero.Done(balancer.DoneInfo{})
}

// nopEnv counts nothing, for the allocation check.
type nopEnv struct{}

func (nopEnv) NoBackend()                           {}
func (nopEnv) Failed(*balancer.Member, error, bool) {}
func (nopEnv) Health(*balancer.Group) Reporter      { return nil }

// A loop with a failed attempt and one that works allocates nothing.
func TestLoopAllocs(t *testing.T) {
	g := newGroup(t, balancer.RoundRobin(), "a", "b", "c")
	ctx := context.Background()
	var env Env = nopEnv{}
	n := testing.AllocsPerRun(100, func() {
		a := Loop{Group: g, Stop: ctx, Env: env}
		for a.Next() {
			if !a.Member().Healthy() || a.Member().ID() == "a" {
				a.Fail(errRefused, Unreachable)
				continue
			}
			at, _ := a.Connected()
			at.Done(balancer.DoneInfo{Latency: at.Succeeded()})
			break
		}
	})
	if n != 0 {
		t.Errorf("allocs per loop = %v, want 0", n)
	}
}
