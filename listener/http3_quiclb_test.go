package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Fleet is two replicas of an HTTPS listener with HTTP/3, front ends A
// and B, each of its own instance and in front of its own backend, which
// answers with the front end's name. With gens, each front end issues
// QUIC-LB connection IDs with its own server ID under one
// configuration, which the router knows.
type h3Fleet struct {
	ca     *testCA
	cfg    quiclb.Config
	router *quiclb.Router
	fronts map[string]*Listener
	// members are the front ends' UDP sockets, for the UDP listener.
	members []balancer.Backend
}

// fleetKeys are the QUIC token secrets every replica of a fleet shares.
var fleetKeys = QUICKeys{
	StatelessReset: &quic.StatelessResetKey{'l', 'b', 'k', 'i', 't', ' ', 'r', 'e', 's', 'e', 't'},
	Token:          &quic.TokenGeneratorKey{'l', 'b', 'k', 'i', 't', ' ', 't', 'o', 'k', 'e', 'n'},
}

// downloadBytes is the size of /big: many flow-control windows, so the
// client is mid-download when it migrates.
const downloadBytes = 4 << 20

func newH3Fleet(t *testing.T, gens, keys bool) *h3Fleet {
	t.Helper()
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	f := &h3Fleet{
		ca:     newCA(t, "ca"),
		cfg:    quiclb.Config{ConfigID: 1, Key: []byte("lbkit-quiclb-key")},
		fronts: map[string]*Listener{},
	}
	dec, err := quiclb.NewDecoder(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids := quiclb.ServerIDs{}
	for i, name := range []string{"A", "B"} {
		id, err := quiclb.MakeServerID([]byte{0x20, byte(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = name
		var opts HTTPOptions
		if keys {
			opts.QUICKeys = fleetKeys
		}
		if gens {
			if opts.QUICConnIDs, err = quiclb.NewGenerator(quiclb.GeneratorConfig{Config: f.cfg, ServerID: id}); err != nil {
				t.Fatal(err)
			}
		}
		b := startHTTPBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name)
			if r.URL.Path == "/big" {
				io.WriteString(w, "\n")
				w.Write(make([]byte, downloadBytes))
			}
		})
		l := addH3(t, f.ca, opts, b)
		f.fronts[name] = l
		f.members = append(f.members, balancer.Backend{ID: name, Addr: listenerAddr(l), Weight: 100})
	}
	if f.router, err = quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: ids}); err != nil {
		t.Fatal(err)
	}
	return f
}

// h3Client is an HTTP/3 client of one address whose QUIC connections
// start on a socket the test owns, so that it can migrate them.
type h3Client struct {
	*http.Client
	tr *quic.Transport // the socket every dial starts on

	mu    sync.Mutex
	q     *quicClient // the last connection dialed
	dials int
}

func newH3Client(t *testing.T, ca *testCA) *h3Client {
	t.Helper()
	c := &h3Client{tr: newClientTransport(t)}
	h3 := &http3.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: ca.pool, ServerName: "default.test"},
		DisableCompression: true,
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			conn, err := c.tr.Dial(ctx, ua, tlsCfg, cfg)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.q, c.dials = &quicClient{conn: conn, trs: []*quic.Transport{c.tr}}, c.dials+1
			c.mu.Unlock()
			return conn, nil
		},
	}
	t.Cleanup(func() { h3.Close() })
	c.Client = &http.Client{Transport: h3, Timeout: 10 * time.Second}
	return c
}

func (c *h3Client) conn() (*quicClient, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.q, c.dials
}

// name asks url and returns the body: the front end's name.
func (c *h3Client) name(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.ProtoMajor != 3 {
		err = fmt.Errorf("answered over %s", resp.Proto)
	}
	return string(b), err
}

// An HTTP/3 client of two front ends behind a UDP listener moves to a
// new socket mid-download. With QUIC-LB connection IDs and a qch
// listener routing by server ID, the download finishes and every later
// request is answered by the same front end on the same connection.
// Without the front ends' generators (qch falls back to the
// four-tuple), or through tch, the new socket — one whose four-tuple
// Maglev sends to the other front end — reaches a front end that does
// not know the connection, and the migration fails.
func TestHTTP3QUICLBMigration(t *testing.T) {
	leaks(t)
	for _, tc := range []struct {
		name  string
		gens  bool
		keys  bool
		sched string
		route bool
		keeps bool
	}{
		{name: "qch+router+generators", gens: true, sched: balancer.NameQCH, route: true, keeps: true},
		{name: "qch+router, random IDs", sched: balancer.NameQCH, route: true},
		{name: "tch+generators", gens: true, sched: balancer.NameTCH},
		{name: "tch+generators+keys", gens: true, keys: true, sched: balancer.NameTCH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newH3Fleet(t, tc.gens, tc.keys)
			l, g := quicLBListener(t, tc.sched, f.cfg, f.router, tc.route, f.members)
			url := "https://" + listenerAddr(l)
			c := newH3Client(t, f.ca)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()

			var before string
			for j := range 3 { // also lets the front end's NEW_CONNECTION_IDs arrive
				name, err := c.name(ctx, url+"/")
				if err != nil || before != "" && name != before {
					t.Fatalf("request %d before migrating: %q, %v; want %q", j, name, err, before)
				}
				before = name
			}
			q, _ := c.conn()

			// A new socket whose four-tuple Maglev sends to the other
			// front end, so the four-tuple alone cannot keep the client.
			lnAddr := netip.MustParseAddrPort(listenerAddr(l))
			tr := newClientTransport(t)
			for i := 0; i < 50 && pickID(t, g, four(tr, lnAddr)) == before; i++ {
				tr = newClientTransport(t)
			}
			if got := pickID(t, g, four(tr, lnAddr)); got == before {
				t.Fatalf("no new socket hashes away from %s", before)
			}

			// Mid-download: the head of /big has come, the rest comes
			// over whichever path the connection is on.
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/big", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			head, err := br.ReadString('\n')
			if err != nil || strings.TrimSpace(head) != before {
				t.Fatalf("download from %q, %v; want %s", head, err, before)
			}
			if _, err := io.CopyN(io.Discard, br, 64<<10); err != nil {
				t.Fatal(err)
			}
			mctx, mcancel := context.WithTimeout(ctx, 2*time.Second)
			defer mcancel()
			migErr := q.migrate(mctx, tr)
			n, dlErr := io.Copy(io.Discard, br)
			if n += 64 << 10; dlErr == nil && n != downloadBytes {
				dlErr = fmt.Errorf("downloaded %d bytes, want %d", n, downloadBytes)
			}
			var after []string
			var reqErr error
			for range 3 {
				name, err := c.name(ctx, url+"/")
				if err != nil {
					reqErr = err
					break
				}
				after = append(after, name)
			}
			_, dials := c.conn()
			t.Logf("first connection: %v", context.Cause(q.conn.Context()))
			st := l.Stats()
			stA, stB := f.fronts["A"].Stats(), f.fronts["B"].Stats()
			t.Logf("served by %s; migration: %v; download: %v; after: %v, %v; dials %d; QUICRouted=%d QUICFallback=%d; HTTP3Requests A=%d B=%d",
				before, migErr, dlErr, after, reqErr, dials, st.QUICRouted, st.QUICFallback, stA.HTTP3Requests, stB.HTTP3Requests)

			if tc.keeps {
				if migErr != nil || dlErr != nil || reqErr != nil {
					t.Fatalf("migration %v, download %v, requests after %v; want none failed", migErr, dlErr, reqErr)
				}
				for i, name := range after {
					if name != before {
						t.Errorf("request %d after migrating served by %s, want %s", i, name, before)
					}
				}
				if dials != 1 {
					t.Errorf("%d QUIC connections dialed, want 1", dials)
				}
				if st.QUICRouted == 0 {
					t.Error("Stats.QUICRouted = 0, want the migrated flow routed by server ID")
				}
				other := "A"
				if before == "A" {
					other = "B"
				}
				if n := f.fronts[other].Stats().HTTP3Requests; n != 0 {
					t.Errorf("front end %s served %d HTTP/3 requests, want 0", other, n)
				}
				return
			}
			// The other front end has no such connection: it answers the
			// PATH_CHALLENGE with nothing the client takes (or a reset
			// under its own key), so the new path never validates.
			if migErr == nil {
				t.Fatalf("migrating through %s without routable IDs: path validated; want it lost", tc.sched)
			}
			if !errors.Is(migErr, context.DeadlineExceeded) {
				t.Logf("migration failed: %v", migErr)
			}
			if st.QUICRouted != 0 {
				t.Errorf("Stats.QUICRouted = %d, want 0: no ID names a front end", st.QUICRouted)
			}
		})
	}
}

// QUICConnIDs, QUICKeys and QUICConn are only for an HTTPS listener with HTTP3.
func TestHTTP3QUICFieldsConfig(t *testing.T) {
	ca := newCA(t, "ca")
	id, err := quiclb.MakeServerID([]byte{0x20, 1})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{ServerID: id})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:1"})
	cert := ca.issue(t, "default", "default.test")
	in := newInstance(t)
	for _, tc := range []struct {
		name string
		o    HTTPOptions
		want string
	}{
		{"conn IDs", HTTPOptions{Certificate: cert, QUICConnIDs: gen}, `listener: HTTP.QUICConnIDs "*quiclb.Generator": needs HTTP3`},
		{"keys", HTTPOptions{Certificate: cert, QUICKeys: fleetKeys}, `listener: HTTP.QUICKeys "set": needs HTTP3`},
		{"conn", HTTPOptions{Certificate: cert, QUICConn: func(c *net.UDPConn) net.PacketConn { return c }}, `listener: HTTP.QUICConn "set": needs HTTP3`},
	} {
		if _, err := in.Add(Config{Protocol: HTTPS, Host: "127.0.0.1", Group: g, HTTP: tc.o}); err == nil || err.Error() != tc.want {
			t.Errorf("Add(%s without HTTP3) = %v, want %s", tc.name, err, tc.want)
		}
	}
}

// A client's packets go astray after its front end leaves the router's
// group: the UDP listener restarts without it, so the client's next
// request reaches the other front end, which does not hold the
// connection. With QUICKeys shared by the fleet, that front end resets
// the connection with a token the client accepts, and the client learns
// at once; without, it drops the packets, and the client's request
// waits for its deadline on a connection that looks alive.
func TestHTTP3QUICKeysReset(t *testing.T) {
	leaks(t)
	for _, tc := range []struct {
		name  string
		keys  bool
		reset bool
	}{
		{name: "shared keys", keys: true, reset: true},
		{name: "no keys", keys: false, reset: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newH3Fleet(t, true, tc.keys)
			l, g := quicLBListener(t, balancer.NameQCH, f.cfg, f.router, true, f.members)
			url := "https://" + listenerAddr(l)
			c := newH3Client(t, f.ca)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			first, err := c.name(ctx, url+"/")
			if err != nil {
				t.Fatal(err)
			}
			q, _ := c.conn()

			if err := g.Remove(first); err != nil {
				t.Fatal(err)
			}
			stopped, stop := context.WithCancel(ctx)
			stop() // cut the UDP listener's flows at once
			l.Stop(stopped)
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}

			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			defer rcancel()
			name, err := c.name(rctx, url+"/")
			if tc.reset {
				// The request fails with the reset a moment before
				// quic-go cancels the connection's context with it.
				select {
				case <-q.conn.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}
			cause := context.Cause(q.conn.Context())
			_, dials := c.conn()
			t.Logf("served by %s; after it left: %q, %v; first connection: %v; dials %d", first, name, err, cause, dials)
			var reset *quic.StatelessResetError
			if got := errors.As(cause, &reset); got != tc.reset {
				t.Errorf("first connection ended by a stateless reset: %v (%v), want %v", got, cause, tc.reset)
			}
			if !tc.reset {
				return
			}
			// The client recovers at once, on a new connection, at the
			// front end that is left.
			again, err := c.name(ctx, url+"/")
			if _, dials := c.conn(); err != nil || again == first || dials != 2 {
				t.Errorf("after the reset: served by %q, %v, %d connections dialed; want the other front end on a second", again, err, dials)
			}
		})
	}
}
