package listener

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// httpBackend is a backend HTTP server on loopback that answers with its
// name (in the body and an X-Backend header) unless given a handler, and
// remembers the last request header it saw.
type httpBackend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64

	mu    sync.Mutex
	last  http.Header
	proto string
}

func startHTTPBackend(t *testing.T, name string, h http.HandlerFunc, opts ...func(*http.Server)) *httpBackend {
	t.Helper()
	b := &httpBackend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, name)
		}
	}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.last = r.Header.Clone()
		b.last.Set("Host", r.Host)
		b.proto = r.Proto
		b.mu.Unlock()
		h(w, r)
	}))
	for _, o := range opts {
		o(b.srv.Config)
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *httpBackend) addr() string { return b.srv.Listener.Addr().String() }

func (b *httpBackend) backend(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.addr(), Weight: weight}
}

func (b *httpBackend) lastHeader() (http.Header, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.proto
}

// newClient returns an HTTP client that closes its idle connections when
// the test ends.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

func httpURL(l *Listener, path string) string {
	return "http://" + listenerAddr(l) + path
}

// get fetches url and returns the status, body and response header.
func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// addHTTP adds an HTTP listener over bs (weight 100 each, round robin
// unless a scheduler is given in cfg.Group).
func addHTTP(t *testing.T, cfg Config, bs ...*httpBackend) *Listener {
	t.Helper()
	if cfg.Protocol == "" {
		cfg.Protocol = HTTP
	}
	if cfg.Group == nil {
		var members []balancer.Backend
		for _, b := range bs {
			members = append(members, b.backend(100))
		}
		cfg.Group = newGroup(t, balancer.RoundRobin(), members...)
	}
	return addListener(t, newInstance(t), cfg)
}

// deadAddr returns a loopback address nothing listens on: one that was
// bound a moment ago, so connections to it are refused.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// lanes reports how many requests l's fast lane served and how many
// connections it handed to net/http.
func lanes(l *Listener) (served, handedOff uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.srv.(httpServer).Lanes()
}

// served is how many requests l's fast lane answered.
func served(l *Listener) uint64 {
	s, _ := lanes(l)
	return s
}
