package admin_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// fixture is an instance on loopback with a TCP listener "tcp-echo" over
// echo backends a and b, and an HTTP listener "web" over HTTP backends w1
// and w2.
type fixture struct {
	inst     *listener.Instance
	tcp, web *listener.Listener
	client   *http.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:      "lb-test",
		Address: mustAddr("192.0.2.10"),
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		inst.Stop(ctx)
	})
	f := &fixture{inst: inst}

	tg := newGroup(t, startEcho(t, "a").backend(50), startEcho(t, "b").backend(50))
	f.tcp = addListener(t, inst, listener.Config{Name: "tcp-echo", Protocol: listener.TCP, Group: tg, Bandwidth: 100})

	wg := newGroup(t, startHTTP(t, "w1").backend(100), startHTTP(t, "w2").backend(100))
	f.web = addListener(t, inst, listener.Config{Name: "web", Protocol: listener.HTTP, Group: wg})

	tr := &http.Transport{DisableCompression: true}
	f.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return f
}

// traffic makes n TCP connections, each echoing one line, and n HTTP
// requests of which the last is answered 404 by its backend.
func (f *fixture) traffic(t *testing.T, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", addr(f.tcp), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("greeting through tcp-echo: %v", err)
		}
		io.WriteString(c, "ping\n")
		if got, err := r.ReadString('\n'); err != nil || got != "ping\n" {
			t.Fatalf("echo through tcp-echo = %q, %v; want ping", got, err)
		}
		c.Close()
	}
	for i := range n {
		path := "/"
		if i == n-1 {
			path = "/missing"
		}
		resp, err := f.client.Get("http://" + addr(f.web) + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// settled waits until both listeners have no connection open, so their
// counters stop moving.
func (f *fixture) settled(t *testing.T) {
	t.Helper()
	eventually(t, "tcp-echo to close its connections", func() bool {
		s := f.tcp.Stats()
		for _, b := range s.Backends {
			if b.Active != 0 {
				return false
			}
		}
		return s.Active == 0
	})
}

// serve starts an httptest server on 127.0.0.1 for h.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func addr(l *listener.Listener) string { return l.Addrs()[0].String() }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func leaks(t *testing.T) { leakcheck.Check(t) }

// echoBackend is a TCP backend that greets with its name, then echoes.
type echoBackend struct {
	name  string
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startEcho(t *testing.T, name string) *echoBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &echoBackend{name: name, ln: ln, conns: map[net.Conn]bool{}}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = true
			b.mu.Unlock()
			b.wg.Go(func() {
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *echoBackend) backend(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.ln.Addr().String(), Weight: weight}
}

// httpBackend answers with its name, and 404 for /missing.
type httpBackend struct {
	name string
	srv  *httptest.Server
}

func startHTTP(t *testing.T, name string) *httpBackend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return &httpBackend{name: name, srv: srv}
}

func (b *httpBackend) backend(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.srv.Listener.Addr().String(), Weight: weight}
}

func newGroup(t *testing.T, bs ...balancer.Backend) *balancer.Group {
	t.Helper()
	g, err := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()}, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// addListener adds cfg on 127.0.0.1 at a port the system picks.
func addListener(t *testing.T, in *listener.Instance, cfg listener.Config) *listener.Listener {
	t.Helper()
	cfg.Host, cfg.Port = "127.0.0.1", 0
	l, err := in.Add(cfg)
	if err != nil {
		t.Fatalf("Add(%s): %v", cfg.Name, err)
	}
	return l
}

// eventually polls cond every 10 ms until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
