package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/session"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// The HTTPS behaviour tests of this file run over HTTP/1.1, HTTP/2 and
// HTTP/3 alike: what an HTTPS listener does, it does to HTTP/3 requests.

var protos = []string{"h1", "h2", "h3"}

// closeClient ends c's connections: an HTTP/3 client closes its QUIC
// connections (CONNECTION_CLOSE), a TCP one its idle keep-alive ones.
func closeClient(c *http.Client) {
	switch tr := c.Transport.(type) {
	case *http3.Transport:
		tr.Close()
	case *http.Transport:
		tr.CloseIdleConnections()
	}
}

// TestHTTP3Headers: the X-Forwarded-* and SLB-* headers a backend gets
// are the same whichever protocol the client spoke.
func TestHTTP3Headers(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	in, err := NewInstance(InstanceConfig{ID: "lb-test", Address: mustAddr("192.0.2.10"), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Stop(within(t, 10*time.Second)) })
	l := addListener(t, in, Config{Protocol: HTTPS, Group: newGroup(t, nil, b.backend(100)), HTTP: HTTPOptions{
		HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test"),
		Options: httpproxy.Options{SLBID: true, SLBIP: true, XForwardedProto: true, XForwardedPort: true},
	}})
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			doProto(t, protoClient(t, proto, ca, nil, ""), proto, newReq(t, httpsURL(l, "/"), "X-Forwarded-For", "198.51.100.7"))
			h, _ := b.lastHeader()
			for name, want := range map[string]string{
				"X-Forwarded-For":   "198.51.100.7, 127.0.0.1",
				"SLB-ID":            "lb-test",
				"SLB-IP":            "192.0.2.10",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Port":  fmt.Sprint(l.Port()),
			} {
				if got := h.Get(name); got != want {
					t.Errorf("backend saw %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestHTTP3Counters: a connection of every protocol counts as New and
// Active while open, Active goes back to 0 once the client closes it
// (an HTTP/3 client with a CONNECTION_CLOSE), and its requests count
// at the backend and by status.
func TestHTTP3Counters(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	l := addH3(t, ca, HTTPOptions{}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			before := l.Stats()
			c := protoClient(t, proto, ca, nil, "")
			for range 3 {
				doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
			}
			s := l.Stats()
			if s.New-before.New != 1 || s.Active != 1 {
				t.Errorf("with the connection open: New grew by %d, Active %d; want 1, 1", s.New-before.New, s.Active)
			}
			if n := s.Backends["b"].New - before.Backends["b"].New; n != 3 {
				t.Errorf("backend b New grew by %d, want 3", n)
			}
			if n := s.Status[1] - before.Status[1]; n != 3 {
				t.Errorf("2xx grew by %d, want 3", n)
			}
			closeClient(c)
			eventually(t, "Active to reach 0", func() bool { return l.Stats().Active == 0 })
		})
	}
}

// TestHTTP3AccessLog: the access log names the protocol each request
// came over, HTTP/3.0 included.
func TestHTTP3AccessLog(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	var buf syncBuffer
	l := addH3(t, ca, HTTPOptions{Options: httpproxy.Options{AccessLog: slog.New(slog.NewTextHandler(&buf, nil))}}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			doProto(t, protoClient(t, proto, ca, nil, ""), proto, newReq(t, httpsURL(l, "/"+proto+"?y=1")))
			var line string
			for _, ln := range strings.Split(buf.String(), "\n") {
				if strings.Contains(ln, "path=/"+proto+" ") {
					line = ln
				}
			}
			for _, want := range []string{"msg=\"http request\"", "method=GET", "proto=" + protoNames[proto], "status=200", "bytes=1", "backend=b", "client=127.0.0.1:"} {
				if !strings.Contains(line, want) {
					t.Errorf("access log line %q lacks %s", line, want)
				}
			}
		})
	}
}

// TestHTTP3LiveACL: an ACL set on a running listener refuses the
// requests of connections already open (403, counted) on every
// protocol, and a new QUIC handshake (CONNECTION_CLOSE, counted, no
// request); cleared, it lets both through again.
func TestHTTP3LiveACL(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	deny := denyLoopback(t)
	l := addH3(t, ca, HTTPOptions{}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			c := protoClient(t, proto, ca, nil, "")
			doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
			if err := l.SetACL(deny); err != nil {
				t.Fatal(err)
			}
			defer l.SetACL(nil)
			hits, before := b.hits.Load(), l.Stats()
			if resp, _ := doProto(t, c, proto, newReq(t, httpsURL(l, "/"))); resp.StatusCode != http.StatusForbidden {
				t.Errorf("open connection after SetACL: status %d, want 403", resp.StatusCode)
			}
			wantRefused := uint64(1)
			if proto == "h3" {
				_, err := protoClient(t, proto, ca, nil, "").Do(newReq(t, httpsURL(l, "/")))
				var te *quic.TransportError
				if !errors.As(err, &te) || !te.Remote || !te.ErrorCode.IsCryptoError() {
					t.Errorf("new QUIC connection after SetACL: %v, want the server's CONNECTION_CLOSE with a TLS alert", err)
				}
				wantRefused = 2
			}
			if n := l.Stats().RefusedACL - before.RefusedACL; n != wantRefused {
				t.Errorf("RefusedACL grew by %d, want %d", n, wantRefused)
			}
			if n := b.hits.Load() - hits; n != 0 {
				t.Errorf("backend hit %d times while refused", n)
			}
			if err := l.SetACL(nil); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*http.Client{c, protoClient(t, proto, ca, nil, "")} {
				if _, body := doProto(t, c, proto, newReq(t, httpsURL(l, "/"))); body != "b" {
					t.Errorf("after SetACL(nil): %q", body)
				}
			}
		})
	}
}

// TestHTTP3SNILive: certificate selection by SNI — exact, narrowest
// wildcard, default — and live add, delete and edit of a domain, over
// every protocol (a new connection per check).
func TestHTTP3SNILive(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			l := addH3(t, ca, HTTPOptions{Domains: map[string]*tls.Certificate{
				"www.example.com":      ca.issue(t, "exact", "www.example.com"),
				"*.market.example.com": ca.issue(t, "narrow", "*.market.example.com"),
				"*.example.com":        ca.issue(t, "wide", "*.example.com"),
			}}, b)
			cn := func(sni string) string {
				t.Helper()
				c := protoClient(t, proto, ca, nil, sni)
				resp, _ := doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
				closeClient(c)
				return resp.TLS.PeerCertificates[0].Subject.CommonName
			}
			for sni, want := range map[string]string{
				"www.example.com":         "exact",
				"info.market.example.com": "narrow",
				"shop.example.com":        "wide",
				"other.test":              "default",
			} {
				if got := cn(sni); got != want {
					t.Errorf("SNI %s: certificate %q, want %q", sni, got, want)
				}
			}
			sel := l.Certificates()
			if err := sel.Set("api.test", ca.issue(t, "api", "api.test")); err != nil {
				t.Fatal(err)
			}
			if got := cn("api.test"); got != "api" {
				t.Errorf("after Set: certificate %q, want api", got)
			}
			if err := sel.Delete("www.example.com"); err != nil {
				t.Fatal(err)
			}
			if got := cn("www.example.com"); got != "wide" {
				t.Errorf("after Delete: certificate %q, want the wildcard", got)
			}
			if err := sel.Set("api.test", ca.issue(t, "api2", "api.test")); err != nil {
				t.Fatal(err)
			}
			if got := cn("api.test"); got != "api2" {
				t.Errorf("after an edit: certificate %q, want api2", got)
			}
		})
	}
}

// TestHTTP3MutualTLSLive: a listener demanding client certificates
// refuses a client without one on every protocol, and serves it after
// SetClientCAs(nil), without a restart.
func TestHTTP3MutualTLSLive(t *testing.T) {
	leaks(t)
	ca, clientCA := newCA(t, "ca"), newCA(t, "client-ca")
	b := startHTTPBackend(t, "b", nil)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			l := addH3(t, ca, HTTPOptions{ClientCAs: clientCA.pool}, b)
			if resp, err := protoClient(t, proto, ca, nil, "").Do(newReq(t, httpsURL(l, "/"))); err == nil {
				resp.Body.Close()
				t.Fatal("a client without a certificate was served")
			}
			if err := l.SetClientCAs(nil); err != nil {
				t.Fatal(err)
			}
			if _, body := doProto(t, protoClient(t, proto, ca, nil, ""), proto, newReq(t, httpsURL(l, "/"))); body != "b" {
				t.Errorf("after SetClientCAs(nil): %q", body)
			}
		})
	}
}

// TestHTTP3Bandwidth: a listener's cap holds responses to its rate on
// every protocol, set in the config, live by SetBandwidth on a
// connection already open, or as the instance's cap it shares. 320 KiB
// at 1 Mbps (125 kB/s after a 256 KiB burst) cannot take less than
// about 0.5 s, so the bound below is a floor the limiter guarantees,
// not a guess at the machine's speed.
func TestHTTP3Bandwidth(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	body := strings.Repeat("x", 320<<10)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	for _, mode := range []string{"config", "live", "instance"} {
		for _, proto := range protos {
			t.Run(proto+"/"+mode, func(t *testing.T) {
				opts := HTTPOptions{HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test")}
				cfg := Config{Protocol: HTTPS, Host: "127.0.0.1", HTTP: opts, Group: newGroup(t, nil, b.backend(100))}
				ic := InstanceConfig{ID: "lb-test", Logger: discard()}
				switch mode {
				case "config":
					cfg.Bandwidth = 1
				case "instance": // the listener shares the instance's cap
					ic.Bandwidth = 1
				}
				in, err := NewInstance(ic)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { in.Stop(within(t, 10*time.Second)) })
				l := addListener(t, in, cfg)
				c := protoClient(t, proto, ca, nil, "")
				if mode == "live" {
					// Uncapped first, to open the connection SetBandwidth
					// then governs.
					doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
					if err := l.SetBandwidth(1); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				if _, got := doProto(t, c, proto, newReq(t, httpsURL(l, "/"))); len(got) != len(body) {
					t.Fatalf("body of %d bytes, want %d", len(got), len(body))
				}
				if d := time.Since(start); d < 300*time.Millisecond {
					t.Errorf("320 KiB at 1 Mbps took %v, want about 0.5s", d)
				}
			})
		}
	}
}

// TestHTTP3Errors: no backend is 503 and a refused backend 502 on every
// protocol, each with a short explanation, counted as 5xx.
func TestHTTP3Errors(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	for _, tc := range []struct {
		name  string
		group *balancer.Group
		code  int
	}{
		{"no backend", newGroup(t, nil), 503},
		{"refused", newGroup(t, nil, dead), 502},
	} {
		l := addHTTP(t, Config{Protocol: HTTPS, Group: tc.group,
			HTTP: HTTPOptions{HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test")}})
		for _, proto := range protos {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				before := l.Stats().Status[4]
				resp, body := doProto(t, protoClient(t, proto, ca, nil, ""), proto, newReq(t, httpsURL(l, "/")))
				if resp.StatusCode != tc.code || !strings.HasPrefix(body, fmt.Sprint(tc.code)) {
					t.Errorf("status %d body %q, want %d with a short explanation", resp.StatusCode, body, tc.code)
				}
				if n := l.Stats().Status[4] - before; n != 1 {
					t.Errorf("5xx grew by %d, want 1", n)
				}
			})
		}
	}
}

// TestHTTP3RequestBodies: a request body of any size reaches the
// backend whole, whichever protocol carried it: an HTTP/3 client's
// DATA frames are forwarded like an HTTP/2 client's.
func TestHTTP3RequestBodies(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, n)
	})
	l := addH3(t, ca, HTTPOptions{}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			c := protoClient(t, proto, ca, nil, "")
			for _, size := range []int{10, 64 << 10, 1 << 20} {
				req, err := http.NewRequest(http.MethodPost, httpsURL(l, "/"), strings.NewReader(strings.Repeat("x", size)))
				if err != nil {
					t.Fatal(err)
				}
				if _, body := doProto(t, c, proto, req); body != fmt.Sprint("POST ", size) {
					t.Errorf("%d bytes posted: the backend answered %q", size, body)
				}
			}
		})
	}
}

// TestHTTP3Resumption: a client resumes its TLS session with an HTTPS
// listener on its next connection over HTTP/3 as over TCP, and two
// listeners with the same SessionTicketKeys (two replicas) resume each
// other's.
func TestHTTP3Resumption(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	keys := [][32]byte{{4, 2}}
	one := addH3(t, ca, HTTPOptions{SessionTicketKeys: keys}, b)
	two := addH3(t, ca, HTTPOptions{SessionTicketKeys: keys}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(4)
			for i, l := range []*Listener{one, one, two} {
				c := protoClient(t, proto, ca, nil, "")
				switch tr := c.Transport.(type) {
				case *http3.Transport:
					tr.TLSClientConfig.ClientSessionCache = cache
				case *http.Transport:
					tr.TLSClientConfig.ClientSessionCache = cache
				}
				// Two requests: TLS 1.3 tickets arrive after the
				// handshake, with the first response.
				doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
				resp, _ := doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
				closeClient(c)
				if want := i > 0; resp.TLS.DidResume != want {
					t.Errorf("connection %d: DidResume = %v, want %v", i, resp.TLS.DidResume, want)
				}
			}
		})
	}
}

// TestHTTP3StickyRewrite: in rewrite mode the listener adds its token
// to the application's own cookie and keeps the client on the backend
// that set it, which sees its own value back, on every protocol.
func TestHTTP3StickyRewrite(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	var seen sync.Map // backend name -> cookie value it saw
	l := addH3(t, ca, HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{Mode: session.Rewrite, CookieName: "app"}}}, appCookieBackend(t, "a", &seen), appCookieBackend(t, "b", &seen))
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			seen.Clear()
			c := protoClient(t, proto, ca, nil, "")
			c.Jar, _ = cookiejar.New(nil)
			resp, first := doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
			if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "app=v-"+first+"~") {
				t.Fatalf("Set-Cookie = %q, want the application's value with a token", sc)
			}
			for i := range 6 {
				if _, body := doProto(t, c, proto, newReq(t, httpsURL(l, "/"))); body != first {
					t.Fatalf("request %d went to %s, want %s", i, body, first)
				}
			}
			if v, _ := seen.Load(first); v != "v-"+first {
				t.Errorf("backend saw app=%v, want its own value v-%s", v, first)
			}
		})
	}
}

// TestHTTP3Middleware: the Middleware (a WAF, say) sees HTTP/3
// requests as it sees the others, and what it answers is counted.
func TestHTTP3Middleware(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	l := addH3(t, ca, HTTPOptions{Middleware: waf}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			before, hits := l.Stats(), b.hits.Load()
			c := protoClient(t, proto, ca, nil, "")
			if resp, _ := doProto(t, c, proto, newReq(t, httpsURL(l, "/?q=attack"))); resp.StatusCode != 403 {
				t.Errorf("blocked request: %d", resp.StatusCode)
			}
			if resp, _ := doProto(t, c, proto, newReq(t, httpsURL(l, "/?q=fine"))); resp.StatusCode != 200 {
				t.Errorf("allowed request: %d", resp.StatusCode)
			}
			s := l.Stats()
			if s.Status[3]-before.Status[3] != 1 || s.Status[1]-before.Status[1] != 1 || b.hits.Load()-hits != 1 {
				t.Errorf("4xx +%d, 2xx +%d, backend +%d; want 1, 1, 1", s.Status[3]-before.Status[3], s.Status[1]-before.Status[1], b.hits.Load()-hits)
			}
		})
	}
}

// TestHTTP3Responses: every shape of backend response — chunked,
// with a trailer, closing its connection, bodiless, to a HEAD —
// reaches the client whole over every protocol, and a backend that
// dies with pooled connections is retried on the other.
func TestHTTP3Responses(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", responseShapes)
	l := addH3(t, ca, HTTPOptions{}, b)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			c := protoClient(t, proto, ca, nil, "")
			for _, tc := range []struct{ path, want string }{
				{"/chunked", "part1,part2"}, {"/trailer", "body"}, {"/close", "closing"}, {"/close", "closing"},
				{"/304", ""}, {"/204", ""}, {"/", "fixed"}, {"/", "fixed"},
			} {
				if resp, body := doProto(t, c, proto, newReq(t, httpsURL(l, tc.path))); resp.StatusCode >= 400 || body != tc.want {
					t.Errorf("GET %s = %d %q, want %q", tc.path, resp.StatusCode, body, tc.want)
				}
			}
			head := newReq(t, httpsURL(l, "/"))
			head.Method = http.MethodHead
			if resp, _ := doProto(t, c, proto, head); resp.StatusCode != 200 || resp.ContentLength != 5 {
				t.Errorf("HEAD = %d, Content-Length %d; want 200, 5", resp.StatusCode, resp.ContentLength)
			}

			lives, dies := startHTTPBackend(t, "lives", nil), startHTTPBackend(t, "dies", nil)
			l2 := addH3(t, ca, HTTPOptions{}, lives, dies)
			for range 4 {
				doProto(t, c, proto, newReq(t, httpsURL(l2, "/")))
			}
			dies.srv.Close() // killed mid-run, with pooled connections to it
			for i := range 10 {
				if resp, body := doProto(t, c, proto, newReq(t, httpsURL(l2, "/"))); resp.StatusCode != 200 || body != "lives" {
					t.Fatalf("GET %d after a backend died: %d %q", i, resp.StatusCode, body)
				}
			}
			if s := l2.Stats(); s.ConnectFailures == 0 {
				t.Error("no connect failure counted")
			}
		})
	}
	if s := l.Stats(); s.Status[3]+s.Status[4] != 0 {
		t.Errorf("Status %v, want no 4xx or 5xx", s.Status)
	}
}
