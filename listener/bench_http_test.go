package listener

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// byteBufferPool is the httputil.BufferPool of the baseline.
type byteBufferPool struct{ p sync.Pool }

func (bp *byteBufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (bp *byteBufferPool) Put(b []byte) { bp.p.Put(&b) }

// BenchmarkHTTPProxy compares a keep-alive GET of a 1 KiB body through an
// lbkit HTTP listener with the same request through a tuned
// httputil.ReverseProxy (pooled transport, buffer pool), on loopback, with
// one backend. Clients do not ask for gzip, so neither side compresses.
func BenchmarkHTTPProxy(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)

	run := func(b *testing.B, addr string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		u := "http://" + addr + "/"
		b.ReportAllocs()
		b.SetParallelism(8) // 16 clients in flight on 2 CPUs
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Get(u)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != int64(len(body)) {
					b.Errorf("body of %d bytes", n)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	}

	b.Run("lbkit", func(b *testing.B) {
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: target.Host, Weight: 100})
		in, _ := NewInstance(InstanceConfig{ID: "bench", Logger: discard()})
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		l, err := in.Add(Config{Protocol: HTTP, Host: "127.0.0.1", Port: port, Group: g})
		if err != nil {
			b.Fatal(err)
		}
		defer in.Stop(b.Context())
		run(b, listenerAddr(l))
	})

	b.Run("httputil", func(b *testing.B) {
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			Transport:  &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true, IdleConnTimeout: 90 * time.Second},
			BufferPool: &byteBufferPool{},
		}
		srv := httptest.NewServer(rp)
		defer srv.Close()
		defer rp.Transport.(*http.Transport).CloseIdleConnections()
		run(b, srv.Listener.Addr().String())
	})
}

// BenchmarkHTTPSHandshake measures new TLS connections per second to an
// HTTPS listener with an ECDSA P-256 certificate (full handshakes, no
// resumption), each closed once the handshake is done.
func BenchmarkHTTPSHandshake(b *testing.B) {
	backend := httptest.NewServer(http.NotFoundHandler())
	defer backend.Close()
	ca := newCA(b, "ca")
	g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: backend.Listener.Addr().String(), Weight: 100})
	in, _ := NewInstance(InstanceConfig{ID: "bench", Logger: discard()})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l, err := in.Add(Config{Protocol: HTTPS, Host: "127.0.0.1", Port: port, Group: g,
		HTTP: HTTPOptions{Certificate: ca.issue(b, "default", "default.test")}})
	if err != nil {
		b.Fatal(err)
	}
	defer in.Stop(b.Context())
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "default.test", NextProtos: []string{"http/1.1"}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			conn, err := tls.Dial("tcp", listenerAddr(l), cfg)
			if err != nil {
				b.Error(err)
				return
			}
			conn.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}
