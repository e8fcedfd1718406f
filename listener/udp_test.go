package listener

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	proxyproto "github.com/pires/go-proxyproto"
)

func TestUDPFlowSticks(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	first := udpAsk(t, c, "msg 0")
	for i := 1; i < 20; i++ {
		if got := udpAsk(t, c, "msg "+strconv.Itoa(i)); got != first {
			t.Fatalf("datagram %d of one flow went to %s, want %s", i, got, first)
		}
	}
	st := l.Stats()
	if st.New != 1 || st.Active != 1 || st.Backends[first].New != 1 {
		t.Errorf("Stats: New=%d Active=%d %s.New=%d, want 1, 1, 1", st.New, st.Active, first, st.Backends[first].New)
	}
	// 10 payloads "msg 0".."msg 9" of 5 bytes, 10 of 6; replies add "a ".
	// Bytes are counted after each write, which may be after the client
	// has its answer.
	eventually(t, "BytesIn 110, BytesOut 150", func() bool {
		st := l.Stats()
		return st.BytesIn == 110 && st.BytesOut == 150 && st.Backends[first].BytesIn == 110
	})
}

func TestUDPWeights(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, nil, a.backend(75), b.backend(25))})
	got := map[string]int{}
	for i := range 40 {
		c := udpDial(t, "", listenerAddr(l))
		got[udpAsk(t, c, "hello")]++
		udpAsk(t, c, "again") // a flow's later datagrams do not pick
		if i%8 == 0 {
			c.Close()
		}
	}
	if got["a"] != 30 || got["b"] != 10 {
		t.Errorf("40 flows with weights 75:25 went %v, want a:30 b:10", got)
	}
	if st := l.Stats(); st.New != 40 || st.Backends["a"].New != 30 {
		t.Errorf("Stats: New=%d a.New=%d, want 40, 30", st.New, st.Backends["a"].New)
	}
}

// shortIdle adds a UDP listener with a short idle timeout, below the
// CLB's 1 s, which the library takes.
func shortIdle(t *testing.T, in *Instance, cfg Config, idle time.Duration) *Listener {
	t.Helper()
	cfg.IdleTimeout = idle
	return addUDPListener(t, in, cfg)
}

func TestUDPIdleExpiryRepicks(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := shortIdle(t, in, Config{Group: newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))}, 200*time.Millisecond)
	c := udpDial(t, "", listenerAddr(l))
	first := udpAsk(t, c, "one")
	start := time.Now()
	eventually(t, "the flow to expire", func() bool { return l.Stats().Active == 0 })
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("flow expired after %v, before the 200ms idle timeout", waited)
	}
	if second := udpAsk(t, c, "two"); second == first {
		t.Errorf("after expiry the socket went to %s again, want a fresh rr pick", second)
	}
	if st := l.Stats(); st.New != 2 {
		t.Errorf("New = %d, want 2", st.New)
	}
}

// Traffic in either direction alone keeps a flow alive.
func TestUDPOneWayTrafficIsNotIdle(t *testing.T) {
	leaks(t)
	pushTo := make(chan netip.AddrPort, 1)
	back := startUDPBackend(t, "back", "127.0.0.1:0", func(b []byte, from netip.AddrPort) []byte {
		if string(b) == "push" {
			select {
			case pushTo <- from:
			default: // a second push must not hold the backend's loop
			}
		}
		return nil
	})
	in := newUDPInstance(t)
	l := shortIdle(t, in, Config{Group: newGroup(t, nil, back.backend(100))}, 500*time.Millisecond) // 10× the gaps: load cannot stretch one that far
	c := udpDial(t, "", listenerAddr(l))

	// Client to backend only: 16 datagrams 50ms apart (longer than the
	// idle timeout in all), no reply.
	for i := range 16 {
		udpSend(t, c, []byte("c"+strconv.Itoa(i)))
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, "the backend to get 16 datagrams", func() bool { return back.got.Load() == 16 })
	// Backend to client only: 16 datagrams 50ms apart.
	udpSend(t, c, []byte("push"))
	flow := recvWithin(t, pushTo, 10*time.Second, "the push to reach the backend")
	buf := make([]byte, 100)
	for i := range 16 {
		if _, err := back.pc.WriteToUDPAddrPort([]byte("p"+strconv.Itoa(i)), flow); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "p"+strconv.Itoa(i) {
			t.Fatalf("pushed datagram %d: %q, %v", i, buf[:n], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := l.Stats(); st.New != 1 {
		t.Errorf("New = %d, want 1: one-way traffic every 50ms must keep a 500ms flow alive", st.New)
	}
}

func TestUDPSourceIPHash(t *testing.T) {
	leaks(t)
	a, b, c := startUDPEcho(t, "a"), startUDPEcho(t, "b"), startUDPEcho(t, "c")
	sch, _ := balancer.ParseScheduler(balancer.NameSCH)
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, sch, a.backend(100), b.backend(100), c.backend(100))})
	seen := map[string]bool{}
	for i := 2; i < 12; i++ {
		ip := "127.0.0." + strconv.Itoa(i)
		n1 := udpAsk(t, udpDial(t, ip+":0", listenerAddr(l)), "x")
		n2 := udpAsk(t, udpDial(t, ip+":0", listenerAddr(l)), "y")
		if n1 != n2 {
			t.Errorf("two sockets of %s went to %s and %s, want one backend", ip, n1, n2)
		}
		seen[n1] = true
	}
	if len(seen) < 2 {
		t.Errorf("10 client IPs all went to %v", seen)
	}
}

func TestUDPFourTupleHash(t *testing.T) {
	leaks(t)
	a, b, c := startUDPEcho(t, "a"), startUDPEcho(t, "b"), startUDPEcho(t, "c")
	tch, _ := balancer.ParseScheduler(balancer.NameTCH)
	in := newUDPInstance(t)
	l := shortIdle(t, in, Config{Group: newGroup(t, tch, a.backend(100), b.backend(100), c.backend(100))}, 200*time.Millisecond)
	conns := make([]*net.UDPConn, 12)
	first := make([]string, len(conns))
	seen := map[string]bool{}
	for i := range conns {
		conns[i] = udpDial(t, "", listenerAddr(l))
		first[i] = udpAsk(t, conns[i], "x")
		seen[first[i]] = true
	}
	eventually(t, "the flows to expire", func() bool { return l.Stats().Active == 0 })
	for i, c := range conns {
		if got := udpAsk(t, c, "y"); got != first[i] {
			t.Errorf("socket %d went to %s, then after expiry to %s; tch keeps a four-tuple on one backend", i, first[i], got)
		}
	}
	if len(seen) < 2 {
		t.Errorf("12 sockets all went to %v", seen)
	}
}

func TestUDPProxyProtocol(t *testing.T) {
	leaks(t)
	back := startUDPBackend(t, "pp", "127.0.0.1:0", func(dgram []byte, _ netip.AddrPort) []byte {
		r := bufio.NewReader(bytes.NewReader(dgram))
		h, err := proxyproto.Read(r)
		if err != nil {
			return []byte("error " + err.Error())
		}
		payload, _ := io.ReadAll(r)
		return []byte(h.SourceAddr.String() + " " + h.DestinationAddr.String() + " " + string(payload))
	})
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{ProxyProtocol: 2, Group: newGroup(t, nil, back.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	buf := make([]byte, 1000)
	for i := range 3 {
		msg := "datagram " + strconv.Itoa(i)
		udpSend(t, c, []byte(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), c.LocalAddr().String()+" "+listenerAddr(l)+" "+msg; got != want {
			t.Errorf("backend saw %q, want %q (client's address, listener's, payload)", got, want)
		}
	}
	// The PROXY header is not payload.
	eventually(t, "BytesIn 30", func() bool { return l.Stats().BytesIn == 30 })
}

func TestUDPMalformedAndOversizedDropped(t *testing.T) {
	leaks(t)
	back := startUDPBackend(t, "b", "127.0.0.1:0", func(b []byte, _ netip.AddrPort) []byte {
		return []byte("b " + strconv.Itoa(len(b)))
	})
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Stopped: true, Group: newGroup(t, nil, back.backend(100))})
	startUDPServer(t, l, udpOptions{maxDatagram: 1000})
	c := udpDial(t, "", listenerAddr(l))
	tests := []struct {
		name    string
		payload []byte
		dropped bool
	}{
		{"empty", nil, true},
		{"one too big", make([]byte, 1001), true},
		{"largest", make([]byte, 1000), false},
		{"much too big", make([]byte, 60000), true},
		{"small", []byte("x"), false},
	}
	var dropped uint64
	for _, tt := range tests {
		if tt.dropped {
			dropped++
			udpSend(t, c, tt.payload)
			eventually(t, tt.name+" to be dropped", func() bool { return l.Stats().Dropped == dropped })
			continue
		}
		udpSend(t, c, tt.payload)
		buf := make([]byte, 100)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if want := "b " + strconv.Itoa(len(tt.payload)); err != nil || string(buf[:n]) != want {
			t.Fatalf("%s: reply %q, %v; want %q", tt.name, buf[:n], err, want)
		}
	}
	if st := l.Stats(); st.Dropped != dropped || st.New != 1 {
		t.Errorf("Stats: Dropped=%d New=%d, want %d, 1", st.Dropped, st.New, dropped)
	}
}

// A qch listener forwards anything: what does not parse as QUIC is hashed
// by its four-tuple.
func TestUDPQCHForwardsNonQUIC(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, qch, a.backend(100), b.backend(100))})
	for _, p := range []string{"\xc0", "\xc0\x00\x00\x00\x01\x14", "\x40", "\x40abc", "plain text", "\xff\xff\xff\xff\xff\xff\xff"} {
		c := udpDial(t, "", listenerAddr(l))
		udpAsk(t, c, p)
	}
	if st := l.Stats(); st.Dropped != 0 || st.New != 6 {
		t.Errorf("Stats: Dropped=%d New=%d, want 0, 6", st.Dropped, st.New)
	}
}

func TestUDPACL(t *testing.T) {
	leaks(t)
	back := startUDPEcho(t, "b")
	grp, err := acl.NewGroup(acl.GroupConfig{Name: "deny-local", Family: acl.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: acl.Blacklist, Family: acl.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{ACL: pol, Group: newGroup(t, nil, back.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	udpAsk(t, c, "allowed") // an empty blacklist
	entry, _ := acl.ParseEntry("127.0.0.0/8")
	if err := grp.Add(entry); err != nil {
		t.Fatal(err)
	}
	// Checked per datagram: the open flow is cut off, and a new client
	// never starts one.
	udpSend(t, c, []byte("refused"))
	udpSend(t, udpDial(t, "", listenerAddr(l)), []byte("refused too"))
	eventually(t, "two refusals", func() bool { return l.Stats().RefusedACL == 2 })
	if got := back.got.Load(); got != 1 {
		t.Errorf("backend got %d datagrams, want 1 (the one before the ACL change)", got)
	}
	if st := l.Stats(); st.New != 1 || st.Dropped != 0 {
		t.Errorf("Stats: New=%d Dropped=%d, want 1, 0", st.New, st.Dropped)
	}
	if err := grp.Remove(entry.Prefix); err != nil {
		t.Fatal(err)
	}
	udpAsk(t, c, "allowed again")
}

func TestUDPFlowTableFull(t *testing.T) {
	leaks(t)
	back := startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{MaxFlows: 2, Group: newGroup(t, nil, back.backend(100))})
	c1, c2, c3 := udpDial(t, "", listenerAddr(l)), udpDial(t, "", listenerAddr(l)), udpDial(t, "", listenerAddr(l))
	udpAsk(t, c1, "one")
	udpAsk(t, c2, "two")
	udpSend(t, c3, []byte("three"))
	eventually(t, "the third flow to be dropped", func() bool { return l.Stats().Dropped == 1 })
	udpAsk(t, c1, "one again")
	udpAsk(t, c2, "two again")
	if st := l.Stats(); st.New != 2 || st.Active != 2 || back.got.Load() != 4 {
		t.Errorf("Stats: New=%d Active=%d, backend got %d; want 2, 2, 4", st.New, st.Active, back.got.Load())
	}
}

func TestUDPBackendPortClosed(t *testing.T) {
	leaks(t)
	dead := balancer.Backend{ID: "dead", Addr: deadUDPAddr(t), Weight: 100}
	live := startUDPEcho(t, "live")
	g := newGroup(t, nil, dead)
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: g})
	c := udpDial(t, "", listenerAddr(l))
	udpSend(t, c, []byte("to the dead"))
	// The ICMP port unreachable ends the flow and counts against "dead".
	eventually(t, "the flow to end", func() bool {
		st := l.Stats()
		return st.New == 1 && st.Active == 0 && st.ConnectFailures == 1 && st.Backends["dead"].ConnectFailures == 1
	})
	// The next datagram starts a new flow, which picks afresh.
	if err := g.Replace([]balancer.Backend{live.backend(100)}); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, c, "retry"); got != "live" {
		t.Errorf("retry went to %q, want live", got)
	}
}

func TestUDPNoBackend(t *testing.T) {
	leaks(t)
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, nil)})
	udpSend(t, udpDial(t, "", listenerAddr(l)), []byte("anyone?"))
	eventually(t, "NoBackend", func() bool { st := l.Stats(); return st.NoBackend == 1 && st.Active == 0 })
}

func TestUDPGracefulStop(t *testing.T) {
	leaks(t)
	back := startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := shortIdle(t, in, Config{Group: newGroup(t, nil, back.backend(100))}, 500*time.Millisecond)
	s := l.srv.(*udpServer)
	c := udpDial(t, "", listenerAddr(l))
	udpAsk(t, c, "before")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- l.Stop(ctx)
	}()
	eventually(t, "the listener to stop taking flows", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.draining
	})
	// A new client is dropped at once...
	udpSend(t, udpDial(t, "", listenerAddr(l)), []byte("new"))
	eventually(t, "the new client to be dropped", func() bool { return s.l.c.Dropped.Load() == 1 })
	// ...while the open flow goes on until it idles out.
	udpAsk(t, c, "during")
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a flow was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := recvWithin(t, stopped, 20*time.Second, "Stop to return"); err != nil {
		t.Errorf("Stop = %v, want nil after the last flow idled out", err)
	}
	if st := l.Stats(); st.State != Stopped || st.Active != 0 || st.New != 1 {
		t.Errorf("Stats: State=%v Active=%d New=%d, want stopped, 0, 1", st.State, st.Active, st.New)
	}
}

func TestUDPStopDeadlineCutsFlows(t *testing.T) {
	leaks(t)
	back := startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Group: newGroup(t, nil, back.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	udpAsk(t, c, "before")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want context.DeadlineExceeded", err)
	}
	if st := l.Stats(); st.Active != 0 {
		t.Errorf("Active = %d after Stop, want 0", st.Active)
	}
	// Restart works, and the same client socket starts a new flow.
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	udpAsk(t, c, "after")
	if st := l.Stats(); st.New != 2 {
		t.Errorf("New = %d, want 2", st.New)
	}
}

func TestUDPIPv6(t *testing.T) {
	leaks(t)
	probe, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	probe.Close()
	back := startUDPEchoOn(t, "v6", "[::1]:0")
	in := newUDPInstance(t)
	l := addListener(t, in, Config{Protocol: UDP, Host: "::1", ProxyProtocol: 0, Group: newGroup(t, nil, back.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	if got := udpAsk(t, c, "over v6"); got != "v6" {
		t.Errorf("reached %q, want v6", got)
	}
}

func TestUDPPortRange(t *testing.T) {
	leaks(t)
	// Backends on 127.0.0.2 at the listener's ports on 127.0.0.1.
	var base int
	var backends []*udpBackend
	for attempt := 0; len(backends) < 3; attempt++ {
		if attempt > 50 {
			t.Skip("no three consecutive free ports found")
		}
		for _, b := range backends {
			b.close()
		}
		backends = backends[:0]
		// A range needs known ports (Port 0 takes no EndPort): probe
		// for one the system would give.
		probe, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base = probe.LocalAddr().(*net.UDPAddr).Port
		probe.Close()
		for i := range 3 {
			free := func(host string) bool {
				pc, err := net.ListenPacket("udp", host+":"+strconv.Itoa(base+i))
				if err == nil {
					pc.Close()
				}
				return err == nil
			}
			if !free("127.0.0.1") || !free("127.0.0.2") {
				break
			}
			backends = append(backends, startUDPEchoOn(t, "port"+strconv.Itoa(base+i), "127.0.0.2:"+strconv.Itoa(base+i)))
		}
	}
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Port: base, EndPort: base + 2,
		Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.2:1", Weight: 100})})
	if n := len(l.Addrs()); n != 3 {
		t.Fatalf("bound %d addresses, want 3", n)
	}
	c := make([]*net.UDPConn, 3)
	for i := range 3 {
		c[i] = udpDial(t, "", "127.0.0.1:"+strconv.Itoa(base+i))
		if got, want := udpAsk(t, c[i], "hi"), "port"+strconv.Itoa(base+i); got != want {
			t.Errorf("port %d reached %q, want %q", base+i, got, want)
		}
	}
	if st := l.Stats(); st.New != 3 {
		t.Errorf("New = %d, want 3 (one flow per port)", st.New)
	}
}

func TestUDPBandwidthCapDrops(t *testing.T) {
	leaks(t)
	back := startUDPBackend(t, "sink", "127.0.0.1:0", func([]byte, netip.AddrPort) []byte { return nil })
	in := newUDPInstance(t)
	// 1 Mbps is 125 000 B/s after a burst of one chunk (256 KiB).
	l := addUDPListener(t, in, Config{Bandwidth: 1, Group: newGroup(t, nil, back.backend(100))})
	c := udpDial(t, "", listenerAddr(l))
	const size, batches, batch = 1200, 12, 50
	payload := make([]byte, size)
	start := time.Now()
	sent := uint64(0)
	for range batches {
		for range batch {
			udpSend(t, c, payload)
		}
		sent += batch
		// Wait for the listener to decide on every datagram so far.
		eventually(t, "the batch to be forwarded or dropped", func() bool {
			st := l.Stats()
			return st.BytesIn/size+st.Dropped == sent
		})
	}
	st := l.Stats()
	allowed := uint64(chunk + 125000*time.Since(start).Seconds() + size)
	if st.Dropped == 0 || st.BytesIn > allowed {
		t.Errorf("%d bytes sent at once through 1 Mbps: forwarded %d, dropped %d datagrams; want at most %d forwarded and some dropped",
			sent*size, st.BytesIn, st.Dropped, allowed)
	}
}

func TestUDPConfig(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100})
	in := newUDPInstance(t)
	for _, n := range []int{-1, 21} {
		_, err := in.Add(Config{Protocol: UDP, Port: 53, Group: g, QUICConnIDLength: n, Stopped: true})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "QUICConnIDLength" {
			t.Errorf("QUICConnIDLength %d: Add = %v, want a ConfigError on QUICConnIDLength", n, err)
		}
	}
	l, err := in.Add(Config{Protocol: UDP, Port: 53, Group: g, Stopped: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.cfg.QUICConnIDLength != DefaultQUICConnIDLength || l.cfg.IdleTimeout != DefaultUDPIdleTimeout || l.cfg.MaxFlows != DefaultMaxFlows {
		t.Errorf("defaults: QUICConnIDLength=%d IdleTimeout=%v MaxFlows=%d", l.cfg.QUICConnIDLength, l.cfg.IdleTimeout, l.cfg.MaxFlows)
	}
}

// The connection-ID router is asked first; an ID it cannot name, or an
// unknown backend, falls back to the scheduler.
func TestUDPConnIDRouter(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Stopped: true, Group: newGroup(t, qch, a.backend(100), b.backend(100))})
	startUDPServer(t, l, udpOptions{route: func(dcid []byte) (string, bool) {
		switch dcid[0] {
		case 0xbb:
			return "b", true
		case 0xee:
			return "gone", true
		}
		return "", false
	}})
	// Long headers, version 1, 8-byte DCID, empty SCID.
	pkt := func(first byte, i int) string {
		return "\xc0\x00\x00\x00\x01\x08" + string([]byte{first, byte(i), 1, 2, 3, 4, 5, 6}) + "\x00payload"
	}
	for i := range 10 {
		if got := udpAsk(t, udpDial(t, "", listenerAddr(l)), pkt(0xbb, i)); got != "b" {
			t.Errorf("DCID bb%02x… reached %s, want b (the router's answer)", i, got)
		}
	}
	seen := map[string]bool{}
	for i := range 10 {
		seen[udpAsk(t, udpDial(t, "", listenerAddr(l)), pkt(0xee, i))] = true
		seen[udpAsk(t, udpDial(t, "", listenerAddr(l)), pkt(0x11, i))] = true
	}
	if len(seen) != 2 {
		t.Errorf("flows the router could not place went to %v, want both backends by DCID hash", seen)
	}
	if st := l.Stats(); st.NoBackend != 0 || st.ConnectFailures != 0 {
		t.Errorf("Stats: NoBackend=%d ConnectFailures=%d, want 0", st.NoBackend, st.ConnectFailures)
	}
}

// With source-IP persistence a client's new flows return to the backend
// its first flow went to, even under rr.
func TestUDPPersistence(t *testing.T) {
	leaks(t)
	a, b := startUDPEcho(t, "a"), startUDPEcho(t, "b")
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{PersistenceTimeout: time.Minute,
		Group: newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100))})
	first := udpAsk(t, udpDial(t, "", listenerAddr(l)), "x")
	for i := range 5 {
		if got := udpAsk(t, udpDial(t, "", listenerAddr(l)), "y"); got != first {
			t.Errorf("flow %d of the same client IP went to %s, want %s", i+2, got, first)
		}
	}
}
