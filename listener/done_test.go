package listener

import (
	"context"
	"net/http"
	"strings"
	"testing"

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
