package listener

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
)

// responseShapes answers by path with a response of each shape: chunked,
// with a trailer, closing its connection, 304, 204, and a fixed length.
func responseShapes(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/chunked":
		io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	case "/close":
		w.Header().Set("Connection", "close")
		io.WriteString(w, "closing")
	case "/304":
		w.WriteHeader(http.StatusNotModified)
	case "/204":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "fixed")
	}
}

// TestHTTPBackendPool covers the kept-alive GET and HEAD path: framing of
// every kind, connections the backend closes, and stale idle connections.
func TestHTTPBackendPool(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", responseShapes, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	l := addHTTP(t, Config{}, b)
	c := newClient(t)
	for _, tt := range []struct{ path, want string }{
		{"/chunked", "part1,part2"}, {"/trailer", "body"}, {"/close", "closing"}, {"/close", "closing"},
		{"/304", ""}, {"/204", ""}, {"/", "fixed"}, {"/", "fixed"},
	} {
		code, body, _ := get(t, c, httpURL(l, tt.path))
		if code >= 400 || body != tt.want {
			t.Errorf("GET %s = %d %q, want %q", tt.path, code, body, tt.want)
		}
	}
	resp, err := c.Head(httpURL(l, "/"))
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 5 {
		t.Errorf("HEAD = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The backend closes its idle connections: the next GET is resent on
	// a fresh one.
	time.Sleep(150 * time.Millisecond)
	for i := range 3 {
		if code, body, _ := get(t, c, httpURL(l, "/")); code != 200 || body != "fixed" {
			t.Errorf("GET %d after the backend's idle timeout = %d %q", i, code, body)
		}
	}
	if st := l.Stats(); st.Status[3]+st.Status[4] != 0 {
		t.Errorf("Stats.Status = %v, want no 4xx or 5xx", st.Status)
	}
}

// TestHTTPHardStop: a request stuck on a silent backend is cut when the
// Stop deadline passes.
func TestHTTPHardStop(t *testing.T) {
	leaks(t)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			release := make(chan struct{})
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer slow.Close()
			defer close(release)
			g := newGroup(t, nil, balancer.Backend{ID: "slow", Addr: slow.Listener.Addr().String(), Weight: 100})
			l := addHTTP(t, Config{Group: g})
			c := newClient(t)
			errc := make(chan error, 1)
			go func() {
				req, _ := http.NewRequest(method, httpURL(l, "/"), strings.NewReader("x"))
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			eventually(t, "the request to reach the backend", func() bool { return l.Stats().Backends["slow"].Active == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := l.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Stop = %v, want the deadline", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Stop took %v", d)
			}
			recvWithin(t, errc, 15*time.Second, "the request to end")
		})
	}
}

func TestHTTPAccessLog(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	var buf syncBuffer
	l := addHTTP(t, Config{HTTP: HTTPOptions{Options: httpproxy.Options{AccessLog: slog.New(slog.NewTextHandler(&buf, nil))}}}, b)
	c := newClient(t)
	get(t, c, httpURL(l, "/x?y=1"))
	got := buf.String()
	for _, want := range []string{"msg=\"http request\"", "method=GET", "path=/x", "status=200", "bytes=1", "backend=b", "client=127.0.0.1:"} {
		if !strings.Contains(got, want) {
			t.Errorf("access log %q lacks %s", got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHTTPBandwidth(t *testing.T) {
	leaks(t)
	body := strings.Repeat("x", 320<<10)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	l := addHTTP(t, Config{Bandwidth: 1}, b) // 125 kB/s after a 256 KiB burst
	c := newClient(t)
	start := time.Now()
	if _, got, _ := get(t, c, httpURL(l, "/")); len(got) != len(body) {
		t.Fatalf("body of %d bytes", len(got))
	}
	// 64 KiB beyond the burst at 125 kB/s take about 0.5 s.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("320 KiB at 1 Mbps took %v, want about 0.5s", d)
	}
}
