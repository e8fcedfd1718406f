package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/quic-go/quic-go/http3"
)

// h3DomainsConfig is an https listener with HTTP/3 over one backend; the
// test fills PORT, PB and DOMAINS (its DomainExtensions, or nothing).
const h3DomainsConfig = `LoadBalancerId: lb-h3
VServerGroups:
  - VServerGroupId: web
    BackendServers:
      - {ServerId: b, ServerIp: 127.0.0.1, Port: PB, Weight: 100}
Listeners:
  - {ListenerProtocol: https, ListenerPort: PORT, VServerGroupId: web, HealthCheck: "off", ServerCertificateId: demo, EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3DOMAINS}
`

// udpTCPPort returns a port free for TCP and UDP on 127.0.0.1 a moment
// ago, as HTTP/3 needs both.
func udpTCPPort(t *testing.T) int {
	t.Helper()
	for {
		port := configPort(t)
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			pc.Close()
			return port
		}
	}
}

// A reload that adds and then removes an extension domain changes the
// certificate an https listener picks by SNI live, over HTTP/2 and
// HTTP/3 alike: the listener is the same, and a connection opened
// before the reload keeps serving on it.
func TestReloadDomainsHTTP3(t *testing.T) {
	leakcheck.Check(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	defer srv.Close()
	replace := strings.NewReplacer("PORT", strconv.Itoa(udpTCPPort(t)), "PB", strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port))
	plan := func(domains string) *plan {
		t.Helper()
		_, p := mustPlan(t, "h3.yaml", strings.Replace(replace.Replace(h3DomainsConfig), "DOMAINS", domains, 1))
		return p
	}
	a := startApp(t, plan(""))
	l := a.inst.Listeners()[0]
	url := "https://127.0.0.1:" + strconv.Itoa(l.Port()) + "/"
	for _, proto := range []string{"h2", "h3"} {
		t.Run(proto, func(t *testing.T) {
			wantMajor := map[string]int{"h2": 2, "h3": 3}[proto]
			cn := func(c *http.Client) string {
				t.Helper()
				resp, body := getBody(t, c, url)
				if resp.ProtoMajor != wantMajor || body != "b" {
					t.Fatalf("GET = %s %q, want HTTP/%d b", resp.Proto, body, wantMajor)
				}
				return resp.TLS.PeerCertificates[0].Subject.CommonName
			}
			open := tlsClient(t, proto == "h3", "localhost")
			cn(open)
			for i, step := range []struct{ domains, want string }{
				{`, DomainExtensions: [{Domain: shop.localhost, ServerCertificateId: demo-shop}]`, demoShopDomain},
				{"", "localhost"},
			} {
				if err := a.reload(plan(step.domains)); err != nil {
					t.Fatal(err)
				}
				if now := a.inst.Listeners()[0]; now != l {
					t.Fatalf("reload %d replaced the listener; want the domains changed live", i)
				}
				if got := cn(tlsClient(t, proto == "h3", demoShopDomain)); got != step.want {
					t.Errorf("after reload %d: SNI %s got certificate %q, want %q", i, demoShopDomain, got, step.want)
				}
				before := l.Stats().New
				cn(open)
				if n := l.Stats().New - before; n != 0 {
					t.Errorf("after reload %d: the open connection's request made %d new connections, want 0", i, n)
				}
			}
		})
	}
}

// tlsClient returns a client over HTTP/3 or, if not h3, HTTP/2, naming
// sni and trusting any certificate (the test checks which one came); it
// closes with the test.
func tlsClient(t *testing.T, h3 bool, sni string) *http.Client {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: sni}
	if h3 {
		tr := &http3.Transport{TLSClientConfig: cfg}
		t.Cleanup(func() { tr.Close() })
		return &http.Client{Timeout: 5 * time.Second, Transport: tr}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// startApp starts p in this process; it stops with the test.
func startApp(t *testing.T, p *plan) *app {
	t.Helper()
	a, err := start(p, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.stop(ctx)
	})
	return a
}
