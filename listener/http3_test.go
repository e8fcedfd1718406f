package listener

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// tls13 returns a TLS policy with TLS 1.3, which HTTP/3 needs.
func tls13(t testing.TB) *tlspolicy.Policy {
	t.Helper()
	p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// protoClient returns a client of l speaking proto ("h1", "h2" or "h3")
// that trusts ca, names sni (default.test if empty) and presents cert
// if given; it closes with the test.
func protoClient(t *testing.T, proto string, ca *testCA, cert *tls.Certificate, sni string) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: cmpOr(sni, "default.test")}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	if sni != "" {
		cfg.InsecureSkipVerify = true // the test checks which certificate came
	}
	if proto == "h3" {
		// A short handshake timeout: a refused or stopped client fails
		// soon rather than at quic-go's 5 s.
		tr := &http3.Transport{TLSClientConfig: cfg, DisableCompression: true,
			QUICConfig: &quic.Config{HandshakeIdleTimeout: time.Second}}
		t.Cleanup(func() { tr.Close() })
		return &http.Client{Transport: tr, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	var protos http.Protocols
	protos.SetHTTP1(proto == "h1")
	protos.SetHTTP2(proto == "h2")
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: &protos, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var protoNames = map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2.0", "h3": "HTTP/3.0"}

// addH3 adds an HTTPS listener with HTTP/3 on over bs.
func addH3(t *testing.T, ca *testCA, opts HTTPOptions, bs ...*httpBackend) *Listener {
	t.Helper()
	opts.HTTP3 = true
	if opts.TLSPolicy == nil {
		opts.TLSPolicy = tls13(t)
	}
	return addHTTPS(t, ca, opts, bs...)
}

// doProto sends req through c and checks it went over proto.
func doProto(t *testing.T, c *http.Client, proto string, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", proto, req.URL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != protoNames[proto] {
		t.Fatalf("answered over %s, want %s", resp.Proto, protoNames[proto])
	}
	return resp, string(body)
}

func newReq(t *testing.T, url string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

// TestHTTP3Pipeline: what an HTTPS listener does to a request, it does
// over HTTP/1.1, HTTP/2 and HTTP/3 alike — headers, rules, cookie
// persistence, gzip, counters — and HTTP/1.1 and HTTP/2 responses
// advertise HTTP/3 on the listener's port.
func TestHTTP3Pipeline(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	big := strings.Repeat("compress me ", 200)
	mk := func(name string) *httpBackend {
		return startHTTPBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			if r.URL.Path == "/big" {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, big)
				return
			}
			io.WriteString(w, name)
		})
	}
	a, b, api := mk("a"), mk("b"), mk("api")
	opts := HTTPOptions{Options: httpproxy.Options{XForwardedProto: true,
		StickySession: &session.Config{Mode: session.Insert, CookieName: "lb"},
		Rules:         []Rule{{Host: "api.test", Path: "/", Group: newGroup(t, nil, api.backend(100))}},
	}}
	l := addH3(t, ca, opts, a, b)
	for _, proto := range []string{"h1", "h2", "h3"} {
		t.Run(proto, func(t *testing.T) {
			c := protoClient(t, proto, ca, nil, "")
			before := l.Stats()
			resp, body := doProto(t, c, proto, newReq(t, httpsURL(l, "/")))
			h, bproto := a.lastHeader()
			if body == "b" {
				h, bproto = b.lastHeader()
			}
			if bproto != "HTTP/1.1" || h.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("backend saw %s, X-Forwarded-Proto %q; want HTTP/1.1, https", bproto, h.Get("X-Forwarded-Proto"))
			}
			alt := resp.Header.Values("Alt-Svc")
			if want := `h3=":` + strconv.Itoa(l.Port()) + `"; ma=86400`; proto != "h3" && (len(alt) != 1 || alt[0] != want) {
				t.Errorf("Alt-Svc %q, want %q", alt, want)
			}
			if proto == "h3" && len(alt) != 0 {
				t.Errorf("HTTP/3 response carries Alt-Svc %q", alt)
			}
			// Cookie persistence: the cookie keeps the client on its backend.
			var cookie string
			for _, ck := range resp.Cookies() {
				if ck.Name == "lb" {
					cookie = ck.Name + "=" + ck.Value
				}
			}
			if cookie == "" {
				t.Fatalf("no persistence cookie: %v", resp.Header)
			}
			for range 4 {
				if _, again := doProto(t, c, proto, newReq(t, httpsURL(l, "/"), "Cookie", cookie)); again != body {
					t.Fatalf("with cookie %s: backend %q, want %q", cookie, again, body)
				}
			}
			// A forwarding rule by host.
			if _, got := doProto(t, c, proto, newReq(t, httpsURL(l, "/x"), "Host", "api.test")); got != "api" {
				t.Errorf("rule for api.test: backend %q", got)
			}
			// gzip.
			resp, got := doProto(t, c, proto, newReq(t, httpsURL(l, "/big"), "Accept-Encoding", "gzip"))
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader([]byte(got)))
			if err != nil {
				t.Fatal(err)
			}
			if plain, _ := io.ReadAll(zr); string(plain) != big {
				t.Errorf("gunzipped body of %d bytes, want %d", len(plain), len(big))
			}
			after := l.Stats()
			want := uint64(0)
			if proto == "h3" {
				want = 7
			}
			if n := after.HTTP3Requests - before.HTTP3Requests; n != want {
				t.Errorf("HTTP3Requests grew by %d, want %d", n, want)
			}
			if n := after.Status[1] - before.Status[1]; n != 7 {
				t.Errorf("2xx grew by %d, want 7", n)
			}
		})
	}
}

// TestHTTP3RequestTimeout: a backend slower than RequestTimeout is
// answered 504 on every protocol.
func TestHTTP3RequestTimeout(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	release := make(chan struct{})
	slow := startHTTPBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	l := addH3(t, ca, HTTPOptions{Options: httpproxy.Options{RequestTimeout: 50 * time.Millisecond}}, slow)
	for _, proto := range []string{"h1", "h2", "h3"} {
		t.Run(proto, func(t *testing.T) {
			resp, _ := doProto(t, protoClient(t, proto, ca, nil, ""), proto, newReq(t, httpsURL(l, "/")))
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 504", resp.StatusCode)
			}
		})
	}
}

// TestHTTP3SNIAndMutualTLS: certificates by SNI (a live edit included)
// and mutual TLS with its headers, over HTTP/3 as over TCP.
func TestHTTP3SNIAndMutualTLS(t *testing.T) {
	leaks(t)
	ca, clientCA, other := newCA(t, "ca"), newCA(t, "client-ca"), newCA(t, "other-ca")
	b := startHTTPBackend(t, "b", nil)
	l := addH3(t, ca, HTTPOptions{ClientCAs: clientCA.pool, Options: httpproxy.Options{ClientCertHeaders: true},
		Domains: map[string]*tls.Certificate{"*.example.com": ca.issue(t, "wide", "*.example.com")}}, b)
	alice := clientCA.issue(t, "alice")
	for _, proto := range []string{"h1", "h2", "h3"} {
		t.Run(proto, func(t *testing.T) {
			cn := func(sni string) string {
				resp, _ := doProto(t, protoClient(t, proto, ca, alice, sni), proto, newReq(t, httpsURL(l, "/")))
				return resp.TLS.PeerCertificates[0].Subject.CommonName
			}
			if got := cn("shop.example.com"); got != "wide" {
				t.Errorf("SNI shop.example.com: certificate %q, want wide", got)
			}
			if got := cn("other.test"); got != "default" {
				t.Errorf("SNI other.test: certificate %q, want default", got)
			}
			name := proto + ".example.com"
			if err := l.Certificates().Set(name, ca.issue(t, "exact-"+proto, name)); err != nil {
				t.Fatal(err)
			}
			if got := cn(name); got != "exact-"+proto {
				t.Errorf("after a live Set: certificate %q", got)
			}
			h, _ := b.lastHeader()
			if h.Get("X-Client-Cert-Subject-DN") != "CN=alice" || h.Get("X-Client-Cert-Verify") != tlspolicy.VerifySuccess {
				t.Errorf("client-certificate headers: %v", h)
			}
			for what, cert := range map[string]*tls.Certificate{"no certificate": nil, "other CA": other.issue(t, "mallory")} {
				if resp, err := protoClient(t, proto, ca, cert, "").Do(newReq(t, httpsURL(l, "/"))); err == nil {
					resp.Body.Close()
					t.Errorf("%s: request succeeded", what)
				}
			}
		})
	}
}

// TestHTTP3ACL: a refused client's QUIC handshake fails (the server
// answers its first packet with a CONNECTION_CLOSE), no request reaches
// a backend, and the refusal is counted.
func TestHTTP3ACL(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	l := addH3(t, ca, HTTPOptions{}, b)
	if err := l.SetACL(denyLoopback(t)); err != nil {
		t.Fatal(err)
	}
	_, err := protoClient(t, "h3", ca, nil, "").Do(newReq(t, httpsURL(l, "/")))
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.Remote || !te.ErrorCode.IsCryptoError() {
		t.Fatalf("refused client: %v, want the server's CONNECTION_CLOSE with a TLS alert", err)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend hit %d times", b.hits.Load())
	}
	if s := l.Stats(); s.RefusedACL != 1 || s.HTTP3Requests != 0 {
		t.Errorf("RefusedACL %d, HTTP3Requests %d; want 1, 0", s.RefusedACL, s.HTTP3Requests)
	}
	if err := l.SetACL(nil); err != nil {
		t.Fatal(err)
	}
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(l, "/"))); body != "b" {
		t.Errorf("allowed again: %q", body)
	}
}

// denyLoopback returns an ACL refusing 127.0.0.0/8, where the tests
// clients are.
func denyLoopback(t *testing.T) *acl.Policy {
	t.Helper()
	loopback, _ := acl.ParseEntries("127.0.0.0/8")
	grp, err := acl.NewGroup(acl.GroupConfig{Name: "loopback", Family: acl.IPv4}, loopback...)
	if err != nil {
		t.Fatal(err)
	}
	deny, err := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: acl.Blacklist})
	if err != nil {
		t.Fatal(err)
	}
	return deny
}

// TestHTTP3GracefulStop: Stop lets an HTTP/3 request in flight finish;
// afterwards new QUIC connections fail.
func TestHTTP3GracefulStop(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	entered, release := make(chan struct{}), make(chan struct{})
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "done")
	})
	l := addH3(t, ca, HTTPOptions{}, b)
	url := httpsURL(l, "/")
	got := make(chan string, 1)
	c := protoClient(t, "h3", ca, nil, "")
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(body)
	}()
	select {
	case <-entered:
	case g := <-got:
		t.Fatalf("the request ended before reaching the backend: %q", g)
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend in 10 s")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- l.Stop(ctx)
	}()
	close(release)
	if g := recvWithin(t, got, 15*time.Second, "the in-flight request's answer"); g != "done" {
		t.Fatalf("in-flight request: %q, want done", g)
	}
	if err := recvWithin(t, stopped, 20*time.Second, "Stop to return"); err != nil {
		t.Fatal(err)
	}
	if resp, err := protoClient(t, "h3", ca, nil, "").Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a new QUIC connection was served after Stop")
	}
}

// TestHTTP3ConfigErrors: HTTP3 is for https with TLS 1.3, and a live
// policy change without TLS 1.3 is refused while it is on.
func TestHTTP3ConfigErrors(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	in := newInstance(t)
	g := newGroup(t, nil, b.backend(100))
	cert := ca.issue(t, "default", "default.test")
	p12, _ := tlspolicy.Lookup(tlspolicy.Policy12)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"http", Config{Protocol: HTTP, Group: g, HTTP: HTTPOptions{HTTP3: true}}, `listener: HTTP.HTTP3 "http": HTTP/3 is for https listeners`},
		{"default policy", Config{Protocol: HTTPS, Group: g, HTTP: HTTPOptions{HTTP3: true, Certificate: cert}}, `HTTP.TLSPolicy "tls_cipher_policy_1_0": HTTP/3 needs TLS 1.3`},
		{"1.2 policy", Config{Protocol: HTTPS, Group: g, HTTP: HTTPOptions{HTTP3: true, Certificate: cert, TLSPolicy: p12}}, `HTTP.TLSPolicy "tls_cipher_policy_1_2": HTTP/3 needs TLS 1.3`},
		{"negative MaxQUICHandshakes", Config{Protocol: HTTPS, Group: g, HTTP: HTTPOptions{HTTP3: true, Certificate: cert, TLSPolicy: tls13(t), MaxQUICHandshakes: -1}}, `listener: HTTP.MaxQUICHandshakes -1: negative`},
		{"MaxQUICHandshakes without HTTP3", Config{Protocol: HTTPS, Group: g, HTTP: HTTPOptions{Certificate: cert, MaxQUICHandshakes: 10}}, `listener: HTTP.MaxQUICHandshakes 10: needs HTTP3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Host = "127.0.0.1"
			if _, err := in.Add(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	l := addH3(t, ca, HTTPOptions{}, b)
	if err := l.SetTLSPolicy(p12); err == nil || !strings.Contains(err.Error(), "HTTP/3 needs TLS 1.3") {
		t.Errorf("SetTLSPolicy(1.2) with HTTP3: %v", err)
	}
	// The refused policy did not apply: TLS 1.3 still works over TCP too.
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(l, "/"))); body != "b" {
		t.Errorf("after the refused change: %q", body)
	}
}

// TestHTTP3PortClash: a UDP listener and an HTTPS listener with HTTP/3
// of one instance cannot share a port, in either order; without HTTP/3
// they can.
func TestHTTP3PortClash(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	g := newGroup(t, nil, b.backend(100))
	h3cfg := func(port int, on bool) Config {
		c := Config{Protocol: HTTPS, Host: "127.0.0.1", Port: port, Group: g,
			HTTP: HTTPOptions{HTTP3: on, Certificate: ca.issue(t, "default", "default.test")}}
		if on {
			c.HTTP.TLSPolicy = tls13(t)
		}
		return c
	}
	udpCfg := func(port int) Config {
		return Config{Protocol: UDP, Host: "127.0.0.1", Port: port, Group: newGroup(t, nil, b.backend(100))}
	}
	port := freePort(t)
	in := newInstance(t)
	addListener(t, in, h3cfg(port, true))
	if _, err := in.Add(udpCfg(port)); !errors.Is(err, ErrExists) {
		t.Errorf("udp after https+h3: %v, want ErrExists", err)
	}
	in2 := newInstance(t)
	port2 := freePort(t)
	addListener(t, in2, udpCfg(port2))
	if _, err := in2.Add(h3cfg(port2, true)); !errors.Is(err, ErrExists) {
		t.Errorf("https+h3 after udp: %v, want ErrExists", err)
	}
	addListener(t, in2, h3cfg(port2, false))
}

// freePort returns a port free for TCP and UDP on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
}

// TestHTTP3Takeover: Apply replacing an HTTPS listener with HTTP/3 by
// another on the same port takes over its UDP socket as well as its TCP
// one, and Files lists the UDP socket after the TCP one.
func TestHTTP3Takeover(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	a, b := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil)
	in := newInstance(t)
	port := freePort(t)
	cfg := func(name string, be *httpBackend) Config {
		return Config{Name: name, Protocol: HTTPS, Host: "127.0.0.1", Port: port, Group: newGroup(t, nil, be.backend(100)),
			HTTP: HTTPOptions{HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test")}}
	}
	old := addListener(t, in, cfg("old", a))
	fs, err := old.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("Files: %d, want 2", len(fs))
	}
	for i, want := range []string{"tcp", "udp"} {
		var network string
		if ln, err := net.FileListener(fs[i]); err == nil {
			network = ln.Addr().Network()
			ln.Close()
		} else if pc, err := net.FilePacketConn(fs[i]); err == nil {
			network = pc.LocalAddr().Network()
			pc.Close()
		}
		fs[i].Close()
		if network != want {
			t.Errorf("Files()[%d] is %q, want %s", i, network, want)
		}
	}
	// A port bound by another process is the test of a takeover: Apply
	// would fail if it bound the UDP port anew while old holds it.
	replaceH3(t, in, ca, old, cfg("new", b))
}

// replaceH3 checks that old, named "old", answers "a" over HTTP/3,
// replaces it in one Apply by a listener of cfg, named "new", checks that
// this one answers "b" over HTTP/3, and returns it.
func replaceH3(t *testing.T, in *Instance, ca *testCA, old *Listener, cfg Config) *Listener {
	t.Helper()
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(old, "/"))); body != "a" {
		t.Fatalf("before: %q", body)
	}
	if _, err := in.Apply(within(t, 30*time.Second), Change{Remove: []string{"old"}, Add: []Config{cfg}}); err != nil {
		t.Fatal(err)
	}
	nl, _ := in.Listener("new")
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(nl, "/"))); body != "b" {
		t.Errorf("after: %q, want b", body)
	}
	return nl
}

// TestHTTP3RequestLimit: HTTP2MaxRequestsPerConnection applies to
// HTTP/3: the connection gets a GOAWAY at its limit, and the client
// opens the next on a new connection, with no stream rejected.
func TestHTTP3RequestLimit(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	l := addH3(t, ca, HTTPOptions{HTTP2MaxRequestsPerConnection: 2}, b)
	c := protoClient(t, "h3", ca, nil, "")
	for i := range 5 {
		if _, body := doProto(t, c, "h3", newReq(t, httpsURL(l, "/"))); body != "b" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	s := l.Stats()
	if s.New != 3 || b.hits.Load() != 5 {
		t.Errorf("%d connections, %d requests at the backend; want 3, 5", s.New, b.hits.Load())
	}
	if s.HTTP3Requests != 5 { // the GOAWAY at the limit: no stream rejected
		t.Errorf("HTTP3Requests %d, want 5", s.HTTP3Requests)
	}
}

// TestHTTP3HandedListener: an HTTPS listener handed its TCP socket
// (Config.Listener) binds the UDP one of HTTP/3 on the same address.
func TestHTTP3HandedListener(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := addListener(t, newInstance(t), Config{Protocol: HTTPS, Listener: ln, Group: newGroup(t, nil, b.backend(100)),
		HTTP: HTTPOptions{HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test")}})
	addrs := l.Addrs()
	if len(addrs) != 2 || addrs[1].Network() != "udp" || addrs[1].String() != ln.Addr().String() {
		t.Fatalf("Addrs %v, want the TCP address, then UDP on the same one", addrs)
	}
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(l, "/"))); body != "b" {
		t.Errorf("over HTTP/3: %q", body)
	}
}

// TestHTTP3Hash: request-aware hashing places a request by its header
// alike over HTTP/1.1 (the fast lane), HTTP/2 and HTTP/3.
func TestHTTP3Hash(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	var members []balancer.Backend
	for _, name := range []string{"a", "b", "c", "d"} {
		members = append(members, startHTTPBackend(t, name, nil).backend(100))
	}
	g := newGroup(t, balancer.Maglev{By: balancer.HashKey}, members...)
	l := addListener(t, newInstance(t), Config{Protocol: HTTPS, Group: g, HTTP: HTTPOptions{
		HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test"),
		Options: httpproxy.Options{HashBy: HashPolicy{Header: "X-User"}},
	}})
	placed := map[string]map[string]bool{} // user -> backends over all protocols
	for _, proto := range []string{"h1", "h2", "h3"} {
		c := protoClient(t, proto, ca, nil, "")
		for i := range 16 {
			user := "user-" + strconv.Itoa(i)
			_, got := doProto(t, c, proto, newReq(t, httpsURL(l, "/"), "X-User", user))
			if placed[user] == nil {
				placed[user] = map[string]bool{}
			}
			placed[user][got] = true
		}
	}
	spread := map[string]bool{}
	for user, got := range placed {
		if len(got) != 1 {
			t.Errorf("%s went to %v over h1, h2 and h3", user, got)
		}
		for b := range got {
			spread[b] = true
		}
	}
	if len(spread) < 2 {
		t.Errorf("16 users all on %v: the header was not hashed", spread)
	}
}

// An HTTPS listener with HTTP3 serves on a handed TCP and UDP socket
// pair (as a successor process inherits them), and refuses a UDP socket
// alone, on another address, or without HTTP3.
func TestHTTP3HandedSockets(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	pair := func() (*net.TCPListener, *net.UDPConn) {
		ln, pc, err := bindTwins("127.0.0.1", func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close(); pc.Close() })
		return ln, pc
	}
	opts := func(h3 bool) HTTPOptions {
		return HTTPOptions{HTTP3: h3, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test")}
	}
	in := newInstance(t)
	ln, pc := pair()
	l := addListener(t, in, Config{Protocol: HTTPS, Listener: ln, PacketConn: pc, Group: newGroup(t, nil, b.backend(100)), HTTP: opts(true)})
	if got := l.Addrs(); len(got) != 2 || got[1].String() != pc.LocalAddr().String() {
		t.Fatalf("Addrs %v, want the handed TCP and UDP addresses", got)
	}
	if _, body := doProto(t, protoClient(t, "h3", ca, nil, ""), "h3", newReq(t, httpsURL(l, "/"))); body != "b" {
		t.Errorf("over HTTP/3 on the handed UDP socket: %q", body)
	}

	_, pc2 := pair()
	ln3, pc3 := pair()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"without HTTP3", Config{Protocol: HTTPS, Listener: ln3, PacketConn: pc3, HTTP: opts(false)}, "only for udp listeners"},
		{"alone", Config{Protocol: HTTPS, PacketConn: pc3, HTTP: opts(true)}, "beside a handed Listener"},
		{"another address", Config{Protocol: HTTPS, Listener: ln3, PacketConn: pc2, HTTP: opts(true)}, "HTTP/3 serves the Listener's address"},
	} {
		tc.cfg.Group = newGroup(t, nil, b.backend(100))
		if _, err := in.Add(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
