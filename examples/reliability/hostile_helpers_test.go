package reliability_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
	"github.com/stretchr/testify/require"
)

// backend is an HTTP backend on loopback that names itself in an
// X-Backend header and the body, and remembers the paths it was asked
// for.
type backend struct {
	id  string
	srv *httptest.Server

	mu    sync.Mutex
	paths []string
}

func startBackend(t *testing.T, id string) *backend {
	t.Helper()
	b := &backend{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.paths = append(b.paths, r.URL.Path)
		b.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", id)
		io.WriteString(w, id)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) member() balancer.Backend {
	return balancer.Backend{ID: b.id, Addr: b.srv.Listener.Addr().String(), Weight: 100}
}

// seen returns the paths the backend was asked for so far.
func (b *backend) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.paths)
}

func newGroup(t *testing.T, bs ...*backend) *balancer.Group {
	t.Helper()
	var ms []balancer.Backend
	for _, b := range bs {
		ms = append(ms, b.member())
	}
	g, err := balancer.New(balancer.Config{}, ms...)
	require.NoError(t, err)
	return g
}

// addListener starts cfg on 127.0.0.1 at a port the system picks (Port
// 0, reported by Port) in an instance of its own, stopped when the test
// ends.
func addListener(t *testing.T, cfg listener.Config) *listener.Listener {
	t.Helper()
	in, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-hostile", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	cfg.Host = "127.0.0.1"
	l, err := in.Add(cfg)
	require.NoError(t, err)
	return l
}

func addr(l *listener.Listener) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port()))
}

// rawRequest writes raw to addr on a fresh connection and reads one
// response; it returns the status (0 if none came) and whether the
// listener then closed the connection (within 2 s).
func rawRequest(t *testing.T, addr, raw string) (status int, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	r := bufio.NewReader(c)
	if resp, err := http.ReadResponse(r, nil); err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = r.ReadByte()
	var ne net.Error
	return status, err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
