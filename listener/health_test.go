package listener

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/httpproxy"
)

func TestTCPPersistence(t *testing.T) {
	leaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	g := newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, PersistenceTimeout: time.Minute, Group: g})
	first := ""
	for i := range 10 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if first == "" {
			first = name
		}
		if name != first {
			t.Fatalf("connection %d went to %s, want %s (same client, persistence on)", i, name, first)
		}
	}
	// The persisted backend goes down: the client moves, and stays moved.
	if err := g.SetHealthy(first, false); err != nil {
		t.Fatal(err)
	}
	var moved string
	for i := range 5 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name == first {
			t.Fatalf("connection %d went to unhealthy %s", i, first)
		}
		if moved == "" {
			moved = name
		}
	}
	// And when it is back, the client stays where it is now.
	if err := g.SetHealthy(first, true); err != nil {
		t.Fatal(err)
	}
	c, _, name := dialName(t, listenerAddr(l))
	c.Close()
	if name != moved {
		t.Errorf("after recovery the client went to %s, want it to stay on %s", name, moved)
	}
}

func TestTCPHealthCheckMarksDeadBackend(t *testing.T) {
	leaks(t)
	live := startEcho(t, "live")
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	g, err := balancer.New(balancer.Config{}, live.backend(100), dead)
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: g, HealthCheck: &health.Config{Interval: time.Second}})
	// Members get traffic after their first passed probe; WaitProbed
	// returns once every member has had one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitProbed(ctx); err != nil {
		t.Fatalf("WaitProbed: %v", err)
	}
	if m, _ := g.Member("live"); !m.Healthy() {
		t.Fatal("live unhealthy after the first probe round")
	}
	if m, _ := g.Member("dead"); m.Healthy() {
		t.Error("dead backend marked healthy")
	}
	for range 10 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name != "live" {
			t.Fatalf("connection reached %s", name)
		}
	}
	if got := l.Stats().ConnectFailures; got != 0 {
		t.Errorf("ConnectFailures = %d, want 0: the dead backend was never tried", got)
	}
	// Targets follow the group: a new member gets checked and joins.
	late := startEcho(t, "late")
	if err := g.Add(late.backend(100)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new member to pass its first check", func() bool {
		m, _ := g.Member("late")
		return m.Healthy()
	})
}

func TestTCPPassiveEjection(t *testing.T) {
	leaks(t)
	live := startEcho(t, "live")
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	g := newGroup(t, balancer.RoundRobin(), live.backend(100), dead)
	in := newInstance(t)
	// Active checks every 50 s (so they stay out of the way); ejection
	// after 2 connect failures.
	hc := &health.Config{Interval: 50 * time.Second, TrustNew: true, Passive: health.Passive{Failures: 2, EjectTime: time.Minute, MaxEjectedPercent: 50}}
	l := addListener(t, in, Config{Protocol: TCP, Group: g, HealthCheck: hc})
	for range 6 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name != "live" {
			t.Fatalf("connection reached %s", name)
		}
	}
	eventually(t, "dead to be ejected", func() bool {
		m, _ := g.Member("dead")
		return !m.Healthy()
	})
	before := l.Stats().ConnectFailures
	for range 6 {
		c, _, _ := dialName(t, listenerAddr(l))
		c.Close()
	}
	if after := l.Stats().ConnectFailures; after != before {
		t.Errorf("ConnectFailures grew from %d to %d after ejection", before, after)
	}
}

// Every group an HTTP listener sends to is health-checked, not only its
// default group: a forwarding rule's dead backend is taken out of it.
func TestHTTPHealthChecksRuleGroups(t *testing.T) {
	leaks(t)
	def := startHTTPBackend(t, "default", nil)
	api := startHTTPBackend(t, "api", nil)
	ruleGroup, err := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()},
		api.backend(100), balancer.Backend{ID: "api-dead", Addr: deadAddr(t), Weight: 100})
	if err != nil {
		t.Fatal(err)
	}
	l := addHTTP(t, Config{
		HealthCheck: &health.Config{Interval: time.Second},
		HTTP:        HTTPOptions{Options: httpproxy.Options{Rules: []Rule{{Path: "/api", Group: ruleGroup}}}},
	}, def)
	eventually(t, "the rule group's live backend to pass its first check", func() bool {
		m, _ := ruleGroup.Member("api")
		return m.Healthy()
	})
	if m, _ := ruleGroup.Member("api-dead"); m.Healthy() {
		t.Fatal("the rule group's dead backend was marked healthy")
	}
	c := newClient(t)
	for i := range 10 {
		if code, body, _ := get(t, c, httpURL(l, "/api/x")); code != http.StatusOK || body != "api" {
			t.Fatalf("request %d to /api = %d %q, want 200 from api", i, code, body)
		}
	}
	if got := l.Stats().ConnectFailures; got != 0 {
		t.Errorf("ConnectFailures = %d, want 0: the dead rule backend was never tried", got)
	}
}
