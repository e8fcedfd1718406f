package balancer

import (
	"errors"
	"testing"
	"time"
)

// recorder is a Picker that observes outcomes.
type recorder struct {
	m    *Member
	seen []DoneInfo
}

func (r *recorder) Pick(Key) *Member              { return r.m }
func (r *recorder) Observe(m *Member, d DoneInfo) { r.seen = append(r.seen, d) }

type recorderScheduler struct{ r *recorder }

func (recorderScheduler) Name() string { return "recorder" }
func (s recorderScheduler) Build(ms []*Member) (Picker, error) {
	s.r.m = ms[0]
	return s.r, nil
}

func TestPickedDone(t *testing.T) {
	r := &recorder{}
	g := mustNew(t, Config{Scheduler: recorderScheduler{r}}, be("a", 100))
	p, err := g.Pick(anyKey)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Member.Outstanding(); n != 1 {
		t.Errorf("Outstanding after Pick = %d, want 1", n)
	}
	// A change in between: Done still reaches the picker that picked.
	if err := g.SetWeight("a", 7); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	p.Done(DoneInfo{Err: boom, Latency: 3 * time.Millisecond})
	a, _ := g.Member("a")
	if a.Outstanding() != 0 || a.Total() != 1 || a.Failures() != 1 || a.LastLatency() != 3*time.Millisecond {
		t.Errorf("after Done: outstanding %d, total %d, failures %d, last latency %v; want 0, 1, 1, 3ms",
			a.Outstanding(), a.Total(), a.Failures(), a.LastLatency())
	}
	if len(r.seen) != 1 || r.seen[0].Err != boom {
		t.Errorf("Observer saw %v, want the one outcome", r.seen)
	}
	Picked{}.Done(DoneInfo{}) // the zero Picked: no member, no panic
}

func TestPicksCount(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), be("b", 100))
	var ps []Picked
	for _, pick := range []func() (Picked, error){
		func() (Picked, error) { return g.Pick(anyKey) },
		func() (Picked, error) { return g.PickSticky("a", anyKey) },
		func() (Picked, error) { return g.PickNext(anyKey, nil) },
		func() (Picked, error) { m, _ := g.Member("a"); return g.PickNext(anyKey, []*Member{m}) },
	} {
		p, err := pick()
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	sum := func() int64 {
		a, _ := g.Member("a")
		b, _ := g.Member("b")
		return a.Outstanding() + b.Outstanding()
	}
	if n := sum(); n != 4 {
		t.Errorf("outstanding after 4 picks = %d, want 4", n)
	}
	for _, p := range ps {
		p.Done(DoneInfo{})
	}
	if n := sum(); n != 0 {
		t.Errorf("outstanding after 4 Dones = %d, want 0", n)
	}
}

func TestMaint(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), Backend{ID: "b", Addr: "127.0.0.1:2", State: Maint})
	if got := picks(t, g, 50); got["b"] != 0 {
		t.Errorf("member in maintenance picked %d times of 50", got["b"])
	}
	if m, err := member(g.PickSticky("b", anyKey)); err != nil || m.ID() != "a" {
		t.Errorf("PickSticky(b) while b is in maintenance = %v, %v; want a fresh pick, a", id(m), err)
	}
	b, _ := g.Member("b")
	if b.State() != Maint || b.Weight() != DefaultWeight {
		t.Errorf("b: State %v, Weight %d; want maint, %d", b.State(), b.Weight(), DefaultWeight)
	}
	if err := g.SetState("b", Ready); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, g, 50); got["b"] == 0 {
		t.Errorf("b back to Ready never picked in 50: %v", got)
	}
}

func TestErrorsCarryOnePrefix(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100))
	for _, tt := range []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"unknown", g.SetWeight("zz", 5), `balancer: backend "zz": unknown backend`, ErrUnknownBackend},
		{"unknown remove", g.Remove("zz"), `balancer: backend "zz": unknown backend`, ErrUnknownBackend},
		{"weight 0", g.SetWeight("a", 0), `balancer: Weight 0: out of range 1–65535; use SetState(id, Drain) to drain`, nil},
	} {
		if tt.err == nil || tt.err.Error() != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, tt.err, tt.want)
		}
		if tt.is != nil && !errors.Is(tt.err, tt.is) {
			t.Errorf("%s: errors.Is(%v, %v) = false", tt.name, tt.err, tt.is)
		}
	}
}
