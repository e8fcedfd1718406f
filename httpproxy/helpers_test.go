package httpproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

func leaks(t *testing.T) { leakcheck.Check(t) }

func newGroup(t *testing.T, sched balancer.Scheduler, bs ...balancer.Backend) *balancer.Group {
	t.Helper()
	g, err := balancer.New(balancer.Config{Scheduler: sched}, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// backend is a test origin: it answers with its name (in the body and
// an X-Backend header) unless given a handler, and remembers the last
// request it saw.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64

	mu   sync.Mutex
	last *http.Request
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, name)
		}
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.last = r.Clone(r.Context())
		b.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) member() balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.addr()}
}

func (b *backend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// mount serves p from a plain net/http server (the handler tier) and
// returns its URL; the server and the proxy close with the test.
func mount(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return srv.URL
}

// client is a client that neither asks for nor decodes compression
// unless a test sets Accept-Encoding itself.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}
