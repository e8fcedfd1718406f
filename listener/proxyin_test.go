package listener

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	proxyproto "github.com/pires/go-proxyproto"
)

// The front balancer of these tests is the test itself on 127.0.0.1,
// writing PROXY headers with go-proxyproto; the clients it names are
// documentation addresses that never connect.
var (
	loopback   = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere  = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	realClient = netip.MustParseAddrPort("203.0.113.7:4242")
	frontVIP   = netip.MustParseAddrPort("198.51.100.1:443")
)

// proxyHeader is the header a front balancer writes for client src that
// connected to dst, in version v.
func proxyHeader(t *testing.T, v byte, src, dst netip.AddrPort) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(v, net.TCPAddrFromAddrPort(src), net.TCPAddrFromAddrPort(dst))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialWith connects to addr and writes b, the front balancer's header
// with what follows it, in one write: as a balancer sends it.
func dialWith(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// proxyBackend is a TCP backend that reads the PROXY header the listener
// sends (ProxyProtocol) and reports, per connection, the client it names
// and the first line of the stream after it.
type proxyBackend struct {
	ln   net.Listener
	seen chan string
	wg   sync.WaitGroup
}

func startProxyBackend(t *testing.T) *proxyBackend {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &proxyBackend{ln: &proxyproto.Listener{Listener: raw}, seen: make(chan string, 16)}
	b.wg.Go(func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				b.seen <- c.RemoteAddr().String() + " " + strings.TrimSpace(line)
			})
		}
	})
	t.Cleanup(func() { b.ln.Close(); b.wg.Wait() })
	return b
}

func (b *proxyBackend) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-b.seen:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the backend saw no connection")
		return ""
	}
}

// TestTCPAcceptProxy: a trusted balancer's header, v1 or v2, names the
// client the backend's own PROXY header carries, and the bytes that came
// in the same segment as the header reach the backend after it. A LOCAL
// command (the front's health check) is the front itself; an untrusted
// peer's header is not read at all and reaches the backend as its data.
func TestTCPAcceptProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		from []netip.Prefix
		head func(t *testing.T) []byte
		want func(c net.Conn) string
	}{
		{"v1", loopback, func(t *testing.T) []byte { return proxyHeader(t, 1, realClient, frontVIP) },
			func(net.Conn) string { return realClient.String() + " hello" }},
		{"v2", loopback, func(t *testing.T) []byte { return proxyHeader(t, 2, realClient, frontVIP) },
			func(net.Conn) string { return realClient.String() + " hello" }},
		{"v2 LOCAL", loopback, func(t *testing.T) []byte {
			b, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
			return b
		}, func(c net.Conn) string { return c.LocalAddr().String() + " hello" }},
		{"v1 UNKNOWN", loopback, func(t *testing.T) []byte { return []byte("PROXY UNKNOWN\r\n") },
			func(c net.Conn) string { return c.LocalAddr().String() + " hello" }},
		{"v2 unix", loopback, func(t *testing.T) []byte {
			b, _ := (&proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UnixStream,
				SourceAddr: &net.UnixAddr{Net: "unix", Name: "/run/a"}, DestinationAddr: &net.UnixAddr{Net: "unix", Name: "/run/b"}}).Format()
			return b
		}, func(c net.Conn) string { return c.LocalAddr().String() + " hello" }},
		{"untrusted", elsewhere, func(t *testing.T) []byte { return proxyHeader(t, 1, realClient, frontVIP) },
			func(c net.Conn) string {
				return c.LocalAddr().String() + " PROXY TCP4 203.0.113.7 198.51.100.1 4242 443"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks(t)
			back := startProxyBackend(t)
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: TCP, ProxyProtocol: 2, AcceptProxy: AcceptProxy{From: tc.from, Required: true},
				Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: back.ln.Addr().String(), Weight: 100})})
			c := dialWith(t, listenerAddr(l), append(tc.head(t), "hello\n"...))
			if got, want := back.next(t), tc.want(c); got != want {
				t.Errorf("backend saw %q, want %q", got, want)
			}
		})
	}
}

// TestTCPAcceptProxyACL: the ACL checks the client the header names, not
// the front balancer, which needs no entry of its own.
func TestTCPAcceptProxyACL(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	pol := ipv4Policy(t, acl.Whitelist, "203.0.113.0/24")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, ACL: pol, AcceptProxy: AcceptProxy{From: loopback},
		Group: newGroup(t, nil, b.backend(100))})

	c := dialWith(t, listenerAddr(l), proxyHeader(t, 2, realClient, frontVIP))
	if name, err := bufio.NewReader(c).ReadString('\n'); err != nil || name != "b\n" {
		t.Errorf("allowed client: greeting %q, %v; want b", name, err)
	}
	denied := netip.MustParseAddrPort("192.0.2.9:5555")
	c = dialWith(t, listenerAddr(l), proxyHeader(t, 1, denied, frontVIP))
	if n, err := c.Read(make([]byte, 8)); err == nil {
		t.Errorf("denied client read %d bytes, want the connection reset", n)
	}
	if st := l.Stats(); st.RefusedACL != 1 || b.accepted.Load() != 1 {
		t.Errorf("RefusedACL = %d, backend connections = %d; want 1, 1", st.RefusedACL, b.accepted.Load())
	}
}

// TestTCPAcceptProxySCH: sch places each real client by its own address:
// the same client through any front connection lands on one backend, and
// the clients spread over the backends, which they could not while every
// connection came from the front's address.
func TestTCPAcceptProxySCH(t *testing.T) {
	leaks(t)
	var members []balancer.Backend
	for _, n := range []string{"a", "b", "c", "d"} {
		members = append(members, startEcho(t, n).backend(100))
	}
	g := newGroup(t, balancer.Maglev{By: balancer.HashSourceIP}, members...)
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, AcceptProxy: AcceptProxy{From: loopback}, Group: g})
	names := map[string]bool{}
	for i := range 16 {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 1000)
		var first string
		for j := range 2 {
			c := dialWith(t, listenerAddr(l), proxyHeader(t, 2, netip.AddrPortFrom(client.Addr(), uint16(1000+j)), frontVIP))
			name, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			want := mustPick(t, g, client.Addr())
			if name = strings.TrimSpace(name); name != want || j > 0 && name != first {
				t.Errorf("client %v (connection %d) went to %s, want %s", client.Addr(), j, name, want)
			}
			first = name
			names[name] = true
		}
	}
	if len(names) < 2 {
		t.Errorf("16 clients all went to %v, want them spread by their address", names)
	}
}

// mustPick is the backend g's scheduler picks for a client at src.
func mustPick(t *testing.T, g *balancer.Group, src netip.Addr) string {
	t.Helper()
	p, err := g.Pick(balancer.Key{Src: netip.AddrPortFrom(src, 1), Dst: frontVIP})
	if err != nil {
		t.Fatal(err)
	}
	p.Done(balancer.DoneInfo{})
	return p.Member.ID()
}

// TestTCPAcceptProxyRefused: a trusted peer's header that is malformed,
// or missing where required, or not there when the wait ends, resets the
// connection before any backend is contacted; without Required, a peer
// that sends none is taken as it is, at once if it speaks or once the
// wait ends if it waits for the server.
func TestTCPAcceptProxyRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		required bool
		expired  bool // the wait has ended when the peer connects
		send     string
		refused  bool
	}{
		{"garbage v1", false, false, "PROXY GARBAGE 1 2 3\r\nhello\n", true},
		{"v1 without CRLF", false, false, "PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\nhello\n", true},
		{"bad v2 version", false, false, "\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + strings.Repeat("\x00", 12), true},
		{"none, required", true, false, "hello\n", true},
		{"none, optional", false, false, "hello\n", false},
		{"silent, required", true, true, "", true},
		{"silent, optional", false, true, "", false},
		{"half a v1 line", false, false, "PROXY TCP4 203.0", true}, // a v1 line comes in one segment
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks(t)
			accept := AcceptProxy{From: loopback, Required: tc.required}
			if tc.expired { // an hour's wait, over at accept
				accept.Timeout = time.Hour
				accept.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
			}
			b := startEcho(t, "b")
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: TCP, AcceptProxy: accept, Group: newGroup(t, nil, b.backend(100))})
			// A reset may come before the dial returns.
			var greeting string
			c, err := net.Dial("tcp", listenerAddr(l))
			if err == nil {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, tc.send)
				greeting, err = bufio.NewReader(c).ReadString('\n')
			}
			if tc.refused {
				if err == nil {
					t.Errorf("read %q, want the connection reset", greeting)
				}
				if st := l.Stats(); st.ProxyRefused != 1 || b.accepted.Load() != 0 {
					t.Errorf("ProxyRefused = %d, backend connections = %d; want 1, 0", st.ProxyRefused, b.accepted.Load())
				}
				return
			}
			if greeting != "b\n" || err != nil {
				t.Errorf("greeting %q, %v; want b", greeting, err)
			}
			if st := l.Stats(); st.ProxyRefused != 0 {
				t.Errorf("ProxyRefused = %d, want 0", st.ProxyRefused)
			}
		})
	}
}

// TestTCPAcceptProxySilentPeer: a trusted peer that sends nothing holds
// its own connection's goroutine only: the accept loop goes on serving
// others while it waits, and stopping the listener ends the wait.
func TestTCPAcceptProxySilentPeer(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, AcceptProxy: AcceptProxy{From: loopback, Required: true, Timeout: time.Hour},
		Group: newGroup(t, nil, b.backend(100))})
	silent := dialWith(t, listenerAddr(l), nil)
	c := dialWith(t, listenerAddr(l), proxyHeader(t, 1, realClient, frontVIP))
	if name, err := bufio.NewReader(c).ReadString('\n'); err != nil || name != "b\n" {
		t.Fatalf("a client behind a silent one: greeting %q, %v; want b", name, err)
	}
	c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a hard stop: cut everything at once
	l.Stop(ctx)
	if n, err := silent.Read(make([]byte, 1)); err == nil {
		t.Errorf("the silent peer read %d bytes after Stop, want its connection closed", n)
	}
}

func TestAcceptProxyConfig(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:1", Weight: 100})
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"udp", Config{Protocol: UDP, Port: 80, Group: g, AcceptProxy: AcceptProxy{From: loopback}}, "AcceptProxy"},
		{"bad prefix", Config{Protocol: TCP, Port: 80, Group: g, AcceptProxy: AcceptProxy{From: []netip.Prefix{{}}}}, "AcceptProxy.From[0]"},
		{"required without from", Config{Protocol: TCP, Port: 80, Group: g, AcceptProxy: AcceptProxy{Required: true}}, "AcceptProxy.From"},
		{"negative timeout", Config{Protocol: HTTP, Port: 80, Group: g, AcceptProxy: AcceptProxy{From: loopback, Timeout: -time.Second}}, "AcceptProxy.Timeout"},
		{"bad trusted proxy", Config{Protocol: HTTP, Port: 80, Group: g, HTTP: HTTPOptions{Options: httpOptionsTrusting(netip.Prefix{})}}, "HTTP.TrustedProxies[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.effective()
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tc.field {
				t.Errorf("effective() = %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

// TestHTTPAcceptProxy: behind a trusted balancer's header, both lanes,
// on HTTP and HTTPS (HTTP/1.1 and HTTP/2), send the backend the real
// client in X-Forwarded-For and X-Forwarded-Client-srcport, the address
// it reached in X-Forwarded-Port, and name it in the access log; a
// request that came in the header's segment is served.
func TestHTTPAcceptProxy(t *testing.T) {
	for _, tc := range []struct {
		lane  string
		proto Protocol
		h2    bool
	}{
		{"fast", HTTP, false}, {"net/http", HTTP, false}, {"fast", HTTPS, false}, {"net/http", HTTPS, true},
	} {
		for _, v := range []byte{1, 2} {
			name := tc.lane + "/" + string(tc.proto) + "/v" + strconv.Itoa(int(v))
			if tc.h2 {
				name += "/h2"
			}
			t.Run(name, func(t *testing.T) {
				leaks(t)
				useLane(t, tc.lane)
				var log bytes.Buffer
				var logMu sync.Mutex
				b := startHTTPBackend(t, "b", nil)
				cfg := Config{Protocol: tc.proto, AcceptProxy: AcceptProxy{From: loopback, Required: true}}
				cfg.HTTP.XForwardedClientSrcPort, cfg.HTTP.XForwardedPort = true, true
				cfg.HTTP.AccessLog = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &log}, nil))
				var pool *x509Pool
				if tc.proto == HTTPS {
					cert, p := testCert(t)
					cfg.HTTP.Certificate, pool = cert, p
				}
				l := addHTTP(t, cfg, b)
				c := dialWith(t, listenerAddr(l), proxyHeader(t, v, realClient, frontVIP))
				var resp *http.Response
				var err error
				if tc.proto == HTTPS {
					resp, err = tlsGet(t, c, pool, tc.h2)
				} else {
					resp, err = rawGet(c, bufio.NewReader(c), "/")
				}
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("GET: %v %v", resp, err)
				}
				h, _ := b.lastHeader()
				if got := h.Get("X-Forwarded-For") + " " + h.Get("X-Forwarded-Client-Srcport") + " " + h.Get("X-Forwarded-Port"); got != "203.0.113.7 4242 443" {
					t.Errorf("backend saw X-Forwarded-For, -Client-srcport, -Port %q, want 203.0.113.7 4242 443", got)
				}
				logMu.Lock()
				defer logMu.Unlock()
				if !strings.Contains(log.String(), "client=203.0.113.7:4242") {
					t.Errorf("access log %q does not name the client 203.0.113.7:4242", log.String())
				}
				if fast := served(l); (fast > 0) != (tc.lane == "fast" && !tc.h2) {
					t.Errorf("the fast lane served %d requests", fast)
				}
			})
		}
	}
}

// TestHTTPAcceptProxyACL: an HTTP listener's ACL denies the real client
// the header names, while the front balancer's address is in no list.
func TestHTTPAcceptProxyACL(t *testing.T) {
	for _, lane := range []string{"fast", "net/http"} {
		t.Run(lane, func(t *testing.T) {
			leaks(t)
			useLane(t, lane)
			b := startHTTPBackend(t, "b", nil)
			pol := ipv4Policy(t, acl.Whitelist, "203.0.113.0/24")
			l := addHTTP(t, Config{ACL: pol, AcceptProxy: AcceptProxy{From: loopback}}, b)
			for _, tc := range []struct {
				client netip.AddrPort
				code   int
			}{{realClient, 200}, {netip.MustParseAddrPort("192.0.2.9:5555"), 403}} {
				c := dialWith(t, listenerAddr(l), proxyHeader(t, 2, tc.client, frontVIP))
				resp, err := rawGet(c, bufio.NewReader(c), "/")
				if err != nil || resp.StatusCode != tc.code {
					t.Errorf("client %v: %v %v, want %d", tc.client, resp, err, tc.code)
				}
			}
			if b.hits.Load() != 1 {
				t.Errorf("backend hits = %d, want 1", b.hits.Load())
			}
		})
	}
}

// TestHTTPAcceptProxyParks: a plain-HTTP connection that came with a
// PROXY header is still served by the fast lane and parks while idle.
func TestHTTPAcceptProxyParks(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{AcceptProxy: AcceptProxy{From: loopback}}, b)
	parked := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.srv.(httpServer).Parked()
	}
	c := dialWith(t, listenerAddr(l), append(proxyHeader(t, 2, realClient, frontVIP), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"...))
	br := bufio.NewReader(c)
	for i := range 3 {
		if i > 0 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		eventually(t, "the idle connection to park", func() bool { return parked() == 1 })
	}
	if served(l) != 3 {
		t.Errorf("the fast lane served %d of 3 requests", served(l))
	}
	if h, _ := b.lastHeader(); h.Get("X-Forwarded-For") != "203.0.113.7" {
		t.Errorf("X-Forwarded-For after parking = %q, want 203.0.113.7", h.Get("X-Forwarded-For"))
	}
}

// ipv4Policy is an IPv4 ACL of one entry in mode.
func ipv4Policy(t *testing.T, mode acl.Mode, entry string) *acl.Policy {
	t.Helper()
	grp, _ := acl.NewGroup(acl.GroupConfig{Name: "clients", Family: acl.IPv4})
	e, err := acl.ParseEntry(entry)
	if err != nil {
		t.Fatal(err)
	}
	grp.Add(e)
	pol, err := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: mode, Family: acl.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// useLane runs the rest of the test in the fast lane or, for any other
// name, net/http's.
func useLane(t *testing.T, lane string) {
	noFastLane = lane != "fast"
	t.Cleanup(func() { noFastLane = false })
}

// lockedWriter serializes writes to a buffer the test reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

type x509Pool = x509.CertPool

func testCert(t *testing.T) (*tls.Certificate, *x509Pool) {
	ca := newCA(t, "proxyin test CA")
	return ca.issue(t, "x", "x"), ca.pool
}

// httpOptionsTrusting are proxy options trusting X-Forwarded-For from ps.
func httpOptionsTrusting(ps ...netip.Prefix) httpproxy.Options {
	return httpproxy.Options{TrustedProxies: ps}
}

// tlsGet does a TLS handshake over c, offering HTTP/2 if h2, and GETs /.
func tlsGet(t *testing.T, c net.Conn, pool *x509Pool, h2 bool) (*http.Response, error) {
	t.Helper()
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2"}
	}
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "x", NextProtos: protos})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialTLSContext:    func(context.Context, string, string) (net.Conn, error) { return tc, nil },
		ForceAttemptHTTP2: h2,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://x/")
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if h2 && resp.ProtoMajor != 2 {
		t.Errorf("proto %s, want HTTP/2", resp.Proto)
	}
	return resp, nil
}

// TestHTTPTrustedProxies: from a peer in TrustedProxies, the client is
// the right-most X-Forwarded-For entry that is not a trusted proxy: the
// backend's X-Forwarded-For ends with it, the ACL checks it and the
// access log names it. From any other peer the field is appended to.
func TestHTTPTrustedProxies(t *testing.T) {
	for _, lane := range []string{"fast", "net/http"} {
		t.Run(lane, func(t *testing.T) {
			leaks(t)
			useLane(t, lane)
			b := startHTTPBackend(t, "b", nil)
			pol := ipv4Policy(t, acl.Blacklist, "192.0.2.0/24")
			var log bytes.Buffer
			var logMu sync.Mutex
			cfg := Config{ACL: pol}
			cfg.HTTP.Options = httpOptionsTrusting(loopback[0], elsewhere[0])
			cfg.HTTP.AccessLog = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &log}, nil))
			trusting := addHTTP(t, cfg, b)
			cfg.HTTP.Options = httpOptionsTrusting(elsewhere[0])
			cfg.HTTP.AccessLog = nil
			wary := addHTTP(t, cfg, b)
			c := newClient(t)

			if code, _, _ := get(t, c, httpURL(trusting, "/"), "X-Forwarded-For", "203.0.113.1, 198.51.100.9, 10.2.2.2"); code != 200 {
				t.Fatalf("status %d, want 200", code)
			}
			if h, _ := b.lastHeader(); h.Get("X-Forwarded-For") != "203.0.113.1, 198.51.100.9" {
				t.Errorf("backend's X-Forwarded-For %q, want it cut after the client: 203.0.113.1, 198.51.100.9", h.Get("X-Forwarded-For"))
			}
			logMu.Lock()
			if !strings.Contains(log.String(), "client=198.51.100.9 ") {
				t.Errorf("access log %q does not name the client 198.51.100.9", log.String())
			}
			logMu.Unlock()
			if code, _, _ := get(t, c, httpURL(trusting, "/"), "X-Forwarded-For", "192.0.2.7"); code != 403 {
				t.Errorf("a blocked client behind a trusted proxy: status %d, want 403", code)
			}

			if code, _, _ := get(t, c, httpURL(wary, "/"), "X-Forwarded-For", "192.0.2.7"); code != 200 {
				t.Errorf("an untrusted peer naming a blocked client: status %d, want 200", code)
			}
			if h, _ := b.lastHeader(); h.Get("X-Forwarded-For") != "192.0.2.7, 127.0.0.1" {
				t.Errorf("backend's X-Forwarded-For %q, want it appended to: 192.0.2.7, 127.0.0.1", h.Get("X-Forwarded-For"))
			}
			if b.hits.Load() != 2 {
				t.Errorf("backend hits = %d, want 2", b.hits.Load())
			}
		})
	}
}

// TestHTTPAcceptProxyRefused: on an HTTP listener a trusted peer's
// malformed header resets its connection, counted; an untrusted peer's
// header is not read, and is a malformed request for net/http.
func TestHTTPAcceptProxyRefused(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	trusting := addHTTP(t, Config{AcceptProxy: AcceptProxy{From: loopback}}, b)
	c := dialWith(t, listenerAddr(trusting), []byte("PROXY TCP4 203.0.113.7\r\n"+get))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Errorf("a malformed header got %d, want the connection reset", resp.StatusCode)
	}
	if st := trusting.Stats(); st.ProxyRefused != 1 {
		t.Errorf("ProxyRefused = %d, want 1", st.ProxyRefused)
	}
	wary := addHTTP(t, Config{AcceptProxy: AcceptProxy{From: elsewhere}}, b)
	c = dialWith(t, listenerAddr(wary), append(proxyHeader(t, 1, realClient, frontVIP), get...))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 400 {
		t.Errorf("an untrusted peer's header: %v %v, want 400", resp, err)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend hits = %d, want 0", b.hits.Load())
	}
}
