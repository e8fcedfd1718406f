package health_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
)

// clock is a fake Config.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestPassiveEjection(t *testing.T) {
	clk := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := newRecorder()
	pass := health.ProbeFunc(func(context.Context, string) error { return nil })
	c := newChecker(t, health.Config{
		Probe: pass, TrustNew: true, Now: clk.now, Setter: rec, OnChange: rec.onChange,
		Passive: health.Passive{Failures: 3, EjectTime: 10 * time.Second, MaxEjectTime: 25 * time.Second, MaxEjectedPercent: 50},
	}, health.Target{ID: "a", Addr: "192.0.2.1:80"}, health.Target{ID: "b", Addr: "192.0.2.2:80"},
		health.Target{ID: "c", Addr: "192.0.2.3:80"})

	step := func(name string, f func(), wantSets string) {
		t.Helper()
		f()
		if got := strings.Join(rec.takeSets(), " "); got != wantSets {
			t.Errorf("%s: SetHealthy calls %q, want %q", name, got, wantSets)
		}
	}
	fail := func(id string, n int) func() {
		return func() {
			for range n {
				c.ReportFailure(id)
			}
		}
	}
	step("trusted targets told healthy", func() {}, "a=true b=true c=true")
	step("2 failures", fail("a", 2), "")
	step("success resets", func() { c.ReportSuccess("a") }, "")
	step("2 more failures", fail("a", 2), "")
	step("3rd failure in a row ejects", fail("a", 1), "a=false")
	st, _ := c.Status("a")
	if !st.Ejected || st.Healthy || st.State != health.StateHealthy || !st.EjectedUntil.Equal(clk.t.Add(10*time.Second)) {
		t.Errorf("Status(a) = %+v, want ejected for 10s, active state healthy", st)
	}
	evs := rec.takeEvents()
	if len(evs) != 1 || evs[0].Reason != "ejected for 10s after 3 failures" || evs[0].Count != 3 {
		t.Errorf("events %+v, want one ejection after 3 failures", evs)
	}
	step("failures while ejected are ignored", fail("a", 5), "")
	step("a passing probe does not end it", func() { round(t, c) }, "")
	step("9s later, still out", func() { clk.advance(9 * time.Second); c.Statuses() }, "")
	step("10s later, back", func() { clk.advance(time.Second); c.Statuses() }, "a=true")
	step("ejected again: twice as long", fail("a", 3), "a=false")
	if st, _ := c.Status("a"); !st.EjectedUntil.Equal(clk.t.Add(20 * time.Second)) {
		t.Errorf("second ejection until %v, want +20s", st.EjectedUntil)
	}
	step("50% cap: b may not go too", fail("b", 3), "")
	step("20s later", func() { clk.advance(20 * time.Second); c.Statuses() }, "a=true")
	step("third ejection capped at 25s", fail("a", 3), "a=false")
	if st, _ := c.Status("a"); !st.EjectedUntil.Equal(clk.t.Add(25 * time.Second)) {
		t.Errorf("third ejection until %v, want +25s (MaxEjectTime)", st.EjectedUntil)
	}
	step("25s later, CheckNow ends it", func() { clk.advance(25 * time.Second); round(t, c) }, "a=true")
	step("a success resets the growth", func() { c.ReportSuccess("a") }, "")
	step("fourth ejection back to 10s", fail("a", 3), "a=false")
	if st, _ := c.Status("a"); !st.EjectedUntil.Equal(clk.t.Add(10 * time.Second)) {
		t.Errorf("ejection after a success until %v, want +10s", st.EjectedUntil)
	}
	step("unknown id", func() { c.ReportFailure("zzz"); c.ReportSuccess("zzz") }, "")
}

func TestPassiveOffAndUnhealthy(t *testing.T) {
	rec := newRecorder()
	fail := health.ProbeFunc(func(context.Context, string) error { return context.DeadlineExceeded })
	off := newChecker(t, health.Config{Probe: fail, Setter: rec}, health.Target{ID: "a", Addr: "192.0.2.1:80"})
	for range 100 {
		off.ReportFailure("a")
	}
	if st, _ := off.Status("a"); st.Ejected || len(rec.takeSets()) != 0 {
		t.Errorf("passive off: Status %+v, want no ejection", st)
	}
	// Ejecting a target the probes already hold down changes nothing the
	// group sees, and its end does not make it healthy.
	c := newChecker(t, health.Config{Probe: fail, Setter: rec, Passive: health.Passive{Failures: 1}},
		health.Target{ID: "a", Addr: "192.0.2.1:80"})
	round(t, c)
	if got := strings.Join(rec.takeSets(), " "); got != "a=false" {
		t.Fatalf("first failed probe: SetHealthy %q, want a=false", got)
	}
	c.ReportFailure("a")
	if st, _ := c.Status("a"); !st.Ejected || len(rec.takeSets()) != 0 {
		t.Errorf("ejecting an unhealthy target: Status %+v; want ejected and no SetHealthy call", st)
	}
}

func TestPassiveEjectedTargetRemoved(t *testing.T) {
	rec := newRecorder()
	ok := health.ProbeFunc(func(context.Context, string) error { return nil })
	ts := []health.Target{{ID: "a", Addr: "192.0.2.1:80"}, {ID: "b", Addr: "192.0.2.2:80"}, {ID: "c", Addr: "192.0.2.3:80"}}
	c := newChecker(t, health.Config{Probe: ok, TrustNew: true, Setter: rec, Passive: health.Passive{Failures: 1}}, ts...)
	rec.takeSets() // trusted: told healthy
	c.ReportFailure("a")
	c.ReportFailure("b") // 10% of 3: only one at a time
	if got := strings.Join(rec.takeSets(), " "); got != "a=false" {
		t.Fatalf("SetHealthy calls %q, want a=false", got)
	}
	if err := c.SetTargets(ts[1:]); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.takeSets(), " "); got != "b=true c=true" {
		t.Errorf("SetTargets: SetHealthy calls %q, want the kept targets told again: b=true c=true", got)
	}
	c.ReportFailure("b") // a is gone, so b may go
	if got := strings.Join(rec.takeSets(), " "); got != "b=false" {
		t.Errorf("after removing the ejected a: SetHealthy calls %q, want b=false", got)
	}
}
