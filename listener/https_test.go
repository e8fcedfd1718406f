package listener

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/tlspolicy"
)

// testCA is a throwaway certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial atomic.Int64

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns an ECDSA P-256 certificate signed by ca: a server
// certificate for dnsNames, or a client certificate for cn when dnsNames
// is empty.
func (ca *testCA) issue(t testing.TB, cn string, dnsNames ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(dnsNames) == 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// httpsClient trusts ca and, if given, presents cert.
func httpsClient(t *testing.T, ca *testCA, cert *tls.Certificate, h2 bool) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "default.test"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func httpsURL(l *Listener, path string) string { return "https://" + listenerAddr(l) + path }

func addHTTPS(t *testing.T, ca *testCA, opts HTTPOptions, bs ...*httpBackend) *Listener {
	t.Helper()
	if opts.Certificate == nil {
		opts.Certificate = ca.issue(t, "default", "default.test")
	}
	return addHTTP(t, Config{Protocol: HTTPS, HTTP: opts}, bs...)
}

func TestHTTPSProxy(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	for _, tt := range []struct {
		name      string
		noHTTP2   bool
		wantProto string
	}{
		{"h2", false, "HTTP/2.0"},
		{"h2 off", true, "HTTP/1.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := addHTTPS(t, ca, HTTPOptions{NoHTTP2: tt.noHTTP2, Options: httpproxy.Options{XForwardedProto: true}}, b)
			c := httpsClient(t, ca, nil, true)
			resp, err := c.Get(httpsURL(l, "/"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != tt.wantProto || string(body) != "b" {
				t.Errorf("client got %s %q, want %s b", resp.Proto, body, tt.wantProto)
			}
			h, proto := b.lastHeader()
			if proto != "HTTP/1.1" || h.Get("X-Forwarded-Proto") != "https" {
				t.Errorf("backend saw %s, X-Forwarded-Proto %q; want HTTP/1.1, https", proto, h.Get("X-Forwarded-Proto"))
			}
		})
	}
}

// serverName handshakes with l for SNI name and returns the certificate's
// first DNS name.
func serverName(t *testing.T, l *Listener, ca *testCA, sni string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", listenerAddr(l), &tls.Config{RootCAs: ca.pool, ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %q: %v", sni, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].DNSNames[0]
}

func TestHTTPSSNI(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	l := addHTTPS(t, ca, HTTPOptions{Domains: map[string]*tls.Certificate{
		"www.example.com":      ca.issue(t, "exact", "www.example.com"),
		"*.market.example.com": ca.issue(t, "narrow", "*.market.example.com"),
		"*.example.com":        ca.issue(t, "wide", "*.example.com"),
	}}, b)
	tests := []struct{ sni, want string }{
		{"www.example.com", "www.example.com"},
		{"info.market.example.com", "*.market.example.com"},
		{"shop.example.com", "*.example.com"},
		{"other.test", "default.test"},
		{"", "default.test"},
	}
	for _, tt := range tests {
		if got := serverName(t, l, ca, tt.sni); got != tt.want {
			t.Errorf("SNI %q got the certificate for %q, want %q", tt.sni, got, tt.want)
		}
	}
	// Live add, edit and delete.
	sel := l.Certificates()
	if err := sel.Set("api.test", ca.issue(t, "api", "api.test")); err != nil {
		t.Fatal(err)
	}
	if got := serverName(t, l, ca, "api.test"); got != "api.test" {
		t.Errorf("after Set: %q", got)
	}
	if err := sel.Delete("www.example.com"); err != nil {
		t.Fatal(err)
	}
	if got := serverName(t, l, ca, "www.example.com"); got != "*.example.com" {
		t.Errorf("after Delete: %q, want the wildcard", got)
	}
	if err := sel.Set("api.test", ca.issue(t, "api2", "api.test", "api2.test")); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", listenerAddr(l), &tls.Config{RootCAs: ca.pool, ServerName: "api.test"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "api2" {
		t.Errorf("after edit: certificate %q, want api2", cn)
	}
	conn.Close()
}

func TestHTTPSMutualTLS(t *testing.T) {
	leaks(t)
	ca, clientCA, other := newCA(t, "ca"), newCA(t, "client-ca"), newCA(t, "other-ca")
	b := startHTTPBackend(t, "b", nil)
	l := addHTTPS(t, ca, HTTPOptions{ClientCAs: clientCA.pool, Options: httpproxy.Options{ClientCertHeaders: true}}, b)
	good := clientCA.issue(t, "alice")
	c := httpsClient(t, ca, good, true)
	code, _, _ := get(t, c, httpsURL(l, "/"), "X-Client-Cert-Verify", "FORGED")
	if code != 200 {
		t.Fatalf("good client: status %d", code)
	}
	h, _ := b.lastHeader()
	if h.Get("X-Client-Cert-Subject-DN") != "CN=alice" || h.Get("X-Client-Cert-Issuer-DN") != "CN=client-ca" ||
		h.Get("X-Client-Cert-Verify") != tlspolicy.VerifySuccess || len(h.Get("X-Client-Cert-Fingerprint")) != 64 {
		t.Errorf("client-certificate headers: %v", h)
	}
	for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "other CA": other.issue(t, "mallory")} {
		c := httpsClient(t, ca, cert, false)
		if resp, err := c.Get(httpsURL(l, "/")); err == nil {
			resp.Body.Close()
			t.Errorf("%s: request succeeded", name)
		}
	}
	// Live off.
	if err := l.SetClientCAs(nil); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, httpsClient(t, ca, nil, false), httpsURL(l, "/")); code != 200 {
		t.Errorf("after SetClientCAs(nil): %d", code)
	}
}

func TestHTTPSPolicy(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	p12, err := tlspolicy.Lookup(tlspolicy.Policy12)
	if err != nil {
		t.Fatal(err)
	}
	l := addHTTPS(t, ca, HTTPOptions{TLSPolicy: p12}, b)
	dial := func(v uint16) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", listenerAddr(l), &tls.Config{RootCAs: ca.pool, ServerName: "default.test", MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(tls.VersionTLS11); err == nil {
		t.Error("TLS 1.1 handshake succeeded under tls_cipher_policy_1_2")
	}
	if err := dial(tls.VersionTLS12); err != nil {
		t.Errorf("TLS 1.2 under tls_cipher_policy_1_2: %v", err)
	}
	if err := dial(tls.VersionTLS13); err == nil {
		t.Error("TLS 1.3 handshake succeeded under tls_cipher_policy_1_2")
	}
	// Live switch to the default policy, which allows TLS 1.1.
	if err := l.SetTLSPolicy(nil); err != nil {
		t.Fatal(err)
	}
	if err := dial(tls.VersionTLS11); err != nil {
		t.Errorf("TLS 1.1 under tls_cipher_policy_1_0: %v", err)
	}
}

func TestHTTPSDefaultPolicyAndRedirectTarget(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	in := newInstance(t)
	tlsL := addListener(t, in, Config{Protocol: HTTPS, Group: newGroup(t, nil, b.backend(100)),
		HTTP: HTTPOptions{Certificate: ca.issue(t, "default", "default.test")}})
	redir := addListener(t, in, Config{Protocol: HTTP, Group: newGroup(t, nil, b.backend(100)),
		HTTP: HTTPOptions{RedirectToPort: tlsL.Port()}})
	c := newClient(t)
	_, _, h := get(t, c, httpURL(redir, "/p?q=1"), "Host", "default.test")
	loc := h.Get("Location")
	if !strings.HasPrefix(loc, "https://default.test:") || !strings.HasSuffix(loc, "/p?q=1") {
		t.Fatalf("Location %q", loc)
	}
	// Follow it by hand to the HTTPS listener.
	hc := httpsClient(t, ca, nil, false)
	hc.Transport.(*http.Transport).DialTLSContext = nil
	hc.Transport.(*http.Transport).DialContext = (&redirectDialer{to: listenerAddr(tlsL)}).dial
	if code, body, _ := get(t, hc, loc); code != 200 || body != "b" {
		t.Errorf("following the redirect: %d %q", code, body)
	}
}

// redirectDialer dials one address whatever it is asked for.
type redirectDialer struct{ to string }

func (d *redirectDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, network, d.to)
}

// Five connections in a row through an HTTPS listener, one stock client
// cache: every one after the first resumes, including those presenting a
// ticket issued on a resumed connection, under the default policy (TLS
// 1.2), a TLS 1.3 policy, and with SessionTicketKeys.
func TestHTTPSResumption(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	p13, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    HTTPOptions
		version uint16
	}{
		{"default policy", HTTPOptions{}, tls.VersionTLS12},
		{"TLS1.3", HTTPOptions{TLSPolicy: p13}, tls.VersionTLS13},
		{"TLS1.2/keys", HTTPOptions{TLSPolicy: p13, SessionTicketKeys: [][32]byte{{1}}}, tls.VersionTLS12},
		{"TLS1.3/keys", HTTPOptions{TLSPolicy: p13, SessionTicketKeys: [][32]byte{{1}}}, tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := addHTTPS(t, ca, tc.opts, b)
			cfg := &tls.Config{RootCAs: ca.pool, ServerName: "default.test", ClientSessionCache: tls.NewLRUClientSessionCache(4), MaxVersion: tc.version}
			for i := range 5 {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", listenerAddr(l), cfg)
				if err != nil {
					t.Fatal(err)
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				// TLS 1.3 tickets arrive after the handshake: read to get them.
				io.WriteString(conn, "GET / HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n")
				io.ReadAll(conn)
				cs := conn.ConnectionState()
				conn.Close()
				if cs.Version != tc.version {
					t.Fatalf("connection %d: version %x, want %x", i, cs.Version, tc.version)
				}
				if want := i > 0; cs.DidResume != want {
					t.Errorf("connection %d: DidResume = %v, want %v", i, cs.DidResume, want)
				}
			}
		})
	}
}

// Two HTTPS listeners with the same SessionTicketKeys — two replicas of a
// fleet — resume each other's sessions, and only then; keys change live
// (SetSessionTicketKeys), and a rotated-out key still decrypts while it
// is listed after the new one.
func TestHTTPSSessionTicketKeys(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	keys := [][32]byte{{1, 2, 3}}
	one := addHTTPS(t, ca, HTTPOptions{SessionTicketKeys: keys}, b)
	two := addHTTPS(t, ca, HTTPOptions{SessionTicketKeys: [][32]byte{{9}}}, b)
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "default.test", ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	resumed := func(l *Listener) bool {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", listenerAddr(l), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		// TLS 1.3 tickets arrive after the handshake: read to get them.
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n")
		io.ReadAll(conn)
		return conn.ConnectionState().DidResume
	}
	setTwo := func(keys ...[32]byte) func() {
		return func() {
			if err := two.SetSessionTicketKeys(keys); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The client keeps the last ticket it got, from whichever listener;
	// a step with mint first makes a full handshake there with a new
	// client cache, so the keys that sealed the ticket it presents are
	// plain.
	steps := []struct {
		name   string
		before func()
		mint   *Listener
		l      *Listener
		want   bool
	}{
		{"one, first handshake", nil, nil, one, false},
		{"two, other keys, one's ticket", nil, nil, two, false},
		{"one, two's ticket under other keys", setTwo(keys[0]), nil, one, false},
		{"two, same keys, one's ticket", nil, nil, two, true},
		{"one, same keys, two's ticket", nil, two, one, true},
		{"two rotated, old key second, one's ticket", setTwo([32]byte{7}, keys[0]), one, two, true},
		{"one, a ticket under two's new key", nil, two, one, false},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		if s.mint != nil {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if resumed(s.mint) {
				t.Fatalf("step %d (%s): a fresh client resumed", i, s.name)
			}
		}
		if got := resumed(s.l); got != s.want {
			t.Fatalf("step %d (%s): DidResume = %v, want %v", i, s.name, got, s.want)
		}
	}
	if err := addHTTP(t, Config{Protocol: HTTP}, b).SetSessionTicketKeys(keys); err == nil {
		t.Errorf("SetSessionTicketKeys on an http listener: nil error")
	}
}
