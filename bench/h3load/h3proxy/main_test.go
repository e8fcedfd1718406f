package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/bench/h3load/internal/testcert"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/goleak"
)

// TestProxyH3AndH2 sends a request over HTTP/3 and one over HTTP/2 through
// h3proxy to a backend and checks both are proxied.
func TestProxyH3AndH2(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend "+r.URL.Path)
	}))
	t.Cleanup(backend.Close)

	cert := testcert.New(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServers(proxy([]string{strings.TrimPrefix(backend.URL, "http://")}), cert.TLS)
	done := make(chan struct{}, 2)
	go func() { s.tcp.ServeTLS(ln, "", ""); done <- struct{}{} }()
	go func() { s.udp.Serve(pc); done <- struct{}{} }()
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("close: %v", err)
		}
		<-done
		<-done
		pc.Close()
	})

	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Roots}}
	t.Cleanup(func() { h3.Close() })
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Roots}, ForceAttemptHTTP2: true}
	t.Cleanup(h2.CloseIdleConnections)
	for _, tc := range []struct {
		name, url, proto string
		rt               http.RoundTripper
	}{
		{"h3", "https://" + pc.LocalAddr().String() + "/1k", "HTTP/3.0", h3},
		{"h2", "https://" + ln.Addr().String() + "/1k", "HTTP/2.0", h2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := (&http.Client{Transport: tc.rt}).Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != tc.proto || string(b) != "backend /1k" {
				t.Errorf("GET %s = %s %q, want %s %q", tc.url, resp.Proto, b, tc.proto, "backend /1k")
			}
		})
	}
}
