package discovery

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/dnstest"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// backends are TCP servers on one port of several loopback addresses
// (127.0.0.1, 127.0.0.2, …), as the members of one A name are: each
// greets a connection with its address, then echoes lines.
type backends struct {
	port  int
	lns   []net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startBackends(t *testing.T, n int) *backends {
	t.Helper()
	for range 10 { // the port the first gets may be taken on the others
		b := &backends{conns: map[net.Conn]bool{}}
		if b.listenAll(n) {
			t.Cleanup(b.close)
			return b
		}
		b.close()
	}
	t.Fatal("no port free on 127.0.0.1–3")
	return nil
}

func (b *backends) listenAll(n int) bool {
	for i := range n {
		addr := "127.0.0." + strconv.Itoa(i+1) + ":" + strconv.Itoa(b.port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		b.port = ln.Addr().(*net.TCPAddr).Port
		b.lns = append(b.lns, ln)
		b.wg.Add(1)
		go b.serve(ln)
	}
	return true
}

func (b *backends) serve(ln net.Listener) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = true
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			fmt.Fprintf(c, "%s\n", ln.Addr())
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "%s\n", sc.Text())
			}
		}()
	}
}

func (b *backends) close() {
	for _, ln := range b.lns {
		ln.Close()
	}
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// conn is a client connection through the listener, and the backend
// that greeted it.
type conn struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no greeting through the listener: %v", err)
	}
	return &conn{Conn: c, r: r, backend: strings.TrimSpace(greeting)}
}

func (c *conn) echo(t *testing.T, s string) {
	t.Helper()
	fmt.Fprintf(c, "%s\n", s)
	got, err := c.r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != s {
		t.Fatalf("echo through %s = %q, %v; want %q", c.backend, got, err, s)
	}
}

// hostsFor is a hosts file naming web.svc.test at 127.0.0.1 … 127.0.0.n.
func hostsFor(ips ...int) string {
	var b strings.Builder
	for _, i := range ips {
		fmt.Fprintf(&b, "127.0.0.%d web.svc.test\n", i)
	}
	return b.String()
}

// fedListener starts a TCP listener on loopback whose round-robin group
// a DNS source asking m feeds (web.svc.test on port); clock, if not nil,
// is the source's. It returns the source, started, the group and the
// listener's address.
func fedListener(t *testing.T, m *dnstest.Dnsmasq, port int, clock *fakeClock) (*DNS, *balancer.Group, string) {
	t.Helper()
	g, err := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDNS(DNSConfig{Name: "web.svc.test", Port: port, Family: "ipv4", Resolver: m.Addr, Logger: slog.New(slog.DiscardHandler)}, g)
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		d.newTimer = clock.timer
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		inst.Stop(ctx)
	})
	l, err := inst.Add(listener.Config{Protocol: listener.TCP, Host: "127.0.0.1", Group: g})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d, g, l.Addrs()[0].String()
}

// A TCP listener whose group a DNS source feeds, against dnsmasq: a
// backend added in DNS takes traffic after one TTL (one timer of the
// source's clock); a backend removed gets no new connections while its
// established one carries on.
func TestEndToEndListenerFedByDNS(t *testing.T) {
	leakcheck.Check(t)
	const ttl = 1 // seconds
	bs := startBackends(t, 3)
	m := dnstest.Start(t, ttl, hostsFor(1, 2))
	clock := newFakeClock()
	_, _, addr := fedListener(t, m, bs.port, clock)
	if got := <-clock.asked; got != ttl*time.Second {
		t.Fatalf("the source waits %v, want the TTL %ds", got, ttl)
	}
	seen := func(n int) map[string]*conn {
		out := map[string]*conn{}
		for range n {
			c := dial(t, addr)
			out[c.backend] = c
		}
		return out
	}
	one, two, three := net.JoinHostPort("127.0.0.1", strconv.Itoa(bs.port)), net.JoinHostPort("127.0.0.2", strconv.Itoa(bs.port)), net.JoinHostPort("127.0.0.3", strconv.Itoa(bs.port))
	if got := seen(4); len(got) != 2 || got[one] == nil || got[two] == nil {
		t.Fatalf("before the change, connections reached %v; want %s and %s", keys(got), one, two)
	}

	// Added: 127.0.0.3 takes traffic once the TTL's timer fires.
	m.SetHosts(hostsFor(1, 2, 3))
	clock.fire <- time.Time{}
	<-clock.asked
	if got := seen(6); len(got) != 3 || got[three] == nil {
		t.Fatalf("one TTL after adding %s, connections reached %v; want all three", three, keys(got))
	}

	// Removed: 127.0.0.2 gets no new connection; its established one
	// carries on.
	var held *conn
	for held == nil {
		if c := dial(t, addr); c.backend == two {
			held = c
		}
	}
	m.SetHosts(hostsFor(1, 3))
	clock.fire <- time.Time{}
	<-clock.asked
	if got := seen(6); got[two] != nil || len(got) != 2 {
		t.Fatalf("one TTL after removing %s, connections reached %v; want only %s and %s", two, keys(got), one, three)
	}
	held.echo(t, "still here")
	held.Close()
}

// waitMember waits for member id to be in g.
func waitMember(t *testing.T, g *balancer.Group, id string) {
	t.Helper()
	deadline := time.After(30 * time.Second) // a hang, not a timing
	for {
		changed := g.Changed()
		if _, ok := g.Member(id); ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s never reached the group", id)
		}
	}
}

func keys(m map[string]*conn) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The figure for the notes: from a DNS change to the first connection
// reaching the new backend, with the real clock and TTL 1 s. It is
// reported, not asserted (the bound is one TTL, which the test above
// proves with the test clock).
func TestEndToEndMeasureDNSChangeToTraffic(t *testing.T) {
	leakcheck.Check(t)
	bs := startBackends(t, 2)
	m := dnstest.Start(t, 1, hostsFor(1))
	_, g, addr := fedListener(t, m, bs.port, nil)
	one, two := net.JoinHostPort("127.0.0.1", strconv.Itoa(bs.port)), net.JoinHostPort("127.0.0.2", strconv.Itoa(bs.port))
	waitMember(t, g, one)
	start := time.Now()
	m.SetHosts(hostsFor(1, 2))
	waitMember(t, g, two)
	for dial(t, addr).backend != two {
	}
	t.Logf("DNS change to first connection on the new backend: %v (TTL 1s, MinTTL 1s)", time.Since(start).Round(time.Millisecond))
}

// Health checks apply to discovered members as to configured ones: a
// checker following the group probes each member the source adds, and
// only those that pass take traffic.
func TestDiscoveredMembersAreHealthChecked(t *testing.T) {
	leakcheck.Check(t)
	live := startBackends(t, 1)
	z := newZone(t)
	// 127.0.0.1 has the backend; 127.0.0.2 refuses the port.
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2")
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: live.port, Family: "ipv4"})
	hc, err := health.Follow(g, health.Config{Kind: health.KindTCP, HealthyThreshold: 1, UnhealthyThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Stop()
	changed := g.Changed()
	resolve(t, d)
	<-changed
	up, down := net.JoinHostPort("127.0.0.1", strconv.Itoa(live.port)), net.JoinHostPort("127.0.0.2", strconv.Itoa(live.port))
	// The checker follows the group in its own goroutine: wait (bounded)
	// until it has both targets.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		_, ok1 := hc.Status(up)
		_, ok2 := hc.Status(down)
		if ok1 && ok2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the checker never took the discovered members as targets")
		}
	}
	hc.CheckNow(context.Background())
	for id, want := range map[string]bool{up: true, down: false} {
		if m, _ := g.Member(id); m.Healthy() != want {
			t.Errorf("discovered member %s: Healthy %v, want %v", id, m.Healthy(), want)
		}
	}
	for range 4 {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.ID() != up {
			t.Errorf("Pick = %s, want only the healthy %s", p.Member.ID(), up)
		}
		p.Done(balancer.DoneInfo{})
	}
}
