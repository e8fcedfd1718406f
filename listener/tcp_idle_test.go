package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/netpoll"
)

// The idle bound through the sweeper's clock seam: a connection touched
// at T survives every sweep before T+setting, is reset by the first sweep
// at or after it, and in the worst case (the touch copyBound after the
// last byte, the sweep a tick late) the reset still comes within the
// setting + 1 s. Sweeps run at fake times; the real ticker cannot
// interfere, since T+setting is at least 10 s ahead of the real clock.
func TestTCPIdleSweepBound(t *testing.T) {
	leaks(t)
	if idleSlack > time.Second {
		t.Fatalf("copyBound %v + idleTick %v = %v, want ≤ 1s", copyBound, idleTick, idleSlack)
	}
	for _, setting := range []time.Duration{10 * time.Second, 20 * time.Second, 900 * time.Second} {
		// phase places a sweep relative to T+setting; the others follow
		// every idleTick.
		for _, phase := range []time.Duration{0, -time.Nanosecond, -idleTick / 2} {
			t.Run(setting.String()+"/phase"+phase.String(), func(t *testing.T) {
				c, s, client, backendErr := idleConn(t, setting)
				lastByte := time.Now()
				touched := lastByte.Add(copyBound) // the latest touch the copy allows
				c.touchAt(touched)
				expiry := touched.Add(setting)
				var resetAt time.Time
				for k := -3; k <= 3; k++ {
					at := expiry.Add(phase + time.Duration(k)*idleTick)
					n := s.sweepIdleAt(at)
					switch {
					case at.Before(expiry) && n != 0:
						t.Fatalf("sweepIdleAt(T+%v) reset %d connections, want 0 before T+%v", at.Sub(touched), n, setting)
					case !at.Before(expiry) && resetAt.IsZero():
						if n != 1 {
							t.Fatalf("sweepIdleAt(T+%v) reset %d connections, want 1 (first sweep at or after T+%v)", at.Sub(touched), n, setting)
						}
						resetAt = at
					case !at.Before(expiry) && n != 0:
						t.Fatalf("sweepIdleAt(T+%v) reset %d connections again", at.Sub(touched), n)
					}
				}
				if got, limit := resetAt.Sub(lastByte), setting+time.Second; got > limit {
					t.Errorf("reset %v after the last byte, want ≤ %v", got, limit)
				}
				wantReset(t, client, backendErr)
				if got := s.l.Stats().IdleResets; got != 1 {
					t.Errorf("IdleResets = %d, want 1", got)
				}
			})
		}
	}
}

// idleConn starts a TCP listener with the given idle timeout and one
// proxied connection that moves no byte. It returns the connection as the
// server tracks it, once the server has recorded its start (so no later
// touch races the test's), the server, the client side and the backend's
// read result.
func idleConn(t *testing.T, setting time.Duration) (*tcpConn, *tcpServer, net.Conn, chan error) {
	t.Helper()
	backendErr := make(chan error, 1)
	addr := acceptOnce(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		backendErr <- err
	})
	l, client := dialIdleListener(t, addr, setting)
	c, s := trackedConn(t, l)
	return c, s, client, backendErr
}

// trackedConn returns l's one connection as its server tracks it, once
// the server has recorded its start, and the server.
func trackedConn(t *testing.T, l *Listener) (*tcpConn, *tcpServer) {
	t.Helper()
	l.mu.Lock()
	s := l.srv.(*tcpServer)
	l.mu.Unlock()
	var c *tcpConn
	eventually(t, "the connection to start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for tc := range s.byBackend["b"] {
			c = tc
		}
		return c != nil
	})
	// Tracked, it has its start time: a sweep must never find a
	// connection that has not started idle since the epoch.
	if c.last.Load() == 0 {
		t.Error("a tracked connection has no time of last activity")
	}
	return c, s
}

// A connection still being set up when a stop's deadline passed, and so
// missed by the stop's cut, is refused when it would start: after the
// cut, track adds nothing, and Stop never waits on a connection that
// nobody will abort.
func TestTCPCutRefusesLateConnection(t *testing.T) {
	leaks(t)
	addr := acceptOnce(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	l, _ := dialIdleListener(t, addr, time.Hour)
	c, s := trackedConn(t, l)
	past, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Stop(past); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with its deadline past = %v, want context.Canceled (a connection open)", err)
	}
	if s.track(&tcpConn{member: c.member}, true) {
		t.Error("track after the stop's cut added a connection")
	}
}

// dialIdleListener starts a TCP listener with the given idle timeout in
// front of the backend at addr and returns it with a client connected
// through it, closed when the test ends.
func dialIdleListener(t *testing.T, addr string, setting time.Duration, handed ...net.Listener) (*Listener, net.Conn) {
	t.Helper()
	in := newInstance(t)
	var ln net.Listener
	if len(handed) > 0 {
		ln = handed[0]
	}
	l := addListener(t, in, Config{Protocol: TCP, EstablishedTimeout: setting, Listener: ln,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: addr, Weight: 100})})
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return l, c
}

// wantReset checks that both the client and the backend see a reset.
func wantReset(t *testing.T, client net.Conn, backendErr chan error) {
	t.Helper()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscallECONNRESET) {
		t.Errorf("client read = %v, want connection reset", err)
	}
	if err := recvWithin(t, backendErr, 10*time.Second, "the backend's read"); !errors.Is(err, syscallECONNRESET) {
		t.Errorf("backend read = %v, want connection reset", err)
	}
}

// The idle reset on real sockets at a setting below the CLB's 10 s, which
// the library takes: between 1 s and 2 s after the last byte, on both
// sides. It takes a second of wall time, so it runs in parallel.
func TestTCPIdleResetTiming(t *testing.T) {
	t.Parallel()
	leaks(t)
	const setting = time.Second
	type result struct {
		err error
		at  time.Time
	}
	backend := make(chan result, 1)
	addr := acceptOnce(t, func(c net.Conn) {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			backend <- result{err: err}
			return
		}
		if _, err := c.Write(buf); err != nil {
			backend <- result{err: err}
			return
		}
		c.SetReadDeadline(time.Now().Add(3 * setting))
		_, err := c.Read(buf)
		backend <- result{err, time.Now()}
	})
	l, c := dialIdleListener(t, addr, setting)
	c.SetDeadline(time.Now().Add(3 * setting))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	lastByte := time.Now() // the echo has come through: nothing moves from here on
	_, err := c.Read(make([]byte, 1))
	clientAt := time.Now()
	b := recvWithin(t, backend, 10*time.Second, "the backend's read")
	if !errors.Is(err, syscallECONNRESET) {
		t.Errorf("client read after idle = %v, want connection reset", err)
	}
	if !errors.Is(b.err, syscallECONNRESET) {
		t.Errorf("backend read after idle = %v, want connection reset", b.err)
	}
	for _, side := range []struct {
		name string
		at   time.Time
	}{{"client", clientAt}, {"backend", b.at}} {
		if got := side.at.Sub(lastByte); got < setting || got > setting+time.Second {
			t.Errorf("%s reset %v after the last byte, want within [%v, %v]", side.name, got, setting, setting+time.Second)
		} else {
			t.Logf("%s reset %v after the last byte", side.name, got)
		}
	}
	// The sweep counts a reset just after sending it.
	eventually(t, "IdleResets to be 1", func() bool { return l.Stats().IdleResets == 1 })
}

// An idle connection holds no goroutine: once both directions find
// nothing queued they are parked in the listener's poller, and bytes
// arriving later, either way, wake them and go through.
// A listener serving on a handed socket parks the same way.
func TestTCPIdleParksWithoutGoroutine(t *testing.T) {
	for _, handed := range []bool{false, true} {
		t.Run(map[bool]string{false: "bound", true: "handed"}[handed], func(t *testing.T) {
			testTCPIdleParks(t, handed)
		})
	}
}

func testTCPIdleParks(t *testing.T, handed bool) {
	leaks(t)
	if runtime.GOOS != "linux" {
		t.Skip("directions park on Linux only")
	}
	addr := acceptOnce(t, func(c net.Conn) {
		io.Copy(c, c) // echo until the client half-closes
		c.(*net.TCPConn).CloseWrite()
	})
	var lns []net.Listener
	if handed {
		lns = append(lns, localListener(t))
	}
	l, client := dialIdleListener(t, addr, time.Hour, lns...)
	if handed && l.Port() != addrPort(lns[0].Addr()) {
		t.Fatalf("Port() = %d, want the handed socket's %v", l.Port(), lns[0].Addr())
	}
	_, s := trackedConn(t, l)
	for round := range 3 {
		eventually(t, "both directions to park", func() bool { return s.poller.Len() == 2 })
		msg := []byte{'a' + byte(round)}
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(client, got); err != nil || got[0] != msg[0] {
			t.Fatalf("round %d: echo = %q, %v; want %q", round, got, err, msg)
		}
	}
	// A half-close wakes the client's direction with EOF; the backend's
	// answer (its own half-close) wakes the other, and the connection ends.
	client.(*net.TCPConn).CloseWrite()
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after half-close = %v, want EOF", err)
	}
}

// A probe, run on every pass of a direction's copy loop, allocates
// nothing, whether the socket is quiet or holds bytes.
func TestTCPProbeAllocs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the probe is Linux's")
	}
	d := loopbackDir(t, &tcpConn{})
	client := d.dst
	for _, tc := range []struct {
		name   string
		send   string
		wantN  int
		wantSt probeState
	}{
		{"quiet", "", 0, probeQuiet},
		{"data", "abc", 3, probeData},
	} {
		if _, err := client.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		eventually(t, tc.name+" probe", func() bool {
			n, st := d.probe()
			return n == tc.wantN && st == tc.wantSt
		})
		if allocs := testing.AllocsPerRun(100, func() { d.probe() }); allocs != 0 {
			t.Errorf("%s: probe made %v allocations, want 0", tc.name, allocs)
		}
	}
}

// Aborts racing directions that park and wake: every connection ends,
// both sides see the reset, and nothing is left in the poller. Clients
// send a byte, read its echo and pause past parkAfter, so that their
// directions keep parking and waking while the sweeper resets them all.
func TestTCPAbortRacesPark(t *testing.T) {
	leaks(t)
	if runtime.GOOS != "linux" {
		t.Skip("directions park on Linux only")
	}
	echo := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, EstablishedTimeout: time.Hour,
		Group: newGroup(t, nil, echo.backend(100))})
	const n = 20
	clients := make([]net.Conn, n)
	for i := range clients {
		c, err := net.Dial("tcp", listenerAddr(l))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	l.mu.Lock()
	s := l.srv.(*tcpServer)
	l.mu.Unlock()
	eventually(t, "every connection to start", func() bool { return l.Stats().Active == n })
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 1)
			for round := 0; ; round++ {
				// Pauses around parkAfter: some directions are parked
				// when the reset comes, some parking, some running.
				time.Sleep(time.Duration(i+round) % 4 * parkAfter / 2)
				if _, err := c.Write(buf); err != nil {
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					if !errors.Is(err, syscallECONNRESET) && err != io.EOF {
						t.Errorf("client %d: %v, want a reset", i, err)
					}
					return
				}
			}
		})
	}
	eventually(t, "some directions to park", func() bool { return s.poller.Len() > 0 })
	if got := s.sweepIdleAt(time.Now().Add(2 * time.Hour)); got != n {
		t.Errorf("sweepIdleAt(+2h) reset %d connections, want %d", got, n)
	}
	wg.Wait()
	eventually(t, "every connection to end", func() bool { return l.Stats().Active == 0 })
	if got := s.poller.Len(); got != 0 {
		t.Errorf("poller.Len() = %d after every connection ended, want 0", got)
	}
}

// loopbackDir returns a direction of c over a loopback connection: it
// copies from the accepted side (src) to the dialled one (dst), both
// closed when the test ends.
func loopbackDir(t *testing.T, c *tcpConn) *tcpDir {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	d := new(tcpDir)
	if !d.init(c, client, server, false) {
		t.Fatal("init failed")
	}
	return d
}

// Once a connection is aborted, its directions no longer park: abort
// closes the sockets after taking back what was parked, and a direction
// parked after that would be closed while parked, its descriptor number
// free for the next connection while the poller still names it.
func TestTCPParkAfterAbort(t *testing.T) {
	leaks(t)
	p, err := netpoll.New()
	if err != nil {
		t.Skip(err)
	}
	defer p.Close()
	c := &tcpConn{s: &tcpServer{poller: p}}
	d := loopbackDir(t, c)
	if !d.park() {
		t.Fatal("park() = false on a live connection")
	}
	if !d.unpark() {
		t.Fatal("unpark() = false for a parked direction")
	}
	c.closed.Store(true) // as abort does first
	if d.park() {
		t.Error("park() = true on an aborted connection")
		d.unpark()
	}
	if got := p.Len(); got != 0 {
		t.Errorf("poller.Len() = %d after park on an aborted connection, want 0", got)
	}
}
