package listener

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/quic-go/quic-go/http3"
)

// BenchmarkHTTP3 measures keep-alive GETs of a 1 KiB body through an
// HTTPS listener's HTTP/3 (HTTPOptions.HTTP3) over one QUIC connection
// of one http3.Transport, 16 streams in flight, from the canned backend;
// compare with BenchmarkHTTP2Proxy/lbkit, the same over HTTP/2. The
// client asks for gzip; the body is application/octet-stream, which is
// not compressed.
func BenchmarkHTTP3(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	backend := startCannedBackend(b, "application/octet-stream", body)
	defer backend.close()
	ca := newCA(b, "ca")
	p13, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		b.Fatal(err)
	}
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: backend.ln.Addr().String()})
	in, _ := NewInstance(InstanceConfig{ID: "bench", Logger: discard()})
	l, err := in.Add(Config{Protocol: HTTPS, Host: "127.0.0.1", Group: g, HTTP: HTTPOptions{
		Certificate: ca.issue(b, "default", "default.test"), TLSPolicy: p13, HTTP3: true,
		HTTP2MaxRequestsPerConnection: 1 << 30,
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Stop(b.Context())
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "default.test"}}
	defer tr.Close()
	c := &http.Client{Transport: tr}
	getParallel(b, c, "https://"+listenerAddr(l)+"/", 3, len(body))
}
