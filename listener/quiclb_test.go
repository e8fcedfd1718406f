package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/quic-go/quic-go"
)

// A *quiclb.Router is a QUICRouter: the pairing the listener's docs promise.
var _ QUICRouter = (*quiclb.Router)(nil)

// quicLBCluster is a QUIC-LB deployment: one configuration and key shared
// by the load balancer and every backend, each backend its own server ID.
type quicLBCluster struct {
	cfg       quiclb.Config
	router    *quiclb.Router
	reset     quic.StatelessResetKey
	token     quic.TokenGeneratorKey
	serverTLS *tls.Config
	clientTLS *tls.Config
	ids       quiclb.ServerIDs
	backends  []balancer.Backend
}

// newQUICLBCluster starts one quic-go echo server per name (see
// startQUICEcho) whose Transport issues QUIC-LB connection IDs.
func newQUICLBCluster(t *testing.T, names ...string) *quicLBCluster {
	t.Helper()
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	c := &quicLBCluster{
		// Four-pass: 2-octet server IDs, 5-octet nonces, 8-octet IDs.
		cfg: quiclb.Config{ConfigID: 1, Key: []byte("lbkit-quiclb-key")},
		ids: quiclb.ServerIDs{},
	}
	copy(c.reset[:], "lbkit shared stateless reset key")
	copy(c.token[:], "lbkit shared token generator key")
	c.serverTLS, c.clientTLS = testTLS(t)
	dec, err := quiclb.NewDecoder(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		id, err := quiclb.MakeServerID([]byte{0x10, byte(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: c.cfg, ServerID: id})
		if err != nil {
			t.Fatal(err)
		}
		c.ids[id] = name
		c.backends = append(c.backends, c.startServer(t, name, gen))
	}
	if c.router, err = quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: c.ids}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *quicLBCluster) startServer(t *testing.T, name string, gen *quiclb.Generator) balancer.Backend {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{
		Conn:                  pc,
		ConnectionIDGenerator: gen,
		StatelessResetKey:     &c.reset,
		TokenGeneratorKey:     &c.token,
	}
	ln, err := tr.Listen(c.serverTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					str, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() {
						defer str.Close()
						if _, err := io.WriteString(str, name+"\n"); err != nil {
							return
						}
						io.Copy(str, str)
					})
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		tr.Close()
		pc.Close()
		wg.Wait()
	})
	return balancer.Backend{ID: name, Addr: pc.LocalAddr().String(), Weight: 100}
}

// listener starts a UDP listener in front of the cluster with the named
// scheduler, routing by QUIC-LB server ID if route is set.
func (c *quicLBCluster) listener(t *testing.T, sched string, route bool) (*Listener, *balancer.Group) {
	t.Helper()
	return quicLBListener(t, sched, c.cfg, c.router, route, c.backends)
}

// quicLBListener starts a UDP listener in front of backends, QUIC servers
// issuing IDs under cfg, with the named scheduler, routing by router if
// route is set.
func quicLBListener(t *testing.T, sched string, cfg quiclb.Config, router *quiclb.Router, route bool, backends []balancer.Backend) (*Listener, *balancer.Group) {
	t.Helper()
	s, err := balancer.ParseScheduler(sched)
	if err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, s, backends...)
	lc := Config{Group: g, QUICConnIDLength: cfg.ConnIDLen()}
	if route {
		lc.QUICRouter = router
	}
	return addUDPListener(t, newUDPInstance(t), lc), g
}

// quicClient is a client connection whose Transport the test owns, so
// that it can migrate to another socket.
type quicClient struct {
	conn *quic.Conn
	trs  []*quic.Transport
}

func dialQUICLB(ctx context.Context, t *testing.T, c *quicLBCluster, l *Listener) (*quicClient, error) {
	t.Helper()
	tr := newClientTransport(t)
	ua, err := net.ResolveUDPAddr("udp", listenerAddr(l))
	if err != nil {
		return nil, err
	}
	conn, err := tr.Dial(ctx, ua, c.clientTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return &quicClient{conn: conn, trs: []*quic.Transport{tr}}, nil
}

// newClientTransport returns a client Transport on a fresh loopback
// socket, closed at cleanup.
func newClientTransport(t *testing.T) *quic.Transport {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() {
		tr.Close()
		pc.Close()
	})
	return tr
}

// ask opens a stream, sends msg and returns the name of the server that
// answered, checking the echo.
func (q *quicClient) ask(ctx context.Context, msg string) (string, error) {
	str, err := q.conn.OpenStreamSync(ctx)
	if err != nil {
		return "", err
	}
	defer str.Close()
	if d, ok := ctx.Deadline(); ok {
		str.SetDeadline(d)
	}
	if _, err := io.WriteString(str, msg+"\n"); err != nil {
		return "", err
	}
	name, err := readLineErr(str)
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if echo, err := readLineErr(str); err != nil || echo != msg {
		return "", fmt.Errorf("echo %q, %v, want %q", echo, err, msg)
	}
	return name, nil
}

// migrate moves the connection to tr (a new local socket) with quic-go's
// path migration: probe the new path, then switch to it.
func (q *quicClient) migrate(ctx context.Context, tr *quic.Transport) error {
	p, err := q.conn.AddPath(tr)
	if err != nil {
		return err
	}
	if err := p.Probe(ctx); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := p.Switch(); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	q.trs = append(q.trs, tr)
	return nil
}

func readLineErr(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := io.ReadFull(r, b); err != nil {
			return string(line), err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

// Twenty concurrent connections through qch with a QUIC-LB router, half
// of them migrating to a new socket halfway: every stream of a
// connection is served by one server, and the migrated flows were routed
// by server ID.
func TestUDPQUICLBConcurrent(t *testing.T) {
	leaks(t)
	c := newQUICLBCluster(t, "q1", "q2", "q3")
	l, _ := c.listener(t, balancer.NameQCH, true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	const conns, streams = 20, 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		servers = map[string]int{}
		clients = make([]*quicClient, conns)
		trs     = make([]*quic.Transport, conns)
	)
	for i := range conns {
		trs[i] = newClientTransport(t) // for migration; t is not for goroutines
	}
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			q, err := dialQUICLB(ctx, t, c, l)
			if err != nil {
				errs <- fmt.Errorf("connection %d: dial: %w", i, err)
				return
			}
			clients[i] = q
			first := ""
			for j := range streams {
				if i%2 == 0 && j == streams/2 {
					if err := q.migrate(ctx, trs[i]); err != nil {
						errs <- fmt.Errorf("connection %d: migrate: %w", i, err)
						return
					}
				}
				name, err := q.ask(ctx, fmt.Sprintf("conn %d stream %d", i, j))
				if err != nil {
					errs <- fmt.Errorf("connection %d stream %d: %w", i, j, err)
					return
				}
				if first == "" {
					first = name
				} else if name != first {
					errs <- fmt.Errorf("connection %d stream %d served by %s, stream 0 by %s", i, j, name, first)
					return
				}
			}
			mu.Lock()
			servers[first]++
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := l.Stats()
	t.Logf("connections per server %v; flows routed %d, fallback %d", servers, st.QUICRouted, st.QUICFallback)
	// Each connection's first flow carries a client-chosen Initial DCID
	// (four-tuple); each migration is a new flow with a server's ID.
	if st.QUICFallback < conns || st.QUICRouted < conns/2 {
		t.Errorf("Stats: QUICRouted=%d QUICFallback=%d, want ≥ %d and ≥ %d", st.QUICRouted, st.QUICFallback, conns/2, conns)
	}
	if len(servers) < 2 {
		t.Errorf("all connections on %v: the four-tuple fallback should spread them", servers)
	}
}

// Migration: a client moves to a new socket mid-connection. Through qch
// with the QUIC-LB router it keeps its server; through tch (Maglev on the
// four-tuple, no router) the new address hashes to another backend, which
// does not know the connection, and the connection is lost.
func TestUDPQUICLBMigration(t *testing.T) {
	leaks(t)
	c := newQUICLBCluster(t, "q1", "q2", "q3")
	for _, tc := range []struct {
		name   string
		sched  string
		route  bool
		keeps  bool
		routed uint64
	}{
		{name: "qch+router", sched: balancer.NameQCH, route: true, keeps: true, routed: 1},
		{name: "tch", sched: balancer.NameTCH, keeps: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, g := c.listener(t, tc.sched, tc.route)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q, err := dialQUICLB(ctx, t, c, l)
			if err != nil {
				t.Fatal(err)
			}
			var before string
			for j := range 3 { // also lets the server's NEW_CONNECTION_IDs arrive
				name, err := q.ask(ctx, fmt.Sprintf("before %d", j))
				if err != nil {
					t.Fatalf("stream %d before migrating: %v", j, err)
				}
				before = name
			}
			// The new socket is one whose four-tuple Maglev sends to
			// another backend than the one serving the connection, so the
			// four-tuple alone cannot keep the connection.
			lnAddr := netip.MustParseAddrPort(listenerAddr(l))
			tr := newClientTransport(t)
			for range 50 {
				if k := four(tr, lnAddr); pickID(t, g, k) != before {
					break
				}
				tr = newClientTransport(t)
			}
			if got := pickID(t, g, four(tr, lnAddr)); got == before {
				t.Fatalf("no new socket hashes away from %s", before)
			}
			if tc.sched == balancer.NameTCH {
				// The prediction holds for the socket the client started on.
				if got := pickID(t, g, four(q.trs[0], lnAddr)); got != before {
					t.Fatalf("tch picks %s for the first socket, but %s served it", got, before)
				}
			}

			mctx, mcancel := context.WithTimeout(ctx, 2*time.Second)
			defer mcancel()
			err = q.migrate(mctx, tr)
			var after string
			if err == nil {
				after, err = q.ask(mctx, "after")
			}
			st := l.Stats()
			t.Logf("served by %s; after migration: server %q, err %v; QUICRouted=%d QUICFallback=%d",
				before, after, err, st.QUICRouted, st.QUICFallback)
			if tc.keeps {
				if err != nil || after != before {
					t.Fatalf("after migrating: served by %q, %v; want %s, nil", after, err, before)
				}
				if st.QUICRouted < tc.routed {
					t.Errorf("Stats.QUICRouted = %d, want ≥ %d", st.QUICRouted, tc.routed)
				}
				return
			}
			if err == nil {
				t.Fatalf("after migrating through %s: served by %s, want the connection lost", tc.sched, after)
			}
			var reset *quic.StatelessResetError
			switch {
			case errors.As(err, &reset):
				t.Logf("lost as expected: stateless reset from the backend that does not know the connection")
			case errors.Is(err, context.DeadlineExceeded):
				// The other backend answers the PATH_CHALLENGE for a
				// connection ID it never issued with nothing the client
				// takes: the new path never validates.
				t.Logf("lost as expected: the new path never validated")
			default:
				t.Logf("lost as expected: %v", err)
			}
			// The probes went to the other backend, as a new flow.
			if other := pickID(t, g, four(tr, lnAddr)); st.Backends[other].New == 0 {
				t.Errorf("Stats.Backends[%s].New = 0, want the migrated flow there", other)
			}
			if st.QUICRouted != 0 || st.QUICFallback != 0 {
				t.Errorf("Stats without a router: QUICRouted=%d QUICFallback=%d, want 0, 0", st.QUICRouted, st.QUICFallback)
			}
		})
	}
}

// A backend leaves the group while it has connections: once it is out of
// the group and the router's table, its clients' new flows fall back to
// the four-tuple (counted) and lose the connection cleanly; the other
// backends' connections migrate and carry on.
func TestUDPQUICLBBackendLeaves(t *testing.T) {
	leaks(t)
	c := newQUICLBCluster(t, "q1", "q2", "q3")
	l, g := c.listener(t, balancer.NameQCH, true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	// Connections until one is on q3 and one elsewhere.
	var gone, stays *quicClient
	var staysOn string
	for i := 0; i < 30 && (gone == nil || stays == nil); i++ {
		q, err := dialQUICLB(ctx, t, c, l)
		if err != nil {
			t.Fatal(err)
		}
		name, err := q.ask(ctx, "hello")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case name == "q3" && gone == nil:
			gone = q
		case name != "q3" && stays == nil:
			stays, staysOn = q, name
		default:
			q.conn.CloseWithError(0, "")
		}
	}
	if gone == nil || stays == nil {
		t.Fatal("30 connections did not reach both q3 and another server")
	}
	for _, q := range []*quicClient{gone, stays} { // more connection IDs
		if _, err := q.ask(ctx, "again"); err != nil {
			t.Fatal(err)
		}
	}

	// q3 leaves: the router's table first would do as well; here the
	// group goes first, so the router still names q3 for a moment.
	if err := g.Remove("q3"); err != nil {
		t.Fatal(err)
	}
	before := l.Stats()
	mctx, mcancel := context.WithTimeout(ctx, 2*time.Second)
	defer mcancel()
	if err := gone.migrate(mctx, newClientTransport(t)); err == nil {
		if name, err := gone.ask(mctx, "after"); err == nil {
			t.Errorf("q3's connection served by %s after q3 left", name)
		}
	}
	mid := l.Stats()
	if mid.QUICFallback <= before.QUICFallback || mid.QUICRouted != before.QUICRouted {
		t.Errorf("q3's migration (router names a backend out of the group): QUICRouted %d→%d, QUICFallback %d→%d; want a fallback",
			before.QUICRouted, mid.QUICRouted, before.QUICFallback, mid.QUICFallback)
	}

	ids := quiclb.ServerIDs{}
	for id, name := range c.ids {
		if name != "q3" {
			ids[id] = name
		}
	}
	if err := c.router.SetServerIDs(ids); err != nil {
		t.Fatal(err)
	}
	if err := stays.migrate(ctx, newClientTransport(t)); err != nil {
		t.Fatalf("%s's connection: migrate: %v", staysOn, err)
	}
	if name, err := stays.ask(ctx, "after"); err != nil || name != staysOn {
		t.Fatalf("%s's connection after q3 left and it migrated: served by %q, %v", staysOn, name, err)
	}
	after := l.Stats()
	if after.QUICRouted <= mid.QUICRouted {
		t.Errorf("QUICRouted %d→%d, want the migration of %s's connection routed", mid.QUICRouted, after.QUICRouted, staysOn)
	}
	t.Logf("QUICRouted=%d QUICFallback=%d", after.QUICRouted, after.QUICFallback)
}

// four returns the balancer key of a flow from tr's socket to the
// listener.
func four(tr *quic.Transport, ln netip.AddrPort) balancer.Key {
	src := tr.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return balancer.Key{Src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), Dst: ln}
}

func pickID(t *testing.T, g *balancer.Group, k balancer.Key) string {
	t.Helper()
	p, err := g.Pick(k)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(balancer.DoneInfo{})
	return p.Member.ID()
}

// FuzzQUICLBRouterPath feeds arbitrary first datagrams through a new
// flow's routing (pickKey, then the pick connect makes) with a QUIC-LB
// router: no panic; a routed flow lands on the backend the router named,
// which holds the server ID its DCID decodes to; an unrouted one carries
// no ConnID, so qch hashes the four-tuple.
func FuzzQUICLBRouterPath(f *testing.F) {
	cfg := quiclb.Config{ConfigID: 1, Key: []byte("lbkit-quiclb-key")}
	dec, err := quiclb.NewDecoder(cfg)
	if err != nil {
		f.Fatal(err)
	}
	ids := quiclb.ServerIDs{}
	var backends []balancer.Backend
	for i := range 3 {
		id, _ := quiclb.MakeServerID([]byte{0x10, byte(i + 1)})
		name := fmt.Sprintf("q%d", i+1)
		ids[id] = name
		backends = append(backends, balancer.Backend{ID: name, Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i), Weight: 100})
		gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: cfg, ServerID: id})
		if err != nil {
			f.Fatal(err)
		}
		cid, _ := gen.GenerateConnectionID()
		f.Add(append([]byte{0x40}, cid.Bytes()...))                                    // short header
		f.Add(append(append([]byte{0xc0, 0, 0, 0, 1, 8}, cid.Bytes()...), 0))          // long header
		f.Add(append(append([]byte{0xc0, 0, 0, 0, 1, 9}, cid.Bytes()...), 0xff, 0, 0)) // long, 9-octet DCID
		f.Add(append([]byte{0x40, cid.Bytes()[0] | 0xe0}, cid.Bytes()[1:]...))         // codepoint 7
		f.Add(append([]byte{0x40}, cid.Bytes()[:5]...))                                // short
	}
	// q3 is in the router's table but not in the group.
	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
	g, err := balancer.New(balancer.Config{Scheduler: qch}, backends[:2]...)
	if err != nil {
		f.Fatal(err)
	}
	r, err := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: ids})
	if err != nil {
		f.Fatal(err)
	}
	s := &udpServer{l: &Listener{cfg: Config{QUICConnIDLength: cfg.ConnIDLen()}}, route: r.Route}
	src := netip.MustParseAddrPort("192.0.2.1:4433")
	dst := netip.MustParseAddrPort("198.51.100.1:443")
	f.Fuzz(func(t *testing.T, first []byte) {
		k, routeID, routed := s.pickKey(src, dst, first)
		if k.HasHash {
			t.Fatalf("pickKey(%x): a connection-ID hash %x with a router, want none", first, k.Hash)
		}
		if !routed {
			p, err := g.Pick(k)
			if err != nil {
				t.Fatal(err)
			}
			p.Done(balancer.DoneInfo{})
			return
		}
		dcid, ok := parseQUICDestConnID(first, cfg.ConnIDLen())
		sid, decoded := dec.ServerID(dcid)
		if !ok || !decoded || ids[sid] != routeID {
			t.Fatalf("pickKey(%x) routed to %q; DCID %x decodes to %v, %v", first, routeID, dcid, sid, decoded)
		}
		p, err := g.PickSticky(routeID, k)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(balancer.DoneInfo{})
		m := p.Member
		if _, in := g.Member(routeID); in != (m.ID() == routeID) {
			t.Fatalf("PickSticky(%q) = %s, member of the group: %v", routeID, m.ID(), in)
		}
	})
}
