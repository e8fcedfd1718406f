package balancer

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustNew(t *testing.T, cfg Config, bs ...Backend) *Group {
	t.Helper()
	g, err := New(cfg, bs...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

func be(id string, weight int) Backend {
	return Backend{ID: id, Addr: "127.0.0.1:8080", Weight: weight}
}

// member ends a pick at once and returns its member, for tests about
// which member is chosen rather than about counting.
func member(p Picked, err error) (*Member, error) {
	if err == nil {
		p.Done(DoneInfo{})
	}
	return p.Member, err
}

var anyKey = Key{Src: netip.MustParseAddrPort("192.0.2.7:5000"), Dst: netip.MustParseAddrPort("192.0.2.1:80")}

// picks returns how often each member was picked in n picks.
func picks(t *testing.T, g *Group, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		m, err := member(g.Pick(anyKey))
		if err != nil {
			t.Fatalf("Pick(step %d): %v", i, err)
		}
		got[m.ID()]++
	}
	return got
}

func TestBackendValidation(t *testing.T) {
	tests := []struct {
		name    string
		b       Backend
		field   string
		message string
	}{
		{"weight too high", Backend{Addr: "10.0.0.1:80", Weight: 65536}, "Weight", `balancer: Weight 65536: out of range 1–65535`},
		{"weight negative", Backend{Addr: "10.0.0.1:80", Weight: -1}, "Weight", `balancer: Weight -1: out of range 1–65535`},
		{"unknown state", Backend{Addr: "10.0.0.1:80", State: 3}, "State", `balancer: State 3: unknown; want Ready, Drain or Maint`},
		{"no port", Backend{Addr: "10.0.0.1", Weight: 1}, "Addr", `balancer: Addr "10.0.0.1": not host:port`},
		{"port 0", Backend{Addr: "10.0.0.1:0", Weight: 1}, "Addr", `balancer: Addr "10.0.0.1:0": port out of range 1–65535`},
		{"port 65536", Backend{Addr: "10.0.0.1:65536", Weight: 1}, "Addr", `balancer: Addr "10.0.0.1:65536": port out of range 1–65535`},
		{"empty host", Backend{Addr: ":80", Weight: 1}, "Addr", `balancer: Addr ":80": empty host`},
		{"long ID", Backend{ID: strings.Repeat("x", 257), Addr: "10.0.0.1:80", Weight: 1}, "ID", "longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{}, tt.b)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New(%+v) = %v, want a *ConfigError", tt.b, err)
			}
			if ce.Field != tt.field || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("New(%+v) = %q (field %s), want field %s and %q", tt.b, err, ce.Field, tt.field, tt.message)
			}
		})
	}
}

func TestIDDefaultsToAddr(t *testing.T) {
	g := mustNew(t, Config{}, Backend{Addr: "[::1]:9000", Weight: 5})
	if _, ok := g.Member("[::1]:9000"); !ok {
		t.Errorf("member with empty ID not found by its address; members: %v", g)
	}
}

func TestChangesAreAllOrNothing(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100))
	before := g.String()
	tests := []struct {
		name   string
		change func() error
		is     error
	}{
		{"Add with one bad", func() error { return g.Add(be("b", 100), be("c", 70000)) }, nil},
		{"Add duplicate in call", func() error { return g.Add(be("b", 100), be("b", 100)) }, nil},
		{"Add existing", func() error { return g.Add(be("a", 50)) }, nil},
		{"Remove with unknown", func() error { return g.Remove("a", "zz") }, ErrUnknownBackend},
		{"SetWeight unknown", func() error { return g.SetWeight("zz", 10) }, ErrUnknownBackend},
		{"SetWeight out of range", func() error { return g.SetWeight("a", 65536) }, nil},
		{"SetWeight 0", func() error { return g.SetWeight("a", 0) }, nil},
		{"SetState unknown", func() error { return g.SetState("zz", Drain) }, ErrUnknownBackend},
		{"SetState invalid", func() error { return g.SetState("a", -1) }, nil},
		{"SetHealthy unknown", func() error { return g.SetHealthy("zz", false) }, ErrUnknownBackend},
		{"Replace with bad", func() error { return g.Replace([]Backend{be("x", 1), {Addr: "nope"}}) }, nil},
		{"Replace duplicate", func() error { return g.Replace([]Backend{be("x", 1), be("x", 2)}) }, nil},
		{"SetScheduler bad table", func() error { return g.SetScheduler(Maglev{TableSize: 100}) }, nil},
		{"SetScheduler nil", func() error { return g.SetScheduler(nil) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.change()
			if err == nil {
				t.Fatal("change succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.is)
			}
			if got := g.String(); got != before {
				t.Errorf("group changed by a refused call: %s, was %s", got, before)
			}
		})
	}
	if g.Scheduler().Name() != NameWRR {
		t.Errorf("scheduler = %s after refused SetScheduler, want wrr", g.Scheduler().Name())
	}
}

func TestDrain(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), be("b", 100))
	if err := g.SetState("a", Drain); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, g, 100); got["a"] != 0 {
		t.Errorf("drained member a picked %d times of 100", got["a"])
	}
	// A sticky client of a keeps it while it drains.
	if m, err := member(g.PickSticky("a", anyKey)); err != nil || m.ID() != "a" {
		t.Errorf("PickSticky(a) while a drains = %v, %v; want a", id(m), err)
	}
	if err := g.SetState("b", Drain); err != nil {
		t.Fatal(err)
	}
	if m, err := member(g.Pick(anyKey)); !errors.Is(err, ErrNoBackend) {
		t.Errorf("Pick with every member drained = %v, %v; want ErrNoBackend", id(m), err)
	}
}

func TestPrimaryStandby(t *testing.T) {
	g := mustNew(t, Config{},
		Backend{ID: "primary", Addr: "127.0.0.1:1", Weight: 100},
		Backend{ID: "standby", Addr: "127.0.0.1:2", Weight: 100, Standby: true})
	steps := []struct {
		name    string
		change  func() error
		want    string
		sticky  string // PickSticky(standby) result
		wantErr error
	}{
		{"primary healthy", nil, "primary", "primary", nil},
		{"primary down", func() error { return g.SetHealthy("primary", false) }, "standby", "standby", nil},
		{"primary back", func() error { return g.SetHealthy("primary", true) }, "primary", "primary", nil},
		{"primary drained", func() error { return g.SetState("primary", Drain) }, "standby", "standby", nil},
		{"both down", func() error {
			if err := g.SetState("primary", Ready); err != nil {
				return err
			}
			if err := g.SetHealthy("primary", false); err != nil {
				return err
			}
			return g.SetHealthy("standby", false)
		}, "", "", ErrNoBackend},
		{"standby recovers first", func() error { return g.SetHealthy("standby", true) }, "standby", "standby", nil},
		{"primary recovers", func() error { return g.SetHealthy("primary", true) }, "primary", "primary", nil},
	}
	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		for range 10 {
			m, err := member(g.Pick(anyKey))
			if !errors.Is(err, s.wantErr) || (err == nil && m.ID() != s.want) {
				t.Fatalf("%s: Pick = %v, %v; want %q, %v", s.name, id(m), err, s.want, s.wantErr)
			}
		}
		// A session on the standby returns to the primary when it is back.
		m, err := member(g.PickSticky("standby", anyKey))
		if !errors.Is(err, s.wantErr) || (err == nil && m.ID() != s.sticky) {
			t.Fatalf("%s: PickSticky(standby) = %v, %v; want %q", s.name, id(m), err, s.sticky)
		}
	}
}

func TestPickSticky(t *testing.T) {
	g := mustNew(t, Config{Scheduler: RoundRobin()}, be("a", 100), be("b", 100), be("c", 100))
	if err := g.SetHealthy("c", false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id string
		held     bool
	}{
		{"healthy member", "b", true},
		{"unhealthy member", "c", false},
		{"unknown", "zz", false},
		{"empty", "", false},
		{"forged with address", "127.0.0.1:8080", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				m, err := member(g.PickSticky(tt.id, anyKey))
				if err != nil {
					t.Fatal(err)
				}
				if held := m.ID() == tt.id; held != tt.held {
					t.Fatalf("PickSticky(%q) = %s; held = %v, want %v", tt.id, m.ID(), held, tt.held)
				}
				if m.ID() == "c" {
					t.Fatalf("PickSticky(%q) fell back to unhealthy c", tt.id)
				}
			}
		})
	}
	if err := g.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if m, _ := member(g.PickSticky("b", anyKey)); m.ID() == "b" {
		t.Error("PickSticky(b) after Remove(b) returned b")
	}
}

func TestFailOpen(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		g := mustNew(t, Config{FailOpen: failOpen}, be("a", 100), Backend{ID: "b", Addr: "127.0.0.1:8080", State: Drain})
		if err := g.SetHealthy("a", false); err != nil {
			t.Fatal(err)
		}
		m, err := member(g.Pick(anyKey))
		switch {
		case !failOpen && !errors.Is(err, ErrNoBackend):
			t.Errorf("FailOpen=false, all unhealthy: Pick = %v, %v; want ErrNoBackend", id(m), err)
		case failOpen && (err != nil || m.ID() != "a"):
			t.Errorf("FailOpen=true, all unhealthy: Pick = %v, %v; want a (b drains)", id(m), err)
		}
	}
}

// pickable reports whether member id can get new work now.
func pickable(t *testing.T, g *Group, id string) bool {
	t.Helper()
	m, ok := g.Member(id)
	if !ok {
		t.Fatalf("Member(%q) missing", id)
	}
	return m.Healthy()
}

// While a checker follows the group, a member nobody reported on gets no
// work: those already there, those added, those leaving Maint.
func TestHealthChecked(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), be("b", 100))
	if err := g.SetHealthy("b", false); err != nil {
		t.Fatal(err)
	}
	if !pickable(t, g, "a") {
		t.Fatal("a unhealthy in a group no checker follows")
	}
	ch := g.Changed()
	release := g.HealthChecked()
	select {
	case <-ch:
	default:
		t.Error("HealthChecked did not publish a change")
	}
	if _, err := member(g.Pick(anyKey)); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick with a checker and no report = %v, want ErrNoBackend", err)
	}
	if err := g.Add(be("c", 100)); err != nil {
		t.Fatal(err)
	}
	if pickable(t, g, "c") {
		t.Error("c added under a checker is healthy before any report")
	}
	if err := g.SetHealthy("c", true); err != nil {
		t.Fatal(err)
	}
	if m, err := member(g.Pick(anyKey)); err != nil || m.ID() != "c" {
		t.Fatalf("Pick after SetHealthy(c, true) = %v, %v; want c", id(m), err)
	}
	// Maint forgets the report: back to Ready, c waits for a probe again.
	for _, s := range []State{Maint, Ready} {
		if err := g.SetState("c", s); err != nil {
			t.Fatal(err)
		}
	}
	if pickable(t, g, "c") {
		t.Error("c out of Maint under a checker is healthy before any report")
	}
	// A report of the health picks already see publishes nothing, but is
	// kept: c stays down after the checker leaves.
	ch = g.Changed()
	if err := g.SetHealthy("c", false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Error("SetHealthy(c, false) on an unhealthy member published a change")
	default:
	}
	release()
	release() // idempotent
	if !pickable(t, g, "a") || pickable(t, g, "b") || pickable(t, g, "c") {
		t.Errorf("after release: a, b, c healthy = %v %v %v; want true false false (reports kept)",
			pickable(t, g, "a"), pickable(t, g, "b"), pickable(t, g, "c"))
	}
}

func TestHealthTargetsAndIDs(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), Backend{ID: "b", Addr: "127.0.0.1:2", State: Maint}, Backend{ID: "c", Addr: "127.0.0.1:3", State: Drain})
	var got []string
	for id, addr := range g.HealthTargets() {
		got = append(got, id+"="+addr)
	}
	if want := []string{"a=127.0.0.1:8080", "c=127.0.0.1:3"}; !slices.Equal(got, want) {
		t.Errorf("HealthTargets = %v, want %v (Maint skipped, Drain probed)", got, want)
	}
	if got, want := g.IDs(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("IDs = %v, want %v", got, want)
	}
}

func TestReplaceKeepsState(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100), Backend{ID: "b", Addr: "127.0.0.1:2", Weight: 100})
	if err := g.SetHealthy("a", false); err != nil {
		t.Fatal(err)
	}
	ma, _ := g.Member("a")
	ma.Begin()
	mb, _ := g.Member("b")
	mb.Begin()
	if err := g.Replace([]Backend{be("a", 50), {ID: "b", Addr: "127.0.0.1:3", Weight: 100}, be("c", 100)}); err != nil {
		t.Fatal(err)
	}
	a, _ := g.Member("a")
	if a.Healthy() || a.Weight() != 50 || a.Outstanding() != 1 {
		t.Errorf("a after Replace: healthy=%v weight=%d outstanding=%d; want false, 50, 1 (state kept)", a.Healthy(), a.Weight(), a.Outstanding())
	}
	b, _ := g.Member("b")
	if !b.Healthy() || b.Outstanding() != 0 {
		t.Errorf("b with a new Addr after Replace: healthy=%v outstanding=%d; want a fresh member", b.Healthy(), b.Outstanding())
	}
	if len(g.Members()) != 3 {
		t.Errorf("Members() = %d, want 3", len(g.Members()))
	}
}

func TestChanged(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 100))
	ch := g.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any change")
	default:
	}
	if err := g.SetHealthy("a", true); err != nil { // no-op: already healthy
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Changed closed by a no-op SetHealthy")
	default:
	}
	if err := g.SetWeight("a", 10); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed after SetWeight")
	}
	if g.Changed() == ch {
		t.Error("Changed returned the closed channel again")
	}
}

func TestSetScheduler(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 90), be("b", 10))
	if err := g.SetScheduler(RoundRobin()); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, g, 100); got["a"] != 50 || got["b"] != 50 {
		t.Errorf("rr picks over 100 = %v, want 50/50", got)
	}
}

func TestWeightedRoundRobinShares(t *testing.T) {
	g := mustNew(t, Config{}, be("a", 5), be("b", 1), be("c", 1))
	if got := picks(t, g, 700); got["a"] != 500 || got["b"] != 100 || got["c"] != 100 {
		t.Errorf("wrr 5:1:1 over 700 picks = %v, want 500/100/100", got)
	}
}

func TestLeastConnectionsPrefersIdle(t *testing.T) {
	g := mustNew(t, Config{Scheduler: LeastConnections()}, be("busy", 100), be("idle", 100))
	busy, _ := g.Member("busy")
	for range 50 {
		busy.Begin()
	}
	got := picks(t, g, 1000)
	// Two draws pick "busy" only when both draws land on it: ~1/4.
	if got["idle"] < 650 {
		t.Errorf("wlc with busy=50 active, idle=0: picks = %v, want idle ≥ 650 of 1000", got)
	}
	for range 50 {
		busy.End()
	}
	if want := uint64(50 + got["busy"]); busy.Outstanding() != 0 || busy.Total() != want {
		t.Errorf("busy Outstanding=%d Total=%d, want 0 and %d (50 begun, %d picked)", busy.Outstanding(), busy.Total(), want, got["busy"])
	}
}

func TestParseScheduler(t *testing.T) {
	for _, name := range []string{"wrr", "rr", "sch", "tch", "qch", "wlc", "hash", "ewma"} {
		for _, spelled := range []string{name, strings.ToUpper(name)} {
			s, err := ParseScheduler(spelled)
			if err != nil || s.Name() != name {
				t.Errorf("ParseScheduler(%q) = %v, %v; want %s", spelled, s, err, name)
			}
		}
	}
	_, err := ParseScheduler("lc")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "Scheduler" || !strings.Contains(err.Error(), `"lc"`) {
		t.Errorf(`ParseScheduler("lc") = %v, want a ConfigError naming Scheduler "lc"`, err)
	}
}

func TestAliasTable(t *testing.T) {
	ms := members(1, 2, 3, 94)
	p := newWeighted(ms)
	counts := make([]int, len(ms))
	// Walk the 32-bit spaces on a grid instead of drawing at random.
	const steps = 1000
	for i := range steps {
		for j := range steps {
			r := uint64(i)*(1<<32)/steps<<32 | uint64(j)*(1<<32)/steps
			counts[p.sample(r)]++
		}
	}
	for i, want := range []float64{0.01, 0.02, 0.03, 0.94} {
		if got := float64(counts[i]) / (steps * steps); got < want-0.002 || got > want+0.002 {
			t.Errorf("alias sample share of member %d = %.4f, want %.2f", i, got, want)
		}
	}
}

func id(m *Member) string {
	if m == nil {
		return "<nil>"
	}
	return m.ID()
}

func TestPickNext(t *testing.T) {
	for _, sched := range []Scheduler{WeightedRoundRobin(), Maglev{}, Maglev{By: HashFourTuple}, LeastConnections()} {
		t.Run(sched.Name(), func(t *testing.T) {
			g := mustNew(t, Config{Scheduler: sched}, be("a", 100), be("b", 100), be("c", 100),
				Backend{ID: "s", Addr: "127.0.0.1:9", Weight: 100, Standby: true})
			var tried []*Member
			seen := map[string]bool{}
			for step := range 3 {
				m, err := member(g.PickNext(anyKey, tried))
				if err != nil {
					t.Fatalf("PickNext(step %d, tried %d): %v", step, len(tried), err)
				}
				if seen[m.ID()] {
					t.Fatalf("PickNext(step %d) = %s, already tried", step, m.ID())
				}
				if m.Standby() {
					t.Fatalf("PickNext(step %d) = standby %s while primaries remain", step, m.ID())
				}
				seen[m.ID()] = true
				tried = append(tried, m)
			}
			if m, err := member(g.PickNext(anyKey, tried)); !errors.Is(err, ErrNoBackend) {
				t.Errorf("PickNext with every primary tried = %v, %v; want ErrNoBackend", id(m), err)
			}
		})
	}
}

// Several backends of one group may share an address (docs/model.md §2): they are
// distinct members by ID, each with its own weight, health and counters.
func TestMembersMayShareAnAddress(t *testing.T) {
	g := mustNew(t, Config{Scheduler: RoundRobin()},
		Backend{ID: "a", Addr: "127.0.0.1:8080", Weight: 100},
		Backend{ID: "b", Addr: "127.0.0.1:8080", Weight: 100})
	if got := picks(t, g, 10); got["a"] != 5 || got["b"] != 5 {
		t.Errorf("picks over two members on one address = %v, want 5/5", got)
	}
	if err := g.SetHealthy("a", false); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, g, 10); got["b"] != 10 {
		t.Errorf("with a down, picks = %v, want all b (health is per member, not per address)", got)
	}
}
