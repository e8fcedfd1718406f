package health_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
)

// Example follows a balancer.Group as a listener does: the Checker probes
// the group's members and keeps in step with its membership, and no member
// gets traffic before it has passed a probe.
func Example() {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer web.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	g, _ := balancer.New(balancer.Config{},
		balancer.Backend{ID: "web-1", Addr: web.Listener.Addr().String()},
		balancer.Backend{ID: "web-2", Addr: deadAddr})
	c, err := health.Follow(g, health.Config{
		Kind: health.KindHTTP,
		OnChange: func(ev health.Event) {
			fmt.Printf("%s: %s → %s (%s)\n", ev.ID, ev.From, ev.To, ev.Reason)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Stop() // ends the following too
	_, err = g.Pick(balancer.Key{})
	fmt.Println("before any probe:", err)
	// A listener calls c.Start() here, and c.ReportFailure or
	// c.ReportSuccess after each backend connection; the example runs
	// one round instead.
	c.CheckNow(context.Background())

	p, _ := g.Pick(balancer.Key{})
	fmt.Println("picked:", p.Member.ID())
	p.Done(balancer.DoneInfo{})
	// Output:
	// before any probe: balancer: no backend available
	// web-1: pending → healthy (passed first check)
	// web-2: pending → unhealthy (connection refused)
	// picked: web-1
}

func ExampleNew() {
	codes, _ := health.ParseStatusClasses("http_2xx,http_3xx")
	method, _ := health.ParseMethod("get")
	c, err := health.New(health.Config{
		Kind:     health.KindHTTP,
		Method:   method,
		Domain:   "www.example.com",
		URI:      "/healthz",
		Codes:    codes,
		Interval: 5 * time.Second,
	}, health.Target{ID: "web-1", Addr: "10.0.0.1:8080"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Stop()
	cfg := c.Config()
	fmt.Println(cfg.Method, cfg.URI, cfg.Codes, cfg.Interval, cfg.Timeout, cfg.HealthyThreshold, cfg.UnhealthyThreshold)

	_, err = health.New(health.Config{Interval: -time.Second})
	fmt.Println(err)
	// Output:
	// GET /healthz http_2xx,http_3xx 5s 5s 3 3
	// health: Interval -1s: below 1ms
}

func ExampleChecker_CheckNow() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c, _ := health.New(health.Config{Kind: health.KindHTTP, TrustNew: true},
		health.Target{ID: "app", Addr: srv.Listener.Addr().String()})
	defer c.Stop()
	for i := 1; i <= 3; i++ {
		r := c.CheckNow(context.Background())[0]
		fmt.Printf("round %d: %s, %s\n", i, r.Reason, r.State)
	}
	// Output:
	// round 1: status 500, healthy
	// round 2: status 500, healthy
	// round 3: status 500, unhealthy
}

func ExampleChecker_SetTargets() {
	ok := health.ProbeFunc(func(context.Context, string) error { return nil })
	c, _ := health.New(health.Config{Probe: ok}, health.Target{ID: "a", Addr: "10.0.0.1:80"})
	defer c.Stop()
	c.CheckNow(context.Background())
	// The group changed: b joined, a stayed.
	_ = c.SetTargets([]health.Target{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "b", Addr: "10.0.0.2:80"}})
	for _, st := range c.Statuses() {
		fmt.Println(st.ID, st.State)
	}
	// Output:
	// a healthy
	// b pending
}

func ExampleChecker_Start() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	healthy := make(chan string, 1)
	c, _ := health.New(health.Config{
		Interval: time.Second,
		OnChange: func(ev health.Event) { healthy <- ev.ID + " " + ev.To.String() },
	}, health.Target{ID: "db", Addr: ln.Addr().String()})
	_ = c.Start()
	fmt.Println(<-healthy) // within one interval
	c.Stop()
	fmt.Println(errors.Is(c.Start(), health.ErrStopped))
	// Output:
	// db healthy
	// true
}

func ExampleChecker_ReportFailure() {
	ok := health.ProbeFunc(func(context.Context, string) error { return nil })
	c, _ := health.New(health.Config{
		Probe: ok, TrustNew: true,
		Passive: health.Passive{Failures: 3, EjectTime: 30 * time.Second},
		OnChange: func(ev health.Event) {
			fmt.Println(ev.ID, ev.Reason, "healthy:", ev.Healthy)
		},
	}, health.Target{ID: "a", Addr: "10.0.0.1:80"})
	defer c.Stop()
	c.ReportFailure("a")
	c.ReportSuccess("a") // the run starts over
	for range 3 {
		c.ReportFailure("a")
	}
	// Output:
	// a ejected for 30s after 3 failures healthy: false
}

func ExampleChecker_Status() {
	refuse := health.ProbeFunc(func(context.Context, string) error { return errors.New("disk full") })
	c, _ := health.New(health.Config{Probe: refuse}, health.Target{ID: "a", Addr: "10.0.0.1:80"})
	defer c.Stop()
	c.CheckNow(context.Background())
	c.CheckNow(context.Background())
	st, _ := c.Status("a")
	fmt.Println(st.State, st.Healthy, st.Failures, st.LastErr)
	// Output: unhealthy false 2 disk full
}

func ExampleProbeFunc() {
	// A custom check: the backend's admin port must answer a TCP connect.
	admin := health.ProbeFunc(func(ctx context.Context, addr string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	c, _ := health.New(health.Config{Probe: admin, Port: p}, health.Target{ID: "a", Addr: "127.0.0.1:1"})
	defer c.Stop()
	fmt.Println(c.CheckNow(context.Background())[0].Reason)
	// Output: ok
}

func ExampleConfig_udp() {
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "ping" {
				_, _ = pc.WriteTo([]byte("pong"), from)
			}
		}
	}()
	c, _ := health.New(health.Config{Kind: health.KindUDP, Request: "ping", Response: "pong", Timeout: time.Second},
		health.Target{ID: "dns", Addr: pc.LocalAddr().String()})
	defer c.Stop()
	fmt.Println(c.Config().Timeout) // raised to the 2s interval
	fmt.Println(c.CheckNow(context.Background())[0].Reason)
	// Output:
	// 2s
	// ok
}

func ExampleParseStatusClasses() {
	codes, err := health.ParseStatusClasses("http_2xx,HTTP_3XX")
	fmt.Println(codes, err, codes.Match(302), codes.Match(404))
	_, err = health.ParseStatusClasses("http_200")
	fmt.Println(err)
	// Output:
	// http_2xx,http_3xx <nil> true false
	// health: Codes "http_200": want a comma list of http_2xx, http_3xx, http_4xx, http_5xx
}

func ExampleStatusClasses_Match() {
	fmt.Println(health.Status2xx.Match(204), health.Status2xx.Match(301))
	// Output: true false
}

func ExampleParseMethod() {
	m, _ := health.ParseMethod("head")
	fmt.Println(m)
	_, err := health.ParseMethod("post")
	fmt.Println(err)
	// Output:
	// HEAD
	// health: Method "post": unknown; want head or get
}

func ExampleParseURI() {
	u, _ := health.ParseURI("/healthz?deep=1")
	fmt.Println(u)
	_, err := health.ParseURI("healthz")
	fmt.Println(err)
	// Output:
	// /healthz?deep=1
	// health: URI "healthz": does not start with /
}

func ExampleParseKind() {
	k, _ := health.ParseKind("UDP")
	fmt.Println(k)
	// Output: udp
}
