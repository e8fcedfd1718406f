package health_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// script is a probe the test controls: each address fails until pass(addr),
// and every probed address is recorded.
type script struct {
	mu     sync.Mutex
	ok     map[string]bool
	probed []string
}

func newScript() *script { return &script{ok: map[string]bool{}} }

func (s *script) Probe(_ context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probed = append(s.probed, addr)
	if s.ok[addr] {
		return nil
	}
	return errors.New("scripted failure")
}

func (s *script) pass(addr string, ok bool) {
	s.mu.Lock()
	s.ok[addr] = ok
	s.mu.Unlock()
}

// takeProbed returns the addresses probed since the last call, sorted.
func (s *script) takeProbed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.probed
	s.probed = nil
	slices.Sort(p)
	return p
}

func follow(t *testing.T, g health.Group, cfg health.Config) *health.Checker {
	t.Helper()
	c, err := health.Follow(g, cfg)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// waitTarget waits (bounded) until the follower has given the Checker
// target id (present) or taken it away.
func waitTarget(t *testing.T, c *health.Checker, id string, present bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, ok := c.Status(id); ok == present {
			return
		}
	}
	t.Fatalf("target %q present = %v, want %v: the membership change did not reach the Checker", id, !present, present)
}

func healthy(t *testing.T, g *balancer.Group, id string) bool {
	t.Helper()
	m, ok := g.Member(id)
	if !ok {
		t.Fatalf("no member %q", id)
	}
	return m.Healthy()
}

const (
	addrA = "192.0.2.1:80"
	addrB = "192.0.2.2:80"
)

// A member gets no traffic before its first passed probe: not at start,
// not when added to a followed group, not after a failed first probe.
func TestFollowNoTrafficBeforeFirstPass(t *testing.T) {
	leakcheck.Check(t)
	g, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: addrA})
	if err != nil {
		t.Fatal(err)
	}
	s := newScript()
	c := follow(t, g, health.Config{Probe: s})
	if _, err := g.Pick(balancer.Key{}); !errors.Is(err, balancer.ErrNoBackend) {
		t.Fatalf("Pick after Follow, before any probe = %v, want ErrNoBackend", err)
	}
	s.pass(addrA, true)
	round(t, c)
	if !healthy(t, g, "a") {
		t.Fatal("a unhealthy after passing its first probe")
	}

	if err := g.Add(balancer.Backend{ID: "b", Addr: addrB}); err != nil {
		t.Fatal(err)
	}
	// No window: b is out from the moment Add returns, before the
	// follower has even seen it.
	if healthy(t, g, "b") {
		t.Fatal("b healthy right after Add to a followed group")
	}
	waitTarget(t, c, "b", true)
	round(t, c) // b fails its first probe
	for i := range 4 {
		p, err := g.Pick(balancer.Key{})
		if err != nil || p.Member.ID() != "a" {
			t.Fatalf("Pick(%d) after b failed = %v, %v; want a", i, p.Member, err)
		}
		p.Done(balancer.DoneInfo{})
	}
	s.pass(addrB, true)
	for range 3 { // HealthyThreshold passes after a failure
		round(t, c)
	}
	if !healthy(t, g, "b") {
		t.Error("b unhealthy after 3 passes")
	}

	if err := g.Remove("b"); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, c, "b", false)
}

// TrustNew: members take traffic at once, at start and when added.
func TestFollowTrustNew(t *testing.T) {
	leakcheck.Check(t)
	g, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: addrA})
	if err != nil {
		t.Fatal(err)
	}
	// a was reported down before (a listener restarted): trusting tells
	// the group it is up.
	if err := g.SetHealthy("a", false); err != nil {
		t.Fatal(err)
	}
	s := newScript()
	c := follow(t, g, health.Config{Probe: s, TrustNew: true})
	if !healthy(t, g, "a") {
		t.Error("a unhealthy after Follow with TrustNew")
	}
	if err := g.Add(balancer.Backend{ID: "b", Addr: addrB}); err != nil {
		t.Fatal(err)
	}
	if !healthy(t, g, "b") {
		t.Error("b unhealthy right after Add with TrustNew")
	}
	waitTarget(t, c, "b", true)
	for range 3 {
		round(t, c)
	}
	if healthy(t, g, "a") || healthy(t, g, "b") {
		t.Error("members healthy after 3 failed probes")
	}
}

// Members in Maint are not probed, and are probed again when they leave
// it, getting traffic after a pass; Drain members are probed.
func TestFollowSkipsMaint(t *testing.T) {
	leakcheck.Check(t)
	const addrC = "192.0.2.3:80"
	g, err := balancer.New(balancer.Config{},
		balancer.Backend{ID: "a", Addr: addrA},
		balancer.Backend{ID: "b", Addr: addrB, State: balancer.Maint},
		balancer.Backend{ID: "c", Addr: addrC, State: balancer.Drain})
	if err != nil {
		t.Fatal(err)
	}
	s := newScript()
	s.pass(addrA, true)
	s.pass(addrB, true)
	c := follow(t, g, health.Config{Probe: s})
	round(t, c)
	if got, want := s.takeProbed(), []string{addrA, addrC}; !slices.Equal(got, want) {
		t.Errorf("probed %v, want %v (b in Maint skipped, c draining probed)", got, want)
	}
	if err := g.SetState("b", balancer.Ready); err != nil {
		t.Fatal(err)
	}
	if healthy(t, g, "b") {
		t.Error("b healthy on leaving Maint, before a probe")
	}
	waitTarget(t, c, "b", true)
	if err := g.SetState("a", balancer.Maint); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, c, "a", false)
	round(t, c)
	if got, want := s.takeProbed(), []string{addrB, addrC}; !slices.Equal(got, want) {
		t.Errorf("probed %v, want %v (a now in Maint)", got, want)
	}
	if !healthy(t, g, "b") {
		t.Error("b unhealthy after passing its probe")
	}
}

// Stop ends the follower (the leak check) and releases the group: a
// member added afterwards is healthy, as in a group no checker follows,
// and no longer reaches the Checker.
func TestFollowStop(t *testing.T) {
	leakcheck.Check(t)
	g, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: addrA})
	if err != nil {
		t.Fatal(err)
	}
	c, err := health.Follow(g, health.Config{Probe: newScript()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	if err := g.Add(balancer.Backend{ID: "b", Addr: addrB}); err != nil {
		t.Fatal(err)
	}
	if !healthy(t, g, "b") {
		t.Error("b unhealthy after the Checker stopped")
	}
	if _, ok := c.Status("b"); ok {
		t.Error("a stopped Checker still follows the group")
	}
}

func TestFollowRefuses(t *testing.T) {
	g, err := balancer.New(balancer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var ce *health.ConfigError
	if _, err := health.Follow(g, health.Config{Setter: g}); !errors.As(err, &ce) || ce.Field != "Setter" {
		t.Errorf("Follow with a Setter = %v, want a *ConfigError for Setter", err)
	}
	if _, err := health.Follow(g, health.Config{Interval: -1}); !errors.As(err, &ce) || ce.Field != "Interval" {
		t.Errorf("Follow with a bad Interval = %v, want a *ConfigError for Interval", err)
	}
	c := follow(t, g, health.Config{})
	if err := c.SetTargets(nil); !errors.Is(err, health.ErrFollowing) {
		t.Errorf("SetTargets on a follower = %v, want ErrFollowing", err)
	}
}

// Probed closes after every target's first probe has reached the setter,
// not before; at once without targets; at Stop.
func TestProbed(t *testing.T) {
	g, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: addrA}, balancer.Backend{ID: "b", Addr: addrB})
	if err != nil {
		t.Fatal(err)
	}
	s := newScript()
	s.pass(addrA, true)
	c := follow(t, g, health.Config{Probe: s})
	select {
	case <-c.Probed():
		t.Fatal("Probed closed before any probe")
	default:
	}
	round(t, c)
	select {
	case <-c.Probed():
	default:
		t.Fatal("Probed open after a full round")
	}
	if !healthy(t, g, "a") {
		t.Error("Probed closed before the group heard a passed")
	}

	empty := newChecker(t, health.Config{})
	select {
	case <-empty.Probed():
	default:
		t.Error("Probed open on a Checker without targets")
	}
	stopped, _ := health.New(health.Config{}, health.Target{Addr: addrA})
	stopped.Stop()
	select {
	case <-stopped.Probed():
	default:
		t.Error("Probed open after Stop")
	}
}
