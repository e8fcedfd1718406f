package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// A backend dies in the middle of a keep-alive load, with requests held
// in it: the proxy's connections to it break mid-request, new dials are
// refused, both are retried on the next backend, and health checks take
// it out. No client request may fail. The HTTP clients speak HTTP/1.1,
// which lbkit's own front end serves, and the HTTPS clients HTTP/2, which
// net/http's server does: two paths to the backends.
func TestBackendDeathHTTP(t *testing.T) {
	for _, protocol := range []listener.Protocol{listener.HTTP, listener.HTTPS} {
		t.Run(string(protocol), func(t *testing.T) {
			leakcheck.Check(t)
			testBackendDeathHTTP(t, protocol)
		})
	}
}

func testBackendDeathHTTP(t *testing.T, protocol listener.Protocol) {
	const requests, workers, held = 2400, 32, 4
	var (
		holding atomic.Bool
		inside  atomic.Int64 // requests held in the victim
		dead    = make(chan struct{})
	)
	bs := []*backend{startHTTP(t, "a", local, nil), nil, startHTTP(t, "c", local, nil)}
	victim := startHTTP(t, "b", local, func(_ http.ResponseWriter, r *http.Request) {
		if holding.Load() {
			inside.Add(1)
			select {
			case <-dead:
			case <-r.Context().Done():
			}
		}
	})
	bs[1] = victim
	g := newGroup(t, balancer.Config{Scheduler: balancer.RoundRobin()}, bs...)
	cfg := listener.Config{Protocol: protocol, Group: g, HealthCheck: fastHealth(health.KindHTTP)}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	if protocol == listener.HTTPS {
		useTLS(t, &cfg, tr)
	}
	l, _, addr := addListener(t, cfg)
	c := httpClient(t, tr)
	url := strings.ToLower(string(protocol)) + "://" + addr + "/"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var atKill string
	start := time.Now()
	y := load(ctx, workers, requests, func(_, i int) error {
		if i == requests/3 {
			// Hold the victim's next requests, so that the kill
			// catches them mid-request.
			holding.Store(true)
			if !waitFor(10*time.Second, func() bool { return inside.Load() >= held }) {
				return fmt.Errorf("only %d requests held in the victim after 10 s", inside.Load())
			}
			atKill = hits(bs...)
			victim.kill()
			close(dead)
		}
		_, err := getOK(c, url)
		return err
	})
	took := time.Since(start)
	y.all(t, requests)
	eventually(t, 10*time.Second, "health checks to mark the dead backend down", unhealthy(g, victim.name))
	st := l.Stats()
	Record(t, fmt.Sprintf("%d GETs from %d workers (HTTP/1.1 kept alive; HTTP/2 over HTTPS) through an %s listener (rr, HTTP health checks every 1 s) to 3 backends; after %d, backend b holds its next requests, then is killed (listener and connections closed) with %d or more of them inside", requests, workers, strings.ToUpper(string(protocol)), requests/3, held),
		"%d sent, %d failed in %s; %d requests cut mid-request in b, all retried; requests reaching each backend by the kill %s, by the end %s; %d connect failures retried; responses 2xx %d, 5xx %d",
		y.sent.Load(), y.failed.Load(), took.Round(time.Millisecond), inside.Load(), atKill, hits(bs...), st.ConnectFailures, st.Status[1], st.Status[4])
}

// A TCP backend dies under a load of short connections: every connection
// begun after the kill gets a live backend and an echo.
func TestBackendDeathTCP(t *testing.T) {
	leakcheck.Check(t)
	const conns, workers = 900, 16
	bs := []*backend{startEcho(t, "a", local), startEcho(t, "b", local), startEcho(t, "c", local)}
	victim := bs[1]
	g := newGroup(t, balancer.Config{Scheduler: balancer.RoundRobin()}, bs...)
	l, _, addr := addListener(t, listener.Config{Protocol: listener.TCP, Group: g, HealthCheck: fastHealth(health.KindTCP)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		killed     atomic.Bool
		cut, after atomic.Int64 // connections cut by the kill; begun after it
		atKill     string
	)
	y := load(ctx, workers, conns, func(_, i int) error {
		if i == conns/3 {
			atKill = hits(bs...)
			victim.kill()
			killed.Store(true)
		}
		begunAfter := killed.Load()
		name, err := echo(addr)
		switch {
		case begunAfter:
			after.Add(1)
			if err == nil && name == victim.name {
				err = fmt.Errorf("reached the dead backend")
			}
		case err != nil:
			// Begun before the kill: the kill may cut it.
			cut.Add(1)
			return nil
		}
		return err
	})
	y.all(t, conns) // failures counted: only of connections begun after the kill
	assert.LessOrEqual(t, cut.Load(), int64(workers), "connections cut by the kill: at most those open")
	eventually(t, 10*time.Second, "health checks to mark the dead backend down", unhealthy(g, victim.name))
	Record(t, fmt.Sprintf("%d short connections (greeting + one echo round trip) over %d workers through a TCP listener (rr, TCP health checks every 1 s) to 3 echo backends; b killed after %d", conns, workers, conns/3),
		"%d made; %d begun after the kill, %d failed; %d open at the kill cut by it; connections to each backend by the kill %s, by the end %s; %d connect failures retried",
		y.sent.Load(), after.Load(), y.failed.Load(), cut.Load(), atKill, hits(bs...), l.Stats().ConnectFailures)
}

// How long health checks take to eject a dead backend and to take it back
// once it is restarted on the same port.
func TestHealthEjectionAndRecovery(t *testing.T) {
	leakcheck.Check(t)
	hc := fastHealth(health.KindHTTP)
	events := make(chan health.Event, 64)
	hc.OnChange = func(ev health.Event) {
		select {
		case events <- ev:
		default:
		}
	}
	a, victim := startHTTP(t, "a", local, nil), startHTTP(t, "victim", local, nil)
	g := newGroup(t, balancer.Config{}, a, victim)
	_, _, addr := addListener(t, listener.Config{Protocol: listener.HTTP, Group: g, HealthCheck: hc})
	url := "http://" + addr + "/"
	c := httpClient(t, &http.Transport{})
	// change waits for the victim's next change of health to healthy.
	// Targets start healthy (fastHealth), so its first one is the kill's.
	change := func(healthy bool) health.Event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.ID == victim.name && ev.Healthy == healthy {
					return ev
				}
			case <-timeout:
				require.FailNow(t, "no health event", "%s to healthy=%v within 10 s", victim.name, healthy)
			}
		}
	}
	// The bounds: a probe is due at most one interval after the kill or
	// restart, each later one an interval after it, and the deciding one
	// takes at most a timeout; the slack covers scheduling a goroutine
	// and a timer on two shared, race-instrumented CPUs.
	const slack = 250 * time.Millisecond
	ejectBound := hc.Interval*time.Duration(hc.UnhealthyThreshold) + hc.Timeout + slack
	recoverBound := hc.Interval*time.Duration(hc.HealthyThreshold) + hc.Timeout + slack

	killed := time.Now()
	victim.kill()
	down := change(false)
	eject := down.At.Sub(killed)
	m, _ := g.Member(victim.name)
	require.False(t, m.Healthy(), "victim healthy in the group after its ejection event")
	for range 10 {
		body, err := getOK(c, url)
		require.NoError(t, err)
		require.Equal(t, "a", body, "GET after the ejection")
	}

	restarted := time.Now()
	again := startHTTP(t, victim.name, victim.addr, nil)
	up := change(true)
	recovery := up.At.Sub(restarted)
	eventually(t, 5*time.Second, "the restarted backend to get traffic", func() bool {
		getOK(c, url)
		return again.hits.Load() > 0
	})
	assert.LessOrEqual(t, eject, ejectBound, "ejection time")
	assert.LessOrEqual(t, recovery, recoverBound, "recovery time")
	Record(t, fmt.Sprintf("HTTP listener, 2 backends, HTTP health checks every %s (timeout %s, thresholds %d/%d); one backend killed, then restarted on the same port; times to the health events",
		hc.Interval, hc.Timeout, hc.UnhealthyThreshold, hc.HealthyThreshold),
		"ejected %s after the kill (bound %s: %s × %d + %s + %s slack; reason %q); back %s after the restart (bound %s); it then took traffic again",
		eject.Round(time.Millisecond), ejectBound, hc.Interval, hc.UnhealthyThreshold, hc.Timeout, slack, down.Reason, recovery.Round(time.Millisecond), recoverBound)
}

// A backend removed and added back at once (same ID and address, as a
// reload that drops and restores it) comes back with no reported health —
// out of rotation, since a checker follows the group — while the health
// checker keeps what it knew of it: the checker must tell the group again,
// or a live backend stays out of rotation until its health next changes.
func TestHealthAfterReAdd(t *testing.T) {
	for _, tt := range []struct {
		name  string
		alive bool
	}{{"dead backend", false}, {"live backend", true}} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			a, x := startEcho(t, "a", local), startEcho(t, "x", local)
			if !tt.alive {
				x.kill()
			}
			hc := fastHealth(health.KindTCP)
			hc.TrustNew = false // the first probe decides
			g := newGroup(t, balancer.Config{}, a, x)
			addListener(t, listener.Config{Protocol: listener.TCP, Group: g, HealthCheck: hc})
			healthy := func() bool { m, ok := g.Member(x.name); return ok && m.Healthy() }
			right := func() bool { return healthy() == tt.alive }
			eventually(t, 5*time.Second, "x's first probe", right)
			require.NoError(t, g.Remove(x.name))
			require.NoError(t, g.Add(x.member(100)))
			readded, start := healthy(), time.Now()
			eventually(t, 5*time.Second, "the checker to correct the re-added x", right)
			Record(t, fmt.Sprintf("TCP listener with TCP health checks every 1 s; %s x removed from the group and added back at once", tt.name),
				"re-added x healthy=%v (no report yet, under a checker); healthy=%v after %s", readded, tt.alive, time.Since(start).Round(time.Millisecond))
		})
	}
}

// 20,000 short connections, alternately through an HTTP and a TCP
// listener, leave no file descriptors or goroutines behind.
func TestConnectionChurn(t *testing.T) {
	leakcheck.Check(t)
	const conns, workers, warm = 20000, 32, 500
	web := []*backend{startHTTP(t, "a", local, nil), startHTTP(t, "b", local, nil), startHTTP(t, "c", local, nil)}
	_, _, httpAddr := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, balancer.Config{}, web...)})
	echoes := []*backend{startEcho(t, "a", local), startEcho(t, "b", local), startEcho(t, "c", local)}
	_, _, tcpAddr := addListener(t, listener.Config{Protocol: listener.TCP, Group: newGroup(t, balancer.Config{}, echoes...)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(n int) {
		y := load(ctx, workers, n, func(_, i int) error {
			if i%2 == 0 {
				return rawGet(httpAddr)
			}
			_, err := echo(tcpAddr)
			return err
		})
		if !y.all(t, n) {
			t.FailNow()
		}
	}
	// The warm-up opens what stays open: the HTTP listener's kept-alive
	// backend connections.
	run(warm)
	fds0, gs0 := steady()
	start := time.Now()
	run(conns)
	took := time.Since(start)
	fds1, gs1 := steady()
	// The HTTP listener keeps at most one idle backend connection per
	// request in flight, so the run may leave up to one per worker more
	// than the warm-up did: 2 fds (both ends are in this process) and the
	// backend's goroutine each.
	assert.LessOrEqual(t, fds1, fds0+2*workers, "open fds after %d connections", conns)
	assert.LessOrEqual(t, gs1, gs0+workers, "goroutines after %d connections", conns)
	Record(t, fmt.Sprintf("%d connections over %d workers, each new and closed after one exchange, alternately an HTTP listener (GET with Connection: close) and a TCP listener (greeting + echo), 3 backends each, after a %d-connection warm-up", conns, workers, warm),
		"took %s (%.0f conn/s); open fds %d before, %d after; goroutines %d before, %d after (counted after a GC, once steady)",
		took.Round(time.Millisecond), float64(conns)/took.Seconds(), fds0, fds1, gs0, gs1)
}

// rawGet sends one GET with Connection: close on a new connection to addr
// and reads the response to the end.
func rawGet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("response %.40q", resp)
	}
	return nil
}

// steady returns the open fds and goroutines once two counts 50 ms apart
// agree (connections closing and goroutines ending have settled), or
// after 5 s. It collects garbage first: Go's splice path keeps pipes in a
// sync.Pool, which drops them at collections (and at random under the
// race detector), leaving them to a finalizer to close.
func steady() (fds, goroutines int) {
	count := func() (int, int) {
		runtime.GC()
		runtime.GC() // the pool's victim cache
		return openFDs(), runtime.NumGoroutine()
	}
	deadline := time.Now().Add(5 * time.Second)
	fds, goroutines = count()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		f, g := count()
		if f == fds && g == goroutines {
			break
		}
		fds, goroutines = f, g
	}
	return fds, goroutines
}
