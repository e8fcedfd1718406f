package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/tlspolicy"
	proxyproto "github.com/pires/go-proxyproto"
)

// baselineProxy is the httputil.ReverseProxy lbkit is compared with:
// tuned as a careful user would (a pooled transport, a buffer pool).
func baselineProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true, IdleConnTimeout: 90 * time.Second},
		BufferPool: &byteBufferPool{},
	}
}

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
// one backend: a minimal HTTP/1.1 server answering every request with the
// same bytes, so the harness takes little of the CPU both proxies share.
// Clients (net/http) do not ask for gzip, so neither side compresses.
func BenchmarkHTTPProxy(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	backend := startCannedBackend(b, "application/octet-stream", body)
	defer backend.close()
	target := &url.URL{Scheme: "http", Host: backend.ln.Addr().String()}

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
		l, err := in.Add(Config{Protocol: HTTP, Host: "127.0.0.1", Group: g})
		if err != nil {
			b.Fatal(err)
		}
		defer in.Stop(b.Context())
		run(b, listenerAddr(l))
	})

	// direct is the harness alone (client to backend, no proxy): subtract
	// its allocs/op from the others' to get each proxy's own.
	b.Run("direct", func(b *testing.B) { run(b, target.Host) })

	b.Run("httputil", func(b *testing.B) {
		rp := baselineProxy(target)
		srv := httptest.NewServer(rp)
		defer srv.Close()
		defer rp.Transport.(*http.Transport).CloseIdleConnections()
		run(b, srv.Listener.Addr().String())
	})
}

// BenchmarkHTTPFastLane measures the proxy alone: raw keep-alive
// clients (16 connections, one request in flight each, allocation-free)
// GET 1 KiB through an HTTP listener's fast lane from the canned
// backend. allocs/op of "lbkit" minus those of "direct" (client and
// backend alone) are the listener's own per request.
//
// The canned body is application/octet-stream, which gzip leaves alone
// whatever the client accepts; "lbkit-gzip" is the default's twin a
// browser meets: a 1 KiB text/plain body for a client sending
// "Accept-Encoding: gzip, deflate, br", compressed in the lane.
func BenchmarkHTTPFastLane(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	backend := startCannedBackend(b, "application/octet-stream", body)
	defer backend.close()
	text := bytes.Repeat([]byte("lbkit fast lane, compressed "), 40)[:1024]
	textBackend := startCannedBackend(b, "text/plain; charset=utf-8", text)
	defer textBackend.close()
	plainReq := []byte("GET /1k HTTP/1.1\r\nHost: bench\r\nUser-Agent: raw\r\n\r\n")
	var clientTLS *tls.Config // of the lbkit-tls runs
	gzipReq := []byte("GET /1k HTTP/1.1\r\nHost: bench\r\nUser-Agent: raw\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n")
	run := func(b *testing.B, dial func() (net.Conn, error), req []byte, preface ...byte) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			var (
				c   net.Conn
				br  = bufio.NewReaderSize(nil, 4<<10)
				got = make([]byte, 2*len(body))
			)
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for pb.Next() {
				if c == nil {
					var err error
					if c, err = dial(); err != nil {
						b.Error(err)
						return
					}
					if _, err := c.Write(preface); err != nil {
						b.Error(err)
						return
					}
					br.Reset(c)
				}
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				closing, length := false, 0
				for { // the head, up to its blank line
					line, err := br.ReadSlice('\n')
					if err != nil {
						b.Error(err)
						return
					}
					if len(line) == 2 {
						break
					}
					closing = closing || bytes.Equal(line, []byte("Connection: close\r\n"))
					if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
						length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
					}
				}
				if _, err := io.ReadFull(br, got[:length]); err != nil {
					b.Error(err)
					return
				}
				if closing { // the keep-alive limit
					c.Close()
					c = nil
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	}
	lbkit := func(sched balancer.Scheduler, opts HTTPOptions, backend *cannedBackend, req []byte, accept AcceptProxy, preface ...byte) func(b *testing.B) {
		return func(b *testing.B) {
			g, _ := balancer.New(balancer.Config{Scheduler: sched}, balancer.Backend{ID: "b", Addr: backend.ln.Addr().String(), Weight: 100})
			in, _ := NewInstance(InstanceConfig{ID: "bench", Logger: discard()})
			proto, dial := HTTP, func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
			if opts.Certificate != nil {
				proto = HTTPS
				dial = func(addr string) (net.Conn, error) { return tls.Dial("tcp", addr, clientTLS) }
			}
			l, err := in.Add(Config{Protocol: proto, Host: "127.0.0.1", Group: g, HTTP: opts, AcceptProxy: accept})
			if err != nil {
				b.Fatal(err)
			}
			defer in.Stop(b.Context())
			run(b, func() (net.Conn, error) { return dial(listenerAddr(l)) }, req, preface...)
		}
	}
	b.Run("lbkit", lbkit(nil, HTTPOptions{}, backend, plainReq, AcceptProxy{}))
	// With a header hashed the lane still allocates nothing.
	b.Run("lbkit-hash", lbkit(balancer.Maglev{By: balancer.HashKey}, HTTPOptions{Options: httpproxy.Options{HashBy: HashPolicy{Header: "User-Agent"}}}, backend, plainReq, AcceptProxy{}))
	b.Run("lbkit-gzip", lbkit(nil, HTTPOptions{}, textBackend, gzipReq, AcceptProxy{}))
	// Behind a balancer: each connection starts with a PROXY v2 header
	// naming a client in TrustedProxies, each request names the client
	// in X-Forwarded-For; the lane still allocates nothing per request.
	front := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	proxied := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	head, _ := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 4242}, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 80}).Format()
	xffReq := []byte("GET /1k HTTP/1.1\r\nHost: bench\r\nUser-Agent: raw\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n")
	b.Run("lbkit-proxyin", lbkit(nil, HTTPOptions{Options: httpproxy.Options{TrustedProxies: proxied}}, backend, xffReq, AcceptProxy{From: front}, head...))
	// Over TLS, with and without HTTP/3 advertised: the Alt-Svc line
	// costs the lane no allocation.
	ca := newCA(b, "ca")
	cert := ca.issue(b, "default", "default.test")
	clientTLS = &tls.Config{RootCAs: ca.pool, ServerName: "default.test", NextProtos: []string{"http/1.1"}}
	p13, _ := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	b.Run("lbkit-tls", lbkit(nil, HTTPOptions{Certificate: cert, TLSPolicy: p13}, backend, plainReq, AcceptProxy{}))
	b.Run("lbkit-tls-altsvc", lbkit(nil, HTTPOptions{Certificate: cert, TLSPolicy: p13, HTTP3: true}, backend, plainReq, AcceptProxy{}))
	b.Run("direct", func(b *testing.B) {
		run(b, func() (net.Conn, error) { return net.Dial("tcp", backend.ln.Addr().String()) }, plainReq)
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
	l, err := in.Add(Config{Protocol: HTTPS, Host: "127.0.0.1", Group: g,
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

// cannedBackend is a minimal keep-alive HTTP/1.1 server for benchmarks: it
// answers each request header (GET, no body) with one canned response.
type cannedBackend struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startCannedBackend(b *testing.B, contentType string, body []byte) *cannedBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
	cb := &cannedBackend{ln: ln}
	var conns sync.Map
	cb.wg.Go(func() {
		defer conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			cb.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Read one request header: lines up to an empty one.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	})
	return cb
}

func (cb *cannedBackend) close() {
	cb.ln.Close()
	cb.wg.Wait()
}

// BenchmarkHTTPIdleMemory opens 2,000 keep-alive connections to an HTTP
// listener, sends one GET on each and leaves them idle, and reports the
// memory (heap and stacks) the process gained per connection beyond the
// same number of connections held open by a bare acceptor: what the
// listener spends on an idle keep-alive connection. It fails nothing.
// Run with -benchtime=1x.
func BenchmarkHTTPIdleMemory(b *testing.B) {
	const n = 2000
	backend := startCannedBackend(b, "application/octet-stream", bytes.Repeat([]byte("x"), 1024))
	defer backend.close()
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	// hold opens n connections to addr, with one GET each if get is set,
	// and reports the memory gained once they idle.
	hold := func(addr string, get bool) (mem, func()) {
		before := memInUse()
		conns := make([]net.Conn, 0, n)
		buf := make([]byte, 4<<10)
		for i := range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatalf("conn %d: %v", i, err)
			}
			conns = append(conns, c)
			if !get {
				continue
			}
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			// The canned response is small: one read has it whole.
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(400 * time.Millisecond) // past parkAfter: the listener parks its connections
		return memInUse().minus(before), func() {
			for _, c := range conns {
				c.Close()
			}
		}
	}
	for range b.N {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var held []net.Conn
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
		bare, cleanup := hold(ln.Addr().String(), false)
		cleanup()
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}

		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: backend.ln.Addr().String()})
		l, stop := benchListener(b, Config{Protocol: HTTP, Group: g})
		proxied, cleanup := hold(listenerAddr(l), true)
		d := proxied.minus(bare)
		b.ReportMetric(float64(d.heap+d.stack)/n, "B/idle-conn")
		b.ReportMetric(float64(d.goroutines)/n, "goroutines/idle-conn")
		cleanup()
		stop()
	}
}

// BenchmarkHTTP2Proxy compares GETs of a 1 KiB body over HTTP/2 (TLS
// 1.3, one connection, 16 streams in flight) through an HTTPS listener
// with the same through httputil.ReverseProxy on net/http's HTTP/2
// server: both decode HTTP/2 with net/http, so the difference is the
// proxying behind it. The client asks for gzip as browsers do; the
// canned body is application/octet-stream, which neither compresses.
func BenchmarkHTTP2Proxy(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	backend := startCannedBackend(b, "application/octet-stream", body)
	defer backend.close()
	target := &url.URL{Scheme: "http", Host: backend.ln.Addr().String()}
	ca := newCA(b, "ca")
	cert := ca.issue(b, "default", "default.test")
	run := func(b *testing.B, addr string) {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: "default.test"},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		getParallel(b, c, "https://"+addr+"/", 2, len(body))
	}
	b.Run("lbkit", func(b *testing.B) {
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: target.Host})
		in, _ := NewInstance(InstanceConfig{ID: "bench", Logger: discard()})
		l, err := in.Add(Config{Protocol: HTTPS, Host: "127.0.0.1", Group: g,
			HTTP: HTTPOptions{Certificate: cert, HTTP2MaxRequestsPerConnection: 1 << 30}})
		if err != nil {
			b.Fatal(err)
		}
		defer in.Stop(b.Context())
		run(b, listenerAddr(l))
	})
	b.Run("httputil", func(b *testing.B) {
		rp := baselineProxy(target)
		srv := httptest.NewUnstartedServer(rp)
		srv.EnableHTTP2 = true
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		srv.StartTLS()
		defer srv.Close()
		defer rp.Transport.(*http.Transport).CloseIdleConnections()
		run(b, srv.Listener.Addr().String())
	})
}

// getParallel GETs u with c from 8 goroutines per CPU (16 streams in
// flight on 2 CPUs), each response over HTTP/proto of bodyLen bytes, and
// reports allocations and req/s. It asks for gzip as browsers do.
func getParallel(b *testing.B, c *http.Client, u string, proto, bodyLen int) {
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Accept-Encoding", "gzip, deflate, br")
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(bodyLen) || resp.ProtoMajor != proto {
				b.Errorf("body of %d bytes over %s", n, resp.Proto)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
