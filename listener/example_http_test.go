package listener_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/tlspolicy"
)

// webBackend starts an HTTP backend that answers with its name and the
// X-Forwarded-For it was sent.
func webBackend(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (X-Forwarded-For: %s)", name, r.Header.Get("X-Forwarded-For"))
	}))
}

// webBackends starts a webBackend for each name and returns a round-robin
// group of them, and a function that stops them.
func webBackends(names ...string) (*balancer.Group, func()) {
	group, _ := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()})
	var servers []*httptest.Server
	for _, name := range names {
		s := webBackend(name)
		servers = append(servers, s)
		group.Add(balancer.Backend{ID: name, Addr: s.Listener.Addr().String()})
	}
	return group, func() {
		for _, s := range servers {
			s.Close()
		}
	}
}

func fetch(c *http.Client, url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

// An HTTP listener with cookie persistence: the first response sets the
// SERVERID cookie, and a client that sends it back stays on its backend.
func ExampleInstance_Add_http() {
	group, closeBackends := webBackends("a", "b")
	defer closeBackends()
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	// Port 0: the system picks a free port; Addrs reports it.
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTP, Host: "127.0.0.1", Group: group,
		HTTP: listener.HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{CookieTimeout: time.Hour}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	url := "http://" + l.Addrs()[0].String() + "/"
	resp, err := http.Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	first := string(body)
	fmt.Println(resp.StatusCode, "cookie", cookie.Name, "set")
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println("same backend:", string(body) == first)
	}
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(inst.Stop(ctx))
	// Output:
	// 200 cookie SERVERID set
	// same backend: true
	// same backend: true
	// same backend: true
	// <nil>
}

// selfSigned returns an ECDSA P-256 certificate for name and a pool that
// trusts it. Real listeners load theirs with tlspolicy.LoadCertificate.
func selfSigned(name string) (*tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// An HTTPS listener under the tls_cipher_policy_1_2 policy, with an
// extension domain added live: HTTP/2 to the client, HTTP/1.1 to the
// backend.
func ExampleInstance_Add_https() {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend got %s, X-Forwarded-Proto %s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer web.Close()
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "web", Addr: web.Listener.Addr().String()})
	def, pool := selfSigned("default.test")
	shop, _ := selfSigned("shop.example.com")
	policy, _ := tlspolicy.Lookup(tlspolicy.Policy12)

	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTPS, Host: "127.0.0.1", Group: group,
		HTTP: listener.HTTPOptions{Certificate: def, TLSPolicy: policy, Options: httpproxy.Options{XForwardedProto: true}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := l.Certificates().Set("shop.example.com", shop); err != nil {
		fmt.Println(err)
		return
	}
	pool.AddCert(shop.Leaf)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.example.com"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	resp, err := c.Get("https://" + l.Addrs()[0].String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Proto, resp.TLS.PeerCertificates[0].Subject.CommonName)
	fmt.Println(string(body))
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(inst.Stop(ctx))
	// Output:
	// HTTP/2.0 shop.example.com
	// backend got HTTP/1.1, X-Forwarded-Proto https
	// <nil>
}

// A WAF plugs in as HTTPOptions.Middleware: it sees every request that
// passed the ACL and may answer it itself.
func ExampleHTTPOptions_middleware() {
	web := webBackend("web")
	defer web.Close()
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "web", Addr: web.Listener.Addr().String()})
	waf := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.RawQuery, "<script") {
				http.Error(w, "blocked by WAF", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{Protocol: listener.HTTP, Host: "127.0.0.1", Group: group,
		HTTP: listener.HTTPOptions{Middleware: waf}})
	if err != nil {
		fmt.Println(err)
		return
	}
	base := "http://" + l.Addrs()[0].String()
	fmt.Println(fetch(http.DefaultClient, base+"/?q=shoes"))
	fmt.Print(fetch(http.DefaultClient, base+"/?q=<script>"))
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inst.Stop(ctx)
	// Output:
	// 200 web (X-Forwarded-For: 127.0.0.1)
	// 403 blocked by WAF
}

// An HTTPS listener with cookie persistence and an ACL: a client that
// sends its cookie back stays on its backend, and a blacklist set live
// answers 403 before any byte reaches a backend.
func ExampleInstance_Add_httpsStickyACL() {
	group, closeBackends := webBackends("a", "b")
	defer closeBackends()
	office, _ := acl.ParseEntries("127.0.0.0/8 # loopback")
	allow, _ := acl.NewGroup(acl.GroupConfig{Name: "office", Family: acl.IPv4}, office...)
	whitelist, _ := acl.NewPolicy(acl.PolicyConfig{Group: allow, Mode: acl.Whitelist})
	cert, roots := selfSigned("shop.test")

	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTPS, Host: "127.0.0.1", Group: group, ACL: whitelist,
		HTTP: listener.HTTPOptions{Certificate: cert, Options: httpproxy.Options{StickySession: &session.Config{}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "shop.test"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	jar, _ := cookiejar.New(nil) // sends the SERVERID cookie back
	c := &http.Client{Transport: tr, Jar: jar}
	url := "https://" + l.Addrs()[0].String() + "/"
	first := fetch(c, url)
	for range 3 {
		fmt.Println("same backend:", fetch(c, url) == first)
	}

	blocked, _ := acl.NewGroup(acl.GroupConfig{Name: "blocked", Family: acl.IPv4}, office...)
	blacklist, _ := acl.NewPolicy(acl.PolicyConfig{Group: blocked, Mode: acl.Blacklist})
	l.SetACL(blacklist)
	fmt.Println(fetch(c, url)[:3])
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(inst.Stop(ctx))
	// Output:
	// same backend: true
	// same backend: true
	// same backend: true
	// 403
	// <nil>
}

// Request-aware hashing: the hash scheduler places each request by the
// value of its "user" query parameter, so a user's requests all reach the
// same backend, on any connection, while users spread over the backends.
// (Set HashPolicy.Header, Cookie or Path instead to hash those.)
func ExampleHashPolicy() {
	var members []balancer.Backend
	for _, name := range []string{"a", "b", "c"} {
		web := webBackend(name)
		defer web.Close()
		members = append(members, balancer.Backend{ID: name, Addr: web.Listener.Addr().String()})
	}
	group, _ := balancer.New(balancer.Config{Scheduler: balancer.Maglev{By: balancer.HashKey}}, members...)
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{Protocol: listener.HTTP, Host: "127.0.0.1", Group: group,
		HTTP: listener.HTTPOptions{Options: httpproxy.Options{HashBy: listener.HashPolicy{Query: "user"}}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	base := "http://" + l.Addrs()[0].String()
	for _, user := range []string{"alice", "bob", "dave", "alice", "bob", "dave"} {
		fmt.Println(user, fetch(http.DefaultClient, base+"/cart?user="+user))
	}
	// Without the parameter, the client's source IP decides.
	fmt.Println("none", fetch(http.DefaultClient, base+"/cart"))
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inst.Stop(ctx)
	// Output:
	// alice 200 a (X-Forwarded-For: 127.0.0.1)
	// bob 200 c (X-Forwarded-For: 127.0.0.1)
	// dave 200 b (X-Forwarded-For: 127.0.0.1)
	// alice 200 a (X-Forwarded-For: 127.0.0.1)
	// bob 200 c (X-Forwarded-For: 127.0.0.1)
	// dave 200 b (X-Forwarded-For: 127.0.0.1)
	// none 200 b (X-Forwarded-For: 127.0.0.1)
}
