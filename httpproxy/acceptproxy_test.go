package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/stats"
	proxyproto "github.com/pires/go-proxyproto"
)

// recordingHost is a listener-tier host that lets every client in and
// remembers whom it was asked about: the client the ACL would check.
type recordingHost struct {
	nopHost
	m stats.Counters

	mu      sync.Mutex
	allowed []netip.Addr
}

func (h *recordingHost) Allow(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.allowed = append(h.allowed, a)
	return true
}

func (h *recordingHost) Counters() *stats.Counters { return &h.m }
func (h *recordingHost) Attempts() attempt.Env     { return nopEnv{} }

// startServer runs p's listener tier with sc on a loopback socket until
// the test ends.
func startServer(t *testing.T, p *Proxy, sc ServerConfig) (*Server, *recordingHost) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHost{nopHost: nopHost{log: slog.New(slog.DiscardHandler)}}
	s, err := p.NewServer(ln, sc, h)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		ln.Close()
	})
	return s, h
}

// TestServerAcceptProxy: ServerConfig.AcceptProxy, set by an embedder of
// the listener tier, reads a trusted balancer's PROXY v2 header: the
// ACL, X-Forwarded-For and X-Forwarded-Port then see the client and
// address it names; a trusted peer silent past the wait is refused when
// Required; an untrusted peer's header is not read, and is a malformed
// request.
func TestServerAcceptProxy(t *testing.T) {
	leaks(t)
	b := startBackend(t, "b", nil)
	p, err := New(newGroup(t, nil, b.member()), Options{XForwardedPort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	client := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 4242}
	vip := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 8080}
	const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

	t.Run("trusted v2", func(t *testing.T) {
		s, h := startServer(t, p, ServerConfig{AcceptProxy: AcceptProxy{From: loopback, Required: true}})
		c := dial(t, s)
		if _, err := proxyproto.HeaderProxyFromAddrs(2, client, vip).WriteTo(c); err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, get)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET behind a v2 header: %v, %v; want 200", resp, err)
		}
		resp.Body.Close()
		r := b.lastRequest()
		if got := r.Header.Get("X-Forwarded-For"); got != "203.0.113.7" {
			t.Errorf("X-Forwarded-For = %q, want the header's client 203.0.113.7", got)
		}
		if got := r.Header.Get("X-Forwarded-Port"); got != "8080" {
			t.Errorf("X-Forwarded-Port = %q, want the header's destination port 8080", got)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.allowed) == 0 || h.allowed[0] != netip.MustParseAddr("203.0.113.7") {
			t.Errorf("Host.Allow asked about %v, want 203.0.113.7", h.allowed)
		}
	})

	t.Run("silent, required", func(t *testing.T) {
		hits := b.hits.Load()
		// An hour's wait, over at accept: only the clock can end it
		// within the test.
		past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
		s, h := startServer(t, p, ServerConfig{AcceptProxy: AcceptProxy{From: loopback, Required: true, Timeout: time.Hour, Now: past}})
		// The reset may come before the dial returns.
		if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Error("a silent trusted peer's connection stayed open, want it reset")
			}
		}
		if n := h.m.ProxyRefused.Load(); n != 1 {
			t.Errorf("ProxyRefused = %d, want 1", n)
		}
		if n := b.hits.Load() - hits; n != 0 {
			t.Errorf("backend hits = %d, want 0", n)
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		s, _ := startServer(t, p, ServerConfig{AcceptProxy: AcceptProxy{From: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
		c := dial(t, s)
		proxyproto.HeaderProxyFromAddrs(1, client, vip).WriteTo(c)
		io.WriteString(c, get)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 400 {
			t.Fatalf("an untrusted peer's header: %v, %v; want 400", resp, err)
		}
		resp.Body.Close()
	})
}

// dial connects to s, the connection closing with the test and failing
// a read that would otherwise hang it.
func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServerAcceptProxyRefused: NewServer refuses a bad AcceptProxy,
// naming the field, before it serves anything.
func TestServerAcceptProxyRefused(t *testing.T) {
	leaks(t)
	p, err := New(newGroup(t, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name  string
		a     AcceptProxy
		field string
	}{
		{"bad prefix", AcceptProxy{From: []netip.Prefix{loopback[0], {}}}, "AcceptProxy.From[1]"},
		{"required without from", AcceptProxy{Required: true}, "AcceptProxy.From"},
		{"timeout without from", AcceptProxy{Timeout: time.Second}, "AcceptProxy.From"},
		{"negative timeout", AcceptProxy{From: loopback, Timeout: -time.Second}, "AcceptProxy.Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			s, err := p.NewServer(ln, ServerConfig{AcceptProxy: tc.a}, &recordingHost{nopHost: nopHost{log: slog.New(slog.DiscardHandler)}})
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatalf("NewServer(AcceptProxy %+v) = nil error, want %s refused", tc.a, tc.field)
			}
			ce, ok := errors.AsType[*ConfigError](err)
			if !ok || ce.Field != tc.field || !strings.HasPrefix(err.Error(), "httpproxy: "+tc.field+" ") {
				t.Errorf("NewServer(AcceptProxy %+v) = %v, want httpproxy's ConfigError on %s", tc.a, err, tc.field)
			}
		})
	}
}
