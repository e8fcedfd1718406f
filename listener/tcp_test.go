package listener

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/httpproxy"
	proxyproto "github.com/pires/go-proxyproto"
)

func TestTCPWeights(t *testing.T) {
	leaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, a.backend(75), b.backend(25))})
	got := map[string]int{}
	for range 400 {
		c, _, name := dialName(t, listenerAddr(l))
		got[name]++
		c.Close()
	}
	// wrr is exact over whole cycles: 400 connections are 100 cycles of 3:1.
	if got["a"] != 300 || got["b"] != 100 {
		t.Errorf("400 connections with weights 75:25 went %v, want a:300 b:100", got)
	}
	st := l.Stats()
	if st.New != 400 || st.Backends["a"].New != 300 || st.Backends["b"].New != 100 {
		t.Errorf("Stats: New=%d a.New=%d b.New=%d, want 400, 300, 100", st.New, st.Backends["a"].New, st.Backends["b"].New)
	}
	eventually(t, "active to reach 0", func() bool { return l.Stats().Active == 0 })
}

// TestTCPByteCounts: bytes from the client count in, bytes from the
// backend out, for the listener and the backend.
func TestTCPByteCounts(t *testing.T) {
	leaks(t)
	a := startEcho(t, "a")
	l := addListener(t, newInstance(t), Config{Protocol: TCP, Group: newGroup(t, nil, a.backend(100))})
	c, r, _ := dialName(t, listenerAddr(l))
	if err := echoOnce(c, r, "ping, pong"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	const in, out = int64(len("ping, pong\n")), int64(len("a\n") + len("ping, pong\n"))
	eventually(t, "the connection to end", func() bool { return l.Stats().Active == 0 })
	st := l.Stats()
	b := st.Backends["a"]
	if int64(st.BytesIn) != in || int64(st.BytesOut) != out || int64(b.BytesIn) != in || int64(b.BytesOut) != out {
		t.Errorf("bytes in/out: listener %d/%d, backend %d/%d; want %d/%d", st.BytesIn, st.BytesOut, b.BytesIn, b.BytesOut, in, out)
	}
}

func TestTCPDrainState(t *testing.T) {
	leaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	g := newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: g})
	// Open one connection to each backend.
	conns := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	for len(conns) < 2 {
		c, r, name := dialName(t, listenerAddr(l))
		if conns[name] != nil {
			c.Close()
			continue
		}
		conns[name], readers[name] = c, r
		defer c.Close()
	}
	if err := g.SetState("a", balancer.Drain); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name == "a" {
			t.Fatal("a new connection went to draining backend a")
		}
	}
	// The established connection to a keeps working (no drain configured).
	if err := echoOnce(conns["a"], readers["a"], "still here"); err != nil {
		t.Errorf("established connection to drained backend: %v", err)
	}
}

func TestTCPDeadBackendSkipped(t *testing.T) {
	leaks(t)
	live := startEcho(t, "live")
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, balancer.RoundRobin(), dead, live.backend(100))})
	for i := range 20 {
		c, _, name := dialName(t, listenerAddr(l))
		c.Close()
		if name != "live" {
			t.Fatalf("connection %d reached %q", i, name)
		}
	}
	st := l.Stats()
	if st.ConnectFailures == 0 || st.Backends["dead"].ConnectFailures != st.ConnectFailures {
		t.Errorf("ConnectFailures = %d (dead: %d), want > 0 and all on dead", st.ConnectFailures, st.Backends["dead"].ConnectFailures)
	}
}

func TestTCPNoBackend(t *testing.T) {
	leaks(t)
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	tests := []struct {
		name                       string
		group                      *balancer.Group
		connectFailures, noBackend uint64
	}{
		{"only a dead backend", newGroup(t, nil, dead), 1, 0},
		{"empty group", newGroup(t, nil), 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: TCP, Group: tt.group})
			// The client is reset: on Read, or already on connect.
			c, err := net.Dial("tcp", listenerAddr(l))
			if err == nil {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err == nil {
					t.Fatal("read from a listener with no reachable backend succeeded")
				}
			}
			eventually(t, "counters", func() bool {
				st := l.Stats()
				return st.ConnectFailures == tt.connectFailures && st.NoBackend == tt.noBackend
			})
		})
	}
}

func TestTCPIdleTimeoutResetsBothSides(t *testing.T) {
	leaks(t)
	var backendErr = make(chan error, 1)
	addr := acceptOnce(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		backendErr <- err
	})
	in := newInstance(t)
	start := time.Now() // before the listener can accept: the idle clock starts after
	l := addListener(t, in, Config{Protocol: TCP, EstablishedTimeout: 300 * time.Millisecond,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: addr, Weight: 100})})
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	elapsed := time.Since(start)
	if !errors.Is(err, syscallECONNRESET) {
		t.Errorf("client read after idle = %v, want connection reset", err)
	}
	if err := recvWithin(t, backendErr, 15*time.Second, "the backend's read"); !errors.Is(err, syscallECONNRESET) {
		t.Errorf("backend read after idle = %v, want connection reset", err)
	}
	if elapsed < 300*time.Millisecond {
		t.Errorf("reset after %v, before the 300ms idle timeout", elapsed)
	}
	// The sweep counts a reset just after sending it.
	eventually(t, "IdleResets to be 1", func() bool { return l.Stats().IdleResets == 1 })
}

// A connection that keeps talking in one direction only is not idle.
func TestTCPOneWayTrafficIsNotIdle(t *testing.T) {
	leaks(t)
	addr := acceptOnce(t, func(c net.Conn) {
		// Send a byte every 100ms for 1s: the client never sends.
		for range 10 {
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	in := newInstance(t)
	// Shorter than the 1s the backend talks, longer than the 100ms gaps
	// plus the idle precision (idleSlack), so the one-way bytes alone
	// must keep it open.
	l := addListener(t, in, Config{Protocol: TCP, EstablishedTimeout: idleSlack + 200*time.Millisecond,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: addr, Weight: 100})})
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 10 {
		t.Errorf("read %d bytes, %v; want all 10 and EOF (one-way traffic is not idle)", len(got), err)
	}
}

func TestTCPHalfClose(t *testing.T) {
	leaks(t)
	// The backend reads the whole request to EOF, then answers: the client
	// must get the answer after shutting down its write side.
	addr := acceptOnce(t, func(c net.Conn) {
		req, _ := io.ReadAll(c)
		io.WriteString(c, "got "+strconv.Itoa(len(req))+" bytes")
	})
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: addr, Weight: 100})})
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "got 1048576 bytes" {
		t.Errorf("response after half-close = %q, %v; want %q", resp, err, "got 1048576 bytes")
	}
}

func TestTCPACL(t *testing.T) {
	entries := func(s ...string) []acl.Entry {
		es, err := acl.ParseEntries(s...)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	tests := []struct {
		name    string
		mode    acl.Mode
		entries []acl.Entry
		allowed bool
	}{
		{"whitelist lists us", acl.Whitelist, entries("127.0.0.1"), true},
		{"whitelist lists others", acl.Whitelist, entries("10.0.0.0/8"), false},
		{"blacklist lists us", acl.Blacklist, entries("127.0.0.0/8"), false},
		{"blacklist lists others", acl.Blacklist, entries("192.0.2.0/24"), true},
		{"empty whitelist", acl.Whitelist, nil, true},
		{"empty blacklist", acl.Blacklist, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks(t)
			b := startEcho(t, "b")
			grp, err := acl.NewGroup(acl.GroupConfig{Name: "g", Family: acl.IPv4}, tt.entries...)
			if err != nil {
				t.Fatal(err)
			}
			pol, err := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: tt.mode, Family: acl.IPv4})
			if err != nil {
				t.Fatal(err)
			}
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: TCP, ACL: pol, Group: newGroup(t, nil, b.backend(100))})
			// A refused client sees a reset: on Read, or already on
			// connect when the reset beats the handshake's end.
			var line string
			c, err := net.Dial("tcp", listenerAddr(l))
			if err == nil {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err = bufio.NewReader(c).ReadString('\n')
			}
			if allowed := err == nil && line == "b\n"; allowed != tt.allowed {
				t.Fatalf("allowed = %v (%q, %v), want %v", allowed, line, err, tt.allowed)
			}
			st := l.Stats()
			if !tt.allowed && (b.accepted.Load() != 0 || st.RefusedACL != 1) {
				t.Errorf("refused client: backend accepted %d, RefusedACL %d; want 0 and 1", b.accepted.Load(), st.RefusedACL)
			}
		})
	}
}

func TestTCPProxyProtocol(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(version), func(t *testing.T) {
			leaks(t)
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			pln := &proxyproto.Listener{Listener: raw}
			defer pln.Close()
			seen := make(chan string, 1)
			go func() {
				c, err := pln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				pc := c.(*proxyproto.Conn)
				io.WriteString(c, "hi\n") // forces the header to be read
				h := pc.ProxyHeader()
				if h == nil {
					seen <- "no header"
					return
				}
				seen <- strconv.Itoa(int(h.Version)) + " " + c.RemoteAddr().String()
			}()
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: TCP, ProxyProtocol: version,
				Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: raw.Addr().String(), Weight: 100})})
			c, err := net.Dial("tcp", listenerAddr(l))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case got := <-seen:
				if want := strconv.Itoa(version) + " " + c.LocalAddr().String(); got != want {
					t.Errorf("backend saw %q, want %q (the client's real address)", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the backend saw no connection in 10 s")
			}
		})
	}
}

// A graceful stop refuses new connections at once, answers Stats while
// it drains, and lets the established connection run until it ends.
func TestTCPGracefulStop(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, b.backend(100))})
	c, r, _ := dialName(t, listenerAddr(l))
	defer c.Close()

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- l.Stop(ctx)
	}()
	// New connections are refused at once...
	eventually(t, "the listener to stop accepting", func() bool {
		c2, err := net.DialTimeout("tcp", listenerAddr(l), time.Second)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	// ...while the established one goes on until it ends.
	if err := echoOnce(c, r, "in flight"); err != nil {
		t.Fatalf("established connection during graceful stop: %v", err)
	}
	// Draining, the listener answers at once (a monitor scraping it must
	// not wait for the drain), with no sockets to hand, still Running.
	answered := make(chan Stats, 1)
	go func() {
		l.Bandwidth()
		answered <- l.Stats()
	}()
	if st := recvWithin(t, answered, 5*time.Second, "Stats while the listener drains"); st.State != Running || st.Active != 1 {
		t.Errorf("Stats while draining: %v with %d active, want running with 1", st.State, st.Active)
	}
	if fs, err := l.Files(); len(l.Addrs()) != 0 || len(fs) != 0 || err != nil {
		t.Errorf("while draining: Addrs %v, Files %d, %v; want none", l.Addrs(), len(fs), err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a connection was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	if err := recvWithin(t, stopped, 20*time.Second, "Stop to return"); err != nil {
		t.Errorf("Stop = %v, want nil after the last connection ended", err)
	}
	if l.State() != Stopped {
		t.Errorf("State = %v, want stopped", l.State())
	}
}

func TestTCPStopDeadlineCutsConnections(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, b.backend(100))})
	c, _, _ := dialName(t, listenerAddr(l))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want context.DeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Stop's deadline")
	}
	// Restart works.
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	c2, _, name := dialName(t, listenerAddr(l))
	c2.Close()
	if name != "b" {
		t.Errorf("after restart reached %q", name)
	}
}

func TestTCPLiveReweightNoFailures(t *testing.T) {
	leaks(t)
	a, b, c := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "c")
	g := newGroup(t, nil, a.backend(100), b.backend(50))
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: g})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				conn, err := net.DialTimeout("tcp", listenerAddr(l), 5*time.Second)
				if err == nil {
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					r := bufio.NewReader(conn)
					_, err = r.ReadString('\n')
					if err == nil {
						err = echoOnce(conn, r, "ping")
					}
					conn.Close()
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, "worker "+strconv.Itoa(w)+" conn "+strconv.Itoa(i)+": "+err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for i := range 50 {
		switch i % 5 {
		case 0:
			g.SetWeight("a", 1+i%100)
		case 1:
			g.Add(c.backend(30))
		case 2:
			g.SetWeight("b", 100-i)
		case 3:
			g.Remove("c")
		case 4:
			g.SetWeight("a", 100)
		}
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of 400 connections failed during live changes:\n%s", len(failures), strings.Join(failures, "\n"))
	}
}

func TestTCPPortRange(t *testing.T) {
	leaks(t)
	// Backends listen on 127.0.0.2 at the same ports as the listener on
	// 127.0.0.1: find three consecutive ports free on both, keep the
	// backends' bound, then let the listener bind its own.
	var base int
	var backends []*echoBackend
	for attempt := 0; len(backends) < 3; attempt++ {
		if attempt > 50 {
			t.Skip("no three consecutive free ports found")
		}
		// A range needs known ports (Port 0 takes no EndPort): probe
		// for one the system would give.
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base = probe.Addr().(*net.TCPAddr).Port
		probe.Close()
		ok := true
		for i := range 3 {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if !ok {
			continue
		}
		for _, b := range backends {
			b.close()
		}
		backends = backends[:0]
		for i := range 3 {
			addr := "127.0.0.2:" + strconv.Itoa(base+i)
			if ln, err := net.Listen("tcp", addr); err == nil {
				ln.Close()
				backends = append(backends, startEchoOn(t, "port"+strconv.Itoa(base+i), addr))
			}
		}
	}
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Port: base, EndPort: base + 2,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.2:1", Weight: 100})})
	if n := len(l.Addrs()); n != 3 {
		t.Fatalf("bound %d addresses, want 3", n)
	}
	for i := range 3 {
		c, _, name := dialName(t, "127.0.0.1:"+strconv.Itoa(base+i))
		c.Close()
		if want := "port" + strconv.Itoa(base+i); name != want {
			t.Errorf("port %d reached %q, want %q", base+i, name, want)
		}
	}
}

func TestTCPConnectionDrain(t *testing.T) {
	leaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	g := newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, ConnectionDrain: true, Stopped: true, Group: g})
	l.cfg.ConnectionDrainTimeout = 300 * time.Millisecond // below the public range, for the test
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	conns := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	for len(conns) < 2 {
		c, r, name := dialName(t, listenerAddr(l))
		if conns[name] != nil {
			c.Close()
			continue
		}
		conns[name], readers[name] = c, r
		defer c.Close()
	}
	if err := g.Remove("a"); err != nil {
		t.Fatal(err)
	}
	// Within the drain time the connection still works...
	if err := echoOnce(conns["a"], readers["a"], "draining"); err != nil {
		t.Fatalf("connection to removed backend during drain: %v", err)
	}
	// ...then it is closed; the other backend's is not.
	conns["a"].SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := readers["a"].ReadByte(); err == nil {
		t.Fatal("connection to removed backend still open after the drain time")
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("drain closed the connection after %v, want about 300ms", waited)
	}
	if err := echoOnce(conns["b"], readers["b"], "untouched"); err != nil {
		t.Errorf("connection to remaining backend: %v", err)
	}
	if got := l.Stats().Drained; got != 1 {
		t.Errorf("Drained = %d, want 1", got)
	}
}

func TestTCPBandwidthCap(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a 2.5 s transfer")
	}
	leaks(t)
	// The backend streams as fast as it can; the cap is 8 Mbps = 1 MB/s.
	addr := acceptOnce(t, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Bandwidth: 8,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: addr, Weight: 100})})
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Skip the first burst, then measure 2 s.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.CopyN(io.Discard, c, chunk); err != nil {
		t.Fatalf("reading the first burst: %v", err)
	}
	start := time.Now()
	c.SetReadDeadline(start.Add(2 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	rate := float64(n) / time.Since(start).Seconds()
	if want := 1e6; rate < 0.85*want || rate > 1.15*want {
		t.Errorf("rate through an 8 Mbps cap = %.0f B/s, want 1e6 ± 15%%", rate)
	}
	t.Logf("8 Mbps cap: measured %.3f MB/s", rate/1e6)
}

func TestConfigErrors(t *testing.T) {
	b := balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100}
	g := newGroup(t, nil, b)
	qch := newGroup(t, balancer.Maglev{By: balancer.HashConnID}, b)
	sch := newGroup(t, balancer.Maglev{}, b)
	v6, err := acl.NewGroup(acl.GroupConfig{Name: "v6", Family: acl.IPv6})
	if err != nil {
		t.Fatal(err)
	}
	v6pol, err := acl.NewPolicy(acl.PolicyConfig{Group: v6, Mode: acl.Whitelist, Family: acl.IPv6})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"port -1", Config{Protocol: TCP, Port: -1, Group: g}, "Port"},
		{"port 65536", Config{Protocol: TCP, Port: 65536, Group: g}, "Port"},
		{"range from port 0", Config{Protocol: TCP, EndPort: 90, Group: g}, "EndPort"},
		{"range beyond 65535", Config{Protocol: UDP, Port: 65530, EndPort: 65536, Group: g}, "EndPort"},
		{"protocol", Config{Protocol: "sctp", Port: 80, Group: g}, "Protocol"},
		{"tcp idle negative", Config{Protocol: TCP, Port: 80, Group: g, EstablishedTimeout: -time.Second}, "EstablishedTimeout"},
		{"udp idle negative", Config{Protocol: UDP, Port: 80, Group: g, IdleTimeout: -time.Second}, "IdleTimeout"},
		{"connect timeout negative", Config{Protocol: TCP, Port: 80, Group: g, ConnectTimeout: -time.Second}, "ConnectTimeout"},
		{"qch on tcp", Config{Protocol: TCP, Port: 80, Group: qch}, "Scheduler"},
		{"sch on http", Config{Protocol: HTTP, Port: 80, Group: sch}, "Scheduler"},
		{"no group", Config{Protocol: TCP, Port: 80}, "Group"},
		{"ipv6 acl on ipv4", Config{Protocol: TCP, Port: 80, Group: g, ACL: v6pol}, "ACL"},
		{"range on http", Config{Protocol: HTTP, Port: 80, EndPort: 90, Group: g}, "EndPort"},
		{"range backwards", Config{Protocol: TCP, Port: 80, EndPort: 70, Group: g}, "EndPort"},
		{"service port on a range", Config{Protocol: TCP, Port: 80, EndPort: 90, Group: g, ServiceAddr: netip.MustParseAddrPort("192.0.2.1:80")}, "ServiceAddr"},
		{"name chars", Config{Protocol: TCP, Port: 80, Group: g, Name: "web app"}, "Name"},
		{"name long", Config{Protocol: TCP, Port: 80, Group: g, Name: strings.Repeat("x", 257)}, "Name"},
		{"persistence", Config{Protocol: TCP, Port: 80, Group: g, PersistenceTimeout: -time.Second}, "PersistenceTimeout"},
		{"persistence on http", Config{Protocol: HTTP, Port: 80, Group: g, PersistenceTimeout: time.Minute}, "PersistenceTimeout"},
		{"proxy v3", Config{Protocol: TCP, Port: 80, Group: g, ProxyProtocol: 3}, "ProxyProtocol"},
		{"proxy v1 udp", Config{Protocol: UDP, Port: 80, Group: g, ProxyProtocol: 1}, "ProxyProtocol"},
		{"proxy v2 on http", Config{Protocol: HTTP, Port: 80, Group: g, ProxyProtocol: 2}, "ProxyProtocol"},
		{"proxy v1 on https", Config{Protocol: HTTPS, Port: 443, Group: g, ProxyProtocol: 1}, "ProxyProtocol"},
		{"established timeout on udp", Config{Protocol: UDP, Port: 80, Group: g, EstablishedTimeout: time.Minute}, "EstablishedTimeout"},
		{"established timeout on http", Config{Protocol: HTTP, Port: 80, Group: g, EstablishedTimeout: time.Minute}, "EstablishedTimeout"},
		{"drain on http", Config{Protocol: HTTP, Port: 80, Group: g, ConnectionDrain: true}, "ConnectionDrain"},
		{"drain timeout on udp", Config{Protocol: UDP, Port: 80, Group: g, ConnectionDrainTimeout: time.Minute}, "ConnectionDrainTimeout"},
		{"udp idle timeout on tcp", Config{Protocol: TCP, Port: 80, Group: g, IdleTimeout: time.Minute}, "IdleTimeout"},
		{"udp idle timeout on http", Config{Protocol: HTTP, Port: 80, Group: g, IdleTimeout: time.Minute}, "IdleTimeout"},
		{"max flows on tcp", Config{Protocol: TCP, Port: 80, Group: g, MaxFlows: 10}, "MaxFlows"},
		{"conn id length on http", Config{Protocol: HTTP, Port: 80, Group: g, QUICConnIDLength: 8}, "QUICConnIDLength"},
		{"bandwidth", Config{Protocol: TCP, Port: 80, Group: g, Bandwidth: -1}, "Bandwidth"},
		{"drain negative", Config{Protocol: TCP, Port: 80, Group: g, ConnectionDrainTimeout: -time.Second}, "ConnectionDrainTimeout"},
		{"max flows negative", Config{Protocol: UDP, Port: 80, Group: g, MaxFlows: -1}, "MaxFlows"},
		{"host", Config{Protocol: TCP, Port: 80, Group: g, Host: "example.com"}, "Host"},
		{"health setter", Config{Protocol: TCP, Port: 80, Group: g, HealthCheck: &health.Config{Setter: g}}, "HealthCheck.Setter"},
	}
	in := newInstance(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Stopped = true
			_, err := in.Add(tt.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Add = %v, want a ConfigError on %s", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "listener: "+tt.field) {
				t.Errorf("error %q does not start with the field name", err)
			}
		})
	}
	if n := len(in.Listeners()); n != 0 {
		t.Errorf("refused configs left %d listeners", n)
	}
	// CJK names are fine.
	if _, err := in.Add(Config{Protocol: TCP, Port: 81, Group: g, Name: "负载均衡-1/a.b_c", Stopped: true}); err != nil {
		t.Errorf("CJK name refused: %v", err)
	}
}

// The library takes values the CLB's ranges refuse: those are the clb
// example's to enforce.
func TestConfigAcceptsBeyondCLB(t *testing.T) {
	b := balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100}
	g := newGroup(t, nil, b)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"udp 250", Config{Protocol: UDP, Port: 250}},
		{"udp range over 4789 and 4790", Config{Protocol: UDP, Port: 4780, EndPort: 4800}},
		{"tcp idle 1s", Config{Protocol: TCP, Port: 1001, EstablishedTimeout: time.Second}},
		{"tcp idle 2h", Config{Protocol: TCP, Port: 1002, EstablishedTimeout: 2 * time.Hour}},
		{"udp idle 100ms", Config{Protocol: UDP, Port: 1003, IdleTimeout: 100 * time.Millisecond}},
		{"udp idle 2h", Config{Protocol: UDP, Port: 1004, IdleTimeout: 2 * time.Hour}},
		{"connect 100ms", Config{Protocol: TCP, Port: 1005, ConnectTimeout: 100 * time.Millisecond}},
		{"connect 5m", Config{Protocol: TCP, Port: 1006, ConnectTimeout: 5 * time.Minute}},
		{"drain 1s", Config{Protocol: TCP, Port: 1007, ConnectionDrain: true, ConnectionDrainTimeout: time.Second}},
		{"drain 1h", Config{Protocol: TCP, Port: 1008, ConnectionDrainTimeout: time.Hour}},
		{"persistence 1 day", Config{Protocol: TCP, Port: 1009, PersistenceTimeout: 24 * time.Hour}},
		{"bandwidth 100 Gbps", Config{Protocol: TCP, Port: 1010, Bandwidth: 100000}},
		{"http request 500ms", Config{Protocol: HTTP, Port: 1011, HTTP: HTTPOptions{Options: httpproxy.Options{RequestTimeout: 500 * time.Millisecond}}}},
		{"http request 10m", Config{Protocol: HTTP, Port: 1012, HTTP: HTTPOptions{Options: httpproxy.Options{RequestTimeout: 10 * time.Minute}}}},
		{"http idle 200ms", Config{Protocol: HTTP, Port: 1013, HTTP: HTTPOptions{IdleTimeout: 200 * time.Millisecond}}},
		{"http idle 5m", Config{Protocol: HTTP, Port: 1014, HTTP: HTTPOptions{IdleTimeout: 5 * time.Minute}}},
		{"http header 300ms", Config{Protocol: HTTP, Port: 1015, HTTP: HTTPOptions{HeaderTimeout: 300 * time.Millisecond}}},
		{"http keep-alive 1e6", Config{Protocol: HTTP, Port: 1016, HTTP: HTTPOptions{MaxKeepAliveRequests: 1000000}}},
		{"http header 512 bytes", Config{Protocol: HTTP, Port: 1017, HTTP: HTTPOptions{MaxHeaderBytes: 512}}},
		{"http header 4 MiB", Config{Protocol: HTTP, Port: 1018, HTTP: HTTPOptions{MaxHeaderBytes: 4 << 20}}},
		{"http URI 100 bytes", Config{Protocol: HTTP, Port: 1019, HTTP: HTTPOptions{MaxURIBytes: 100}}},
		{"health every 200ms, threshold 1", Config{Protocol: TCP, Port: 1020,
			HealthCheck: &health.Config{Interval: 200 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1}}},
	}
	in := newInstance(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Group, tt.cfg.Stopped = g, true
			if _, err := in.Add(tt.cfg); err != nil {
				t.Errorf("Add = %v, want it accepted", err)
			}
		})
	}
}

func TestInstanceConflicts(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100})
	in, err := NewInstance(InstanceConfig{ID: "lb-1", Bandwidth: 100, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	must := func(cfg Config) {
		t.Helper()
		cfg.Stopped, cfg.Group = true, g
		if _, err := in.Add(cfg); err != nil {
			t.Fatal(err)
		}
	}
	must(Config{Protocol: TCP, Port: 80, Bandwidth: 60})
	must(Config{Protocol: UDP, Port: 80}) // UDP has its own port space
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"same name", Config{Protocol: TCP, Port: 81, Name: "tcp_80"}, "already exists"},
		{"tcp port taken by http", Config{Protocol: HTTP, Port: 80}, "used by listener"},
		{"range overlaps", Config{Protocol: TCP, Port: 70, EndPort: 85}, "used by listener"},
		{"caps over instance", Config{Protocol: TCP, Port: 82, Bandwidth: 41}, "over the instance's 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Stopped, tt.cfg.Group = true, g
			if _, err := in.Add(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Add = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	must(Config{Protocol: TCP, Port: 82, Bandwidth: 40}) // exactly the instance's cap
	l, _ := in.Listener("tcp_80")
	if err := l.SetBandwidth(61); err == nil {
		t.Error("SetBandwidth(61) with 40 of 100 used elsewhere succeeded")
	}
	if err := l.SetBandwidth(0); err != nil {
		t.Errorf("SetBandwidth(0): %v", err)
	}
}

func TestTCPSetACLLive(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, b.backend(100))})
	c, r, _ := dialName(t, listenerAddr(l))
	defer c.Close()
	grp, _ := acl.NewGroup(acl.GroupConfig{Name: "deny-local", Family: acl.IPv4})
	pol, _ := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: acl.Blacklist, Family: acl.IPv4})
	if err := l.SetACL(pol); err != nil {
		t.Fatal(err)
	}
	entry, _ := acl.ParseEntry("127.0.0.0/8")
	if err := grp.Add(entry); err != nil {
		t.Fatal(err)
	}
	// New connections are refused; the established one carries on.
	nc, err := net.Dial("tcp", listenerAddr(l))
	if err == nil {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Error("new connection passed a blacklist that lists it")
		}
		nc.Close()
	}
	if err := echoOnce(c, r, "established"); err != nil {
		t.Errorf("established connection after the ACL change: %v", err)
	}
}
