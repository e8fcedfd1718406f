package listener

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// Every pick a listener makes is ended by exactly one Done: once the
// traffic stops, a member has nothing outstanding, has counted each
// connection or request once, and knows its latency.
func TestTCPReportsOutcomes(t *testing.T) {
	leaks(t)
	a := startEcho(t, "a")
	g := newGroup(t, nil, a.backend(100), balancer.Backend{ID: "dead", Addr: deadAddr(t)})
	l := addListener(t, newInstance(t), Config{Protocol: TCP, Group: g})
	for range 6 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name != "a" {
			t.Fatalf("connection served by %q, want a", name)
		}
	}
	eventually(t, "every pick to be Done", func() bool { return outstanding(g) == 0 })
	ma, _ := g.Member("a")
	dead, _ := g.Member("dead")
	if ma.Total() < 6 || ma.LastLatency() <= 0 || ma.Failures() != 0 {
		t.Errorf("a: total %d, last latency %v, failures %d; want ≥ 6, > 0, 0", ma.Total(), ma.LastLatency(), ma.Failures())
	}
	if dead.Failures() == 0 || dead.Failures() != dead.Total() {
		t.Errorf("dead: failures %d of %d picks, want every pick failed", dead.Failures(), dead.Total())
	}
}

// GET takes the fast lane, a POST with a body the general one: each must
// report its own outcomes.
func TestHTTPReportsOutcomes(t *testing.T) {
	for _, tt := range []struct {
		name string
		do   func(c *http.Client, url string) (*http.Response, error)
	}{
		{"GET", func(c *http.Client, url string) (*http.Response, error) { return c.Get(url) }},
		{"POST", func(c *http.Client, url string) (*http.Response, error) {
			return c.Post(url, "text/plain", strings.NewReader("body"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leaks(t)
			a := startHTTPBackend(t, "a", nil)
			g := newGroup(t, balancer.RoundRobin(), a.backend(100))
			l := addHTTP(t, Config{Group: g})
			c := newClient(t)
			for range 3 {
				resp, err := tt.do(c, httpURL(l, "/"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s = %d, want 200", tt.name, resp.StatusCode)
				}
			}
			eventually(t, "every pick to be Done", func() bool { return outstanding(g) == 0 })
			ma, _ := g.Member("a")
			if ma.Total() != 3 || ma.LastLatency() <= 0 || ma.Failures() != 0 {
				t.Errorf("a: total %d, last latency %v, failures %d; want 3, > 0, 0", ma.Total(), ma.LastLatency(), ma.Failures())
			}
		})
	}
}

func TestUDPReportsOutcomes(t *testing.T) {
	leaks(t)
	b := startUDPEcho(t, "a")
	g := newGroup(t, nil, b.backend(100))
	l := addUDPListener(t, newUDPInstance(t), Config{Group: g})
	c := udpDial(t, "", listenerAddr(l))
	if got := udpAsk(t, c, "ping"); got != "a" {
		t.Fatalf("flow served by %q, want a", got)
	}
	ma, _ := g.Member("a")
	if n := ma.Outstanding(); n != 1 {
		t.Errorf("a live flow: outstanding %d, want 1", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()        // no grace: cut the flow now
	_ = l.Stop(ctx) // reports the cut, which is the point
	eventually(t, "the flow's pick to be Done", func() bool { return outstanding(g) == 0 })
	if ma.Total() != 1 || ma.LastLatency() <= 0 || ma.Failures() != 0 {
		t.Errorf("a: total %d, last latency %v, failures %d; want 1, > 0 (to the first reply), 0", ma.Total(), ma.LastLatency(), ma.Failures())
	}
}

func outstanding(g *balancer.Group) int64 {
	var n int64
	for _, m := range g.Members() {
		n += m.Outstanding()
	}
	return n
}

// observing is a scheduler that always picks its first member and counts
// the outcomes Picked.Done hands it.
type observing struct{ seen atomic.Int64 }

func (s *observing) Name() string { return "observing" }

func (s *observing) Build(ms []*balancer.Member) (balancer.Picker, error) {
	return observingPicker{s: s, m: ms[0]}, nil
}

type observingPicker struct {
	s *observing
	m *balancer.Member
}

func (p observingPicker) Pick(balancer.Key) *balancer.Member          { return p.m }
func (p observingPicker) Observe(*balancer.Member, balancer.DoneInfo) { p.s.seen.Add(1) }

// Every protocol runs the same attempt loop: each pick is observed once
// (Done once), nothing stays outstanding, and a client turned away for
// want of a backend is counted once as NoBackend.
func TestEveryProtocolReportsTheSame(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(t *testing.T, s balancer.Scheduler) (g *balancer.Group, l *Listener, send func(t *testing.T, ok bool))
	}{
		{"TCP", func(t *testing.T, s balancer.Scheduler) (*balancer.Group, *Listener, func(*testing.T, bool)) {
			g := newGroup(t, s, startEcho(t, "a").backend(100))
			l := addListener(t, newInstance(t), Config{Protocol: TCP, Group: g})
			return g, l, func(t *testing.T, ok bool) {
				c, err := net.Dial("tcp", listenerAddr(l))
				if err != nil {
					if ok {
						t.Fatal(err)
					}
					return // reset already: no backend
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("ping\n")); err != nil {
					return
				}
				c.Read(make([]byte, 16)) // an answer, or the reset
			}
		}},
		{"UDP", func(t *testing.T, s balancer.Scheduler) (*balancer.Group, *Listener, func(*testing.T, bool)) {
			g := newGroup(t, s, startUDPEcho(t, "a").backend(100))
			l := addUDPListener(t, newUDPInstance(t), Config{Group: g})
			return g, l, func(t *testing.T, ok bool) {
				c := udpDial(t, "", listenerAddr(l))
				if ok {
					udpAsk(t, c, "ping")
				} else {
					c.Write([]byte("ping"))
				}
			}
		}},
		{"HTTP GET", func(t *testing.T, s balancer.Scheduler) (*balancer.Group, *Listener, func(*testing.T, bool)) {
			g := newGroup(t, s, startHTTPBackend(t, "a", nil).backend(100))
			l := addHTTP(t, Config{Group: g})
			c := newClient(t)
			return g, l, func(t *testing.T, ok bool) { get(t, c, httpURL(l, "/")) }
		}},
		{"HTTP POST", func(t *testing.T, s balancer.Scheduler) (*balancer.Group, *Listener, func(*testing.T, bool)) {
			g := newGroup(t, s, startHTTPBackend(t, "a", nil).backend(100))
			l := addHTTP(t, Config{Group: g})
			c := newClient(t)
			return g, l, func(t *testing.T, ok bool) {
				resp, err := c.Post(httpURL(l, "/"), "text/plain", strings.NewReader("body"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leaks(t)
			s := &observing{}
			g, l, send := tt.start(t, s)
			for range 3 {
				send(t, true)
			}
			if err := g.SetState("a", balancer.Maint); err != nil {
				t.Fatal(err)
			}
			send(t, false)
			eventually(t, "NoBackend 1", func() bool { return l.Stats().NoBackend == 1 })
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // end UDP flows now
			_ = l.Stop(ctx)
			eventually(t, "every pick to be Done", func() bool { return outstanding(g) == 0 })
			ma, _ := g.Member("a")
			if got, want := s.seen.Load(), int64(ma.Total()); got != want || want < 3 {
				t.Errorf("observed %d outcomes of %d picks, want one per pick, ≥ 3", got, want)
			}
			if st := l.Stats(); st.NoBackend != 1 || st.ConnectFailures != 0 {
				t.Errorf("NoBackend %d, ConnectFailures %d; want 1, 0", st.NoBackend, st.ConnectFailures)
			}
		})
	}
}
