package admin_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/syncbuf"
	"github.com/lbkit/lbkit/internal/testpki"
)

// adminPKI is the PEM files of an admin server over TLS: its CA, the
// server's certificate for 127.0.0.1, client certificates the CA signed
// (alice by common name, bot by DNS name only), and mallory's, signed by
// another CA.
type adminPKI struct {
	files admin.TLSFiles
	roots *x509.CertPool
	certs map[string]tls.Certificate // alice, bot, mallory
}

func newAdminPKI(t *testing.T) *adminPKI {
	t.Helper()
	ca, other := testpki.NewCA(t, "admin test CA"), testpki.NewCA(t, "other CA")
	cert, key := ca.Server(t, "clb-admin")
	return &adminPKI{
		files: admin.TLSFiles{Cert: cert, Key: key, ClientCA: ca.File},
		roots: ca.Roots,
		certs: map[string]tls.Certificate{
			"alice":   ca.Client(t, "alice", pkix.Name{CommonName: "alice"}),
			"bot":     ca.Client(t, "bot", pkix.Name{}, "bot.example"),
			"mallory": other.Client(t, "mallory", pkix.Name{CommonName: "mallory"}),
		},
	}
}

// client returns an HTTPS client trusting p's CA, presenting cert
// (none if "") whichever CAs the server asks for, that does not follow
// redirects.
func (p *adminPKI) client(t *testing.T, cert string) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.roots}
	if cert != "" {
		c := p.certs[cert]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// serveTLS runs s on 127.0.0.1 through Server.Serve and returns its URL.
func serveTLS(t *testing.T, s *admin.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})
	return "https://" + ln.Addr().String()
}

// serve runs an admin server of f's instance over TLS from files, with
// the runtime API and ops's token, logging to audit (nil: nowhere), and
// returns its URL.
func (p *adminPKI) serve(t *testing.T, f *fixture, files admin.TLSFiles, audit io.Writer) string {
	t.Helper()
	cfg, err := admin.LoadTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	if audit == nil {
		audit = io.Discard
	}
	return serveTLS(t, admin.New(f.inst, admin.Options{Runtime: groupRuntime{f.inst}, Tokens: opsTokens(t), TLS: cfg,
		Audit: slog.New(slog.NewTextHandler(audit, nil))}))
}

// post sends body to url with c, the bearer token (none if ""), and
// returns the status and the body.
func post(t *testing.T, c *http.Client, url, token, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// A verified client certificate is a credential, named in the audit
// line by its common name or else its DNS name; a client without one
// still connects and uses a token; a certificate of another CA fails the
// handshake; TLS below 1.2 is refused.
func TestClientCertificates(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	pki := newAdminPKI(t)
	audit := &syncbuf.Buffer{}
	url := pki.serve(t, f, pki.files, audit)
	drain := url + "/api/listeners/tcp-echo/backends/a/state"

	for _, tc := range []struct {
		name, cert, token string
		want              int
		who               string
	}{
		{"alice's certificate", "alice", "", 200, "who=cert:alice"},
		{"a certificate with a DNS name only", "bot", "", 200, "who=cert:bot.example"},
		{"no certificate, a token", "", opsToken, 200, "who=ops"},
		{"no certificate, no token", "", "", 401, ""},
		{"alice's certificate, a bad token", "alice", "not-a-token-of-ours", 401, ""},
	} {
		code, body, err := post(t, pki.client(t, tc.cert), drain, tc.token, `{"state": "drain"}`)
		if err != nil || code != tc.want {
			t.Errorf("%s: %d %q %v, want %d", tc.name, code, body, err, tc.want)
		}
		if tc.who != "" && !strings.Contains(audit.String(), tc.who) {
			t.Errorf("%s: audit log lacks %s:\n%s", tc.name, tc.who, audit)
		}
	}
	if m, _ := f.tcp.Group().Member("a"); m.State() != balancer.Drain {
		t.Errorf("a is %v after the writes, want drain", m.State())
	}

	// mallory's CA is not ours: crypto/tls refuses the handshake, before
	// any request.
	if _, _, err := post(t, pki.client(t, "mallory"), drain, opsToken, `{"state": "ready"}`); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("mallory's certificate: err %v, want a TLS handshake failure", err)
	}
	old := &tls.Config{RootCAs: pki.roots, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), old); err == nil {
		c.Close()
		t.Errorf("a TLS 1.1 handshake succeeded, want refused")
	}
	if m, _ := f.tcp.Group().Member("a"); m.State() != balancer.Drain {
		t.Errorf("a is %v after refused handshakes, want still drain", m.State())
	}
}

// Without -admin-client-ca no certificate is requested, so none is a
// credential, however it is signed.
func TestCertificateWithoutClientCA(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	pki := newAdminPKI(t)
	files := pki.files
	files.ClientCA = ""
	url := pki.serve(t, f, files, nil)
	code, body, err := post(t, pki.client(t, "alice"), url+"/api/listeners/tcp-echo/stop", "", "")
	if err != nil || code != 401 {
		t.Errorf("write with a certificate and no client CA: %d %q %v, want 401", code, body, err)
	}
}

// LoadTLS reports every problem at once, naming flag and file.
func TestLoadTLSErrors(t *testing.T) {
	pki := newAdminPKI(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name  string
		files admin.TLSFiles
		want  []string
	}{
		{"client CA without TLS", admin.TLSFiles{ClientCA: pki.files.ClientCA},
			[]string{`admin: -admin-client-ca "` + pki.files.ClientCA + `" needs -admin-cert and -admin-key: client certificates exist only over TLS`}},
		{"key without cert", admin.TLSFiles{Key: pki.files.Key}, []string{`admin: -admin-key "` + pki.files.Key + `" needs -admin-cert`}},
		{"cert without key, a CA that is no PEM", admin.TLSFiles{Cert: pki.files.Cert, ClientCA: notPEM},
			[]string{`admin: -admin-cert "` + pki.files.Cert + `" needs -admin-key`, `admin: -admin-client-ca "` + notPEM + `": no PEM certificate in it`}},
		{"missing files", admin.TLSFiles{Cert: missing, Key: pki.files.Key, ClientCA: missing},
			[]string{`admin: -admin-cert "` + missing + `", -admin-key "` + pki.files.Key + `": open ` + missing, `admin: -admin-client-ca "` + missing + `": open ` + missing}},
		{"key of another certificate", admin.TLSFiles{Cert: pki.files.Cert, Key: strings.Replace(pki.files.Key, "clb-admin-key", "alice-key", 1)},
			[]string{"private key does not match public key"}},
	} {
		cfg, err := admin.LoadTLS(tc.files)
		if err == nil || cfg != nil {
			t.Errorf("%s: LoadTLS = %v, %v; want an error", tc.name, cfg, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
	}
	if cfg, err := admin.LoadTLS(admin.TLSFiles{}); cfg != nil || err != nil {
		t.Errorf("LoadTLS(none) = %v, %v; want nil, nil", cfg, err)
	}
}

// Over TLS a verified certificate logs in without a token, and the
// session cookie is Secure.
func TestLoginWithCertificate(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	pki := newAdminPKI(t)
	url := pki.serve(t, f, pki.files, nil)
	alice := pki.client(t, "alice")
	resp, err := alice.Get(url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "<b>cert:alice</b>") {
		t.Errorf("the login page does not offer alice's certificate:\n%s", page)
	}
	if code, body, _ := post(t, pki.client(t, ""), url+"/login", "", ""); code != 401 {
		t.Errorf("login with neither token nor certificate: %d %q, want 401", code, body)
	}
	resp, err = alice.Post(url+"/login", "application/x-www-form-urlencoded", strings.NewReader("token="))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != 303 || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login with alice's certificate = %d, cookies %v; want 303 and a Secure, HttpOnly, SameSite=Strict cookie", resp.StatusCode, cs)
	}
	// The session is alice's: the page says so to a client without the
	// certificate.
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.AddCookie(cs[0])
	resp, err = pki.client(t, "").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `Logged in as <b id="who">cert:alice</b>`) {
		t.Errorf("the page of alice's session does not say who:\n%s", page)
	}
}
