package health_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
)

// newChecker makes a Checker stopped at the end of the test.
func newChecker(t *testing.T, cfg health.Config, targets ...health.Target) *health.Checker {
	t.Helper()
	c, err := health.New(cfg, targets...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// closedTCP returns a loopback address where nothing listens: connects
// are refused.
func closedTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedUDP returns a loopback UDP address where nothing listens: the
// kernel answers with ICMP port unreachable.
func closedUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// tcpServer accepts connections; with hang it holds them open without a
// word (an HTTP server that never answers), else it closes them at once.
// It returns the address and the count of accepted connections.
func tcpServer(t *testing.T, hang bool) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			if !hang {
				c.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c) // until the prober closes
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), &n
}

// seen is what an httpServer saw of the last request.
type seen struct {
	mu     sync.Mutex
	method string
	host   string
	uri    string
	close  bool
	conns  int // new connections
	hits   map[string]int
}

func (s *seen) get() seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seen{method: s.method, host: s.host, uri: s.uri, close: s.close, conns: s.conns, hits: s.hits}
}

// httpServer answers with the status status() returns; /slow waits for
// the client to go away; 302 redirects to /target, whose hits are counted.
func httpServer(t *testing.T, status func() int) (string, *seen) {
	t.Helper()
	s := &seen{hits: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.method, s.host, s.uri, s.close = r.Method, r.Host, r.RequestURI, r.Close
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		code := status()
		if code == http.StatusFound {
			w.Header().Set("Location", "/target")
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, strings.Repeat("body ", 1000))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), s
}

func fixed(code int) func() int { return func() int { return code } }

// udpServer answers each datagram with reply(request); a nil reply makes
// it silent.
func udpServer(t *testing.T, reply func(req string) string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply != nil {
				_, _ = pc.WriteTo([]byte(reply(string(buf[:n]))), from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

// recorder is a StatusSetter and OnChange hook that records what it hears.
type recorder struct {
	mu     sync.Mutex
	sets   []string // "id=true"
	events []health.Event
	ch     chan health.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan health.Event, 100)} }

func (r *recorder) SetHealthy(id string, healthy bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets = append(r.sets, fmt.Sprintf("%s=%v", id, healthy))
	return nil
}

func (r *recorder) onChange(ev health.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.ch <- ev:
	default:
	}
}

func (r *recorder) takeSets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.sets)
	r.sets = nil
	return s
}

func (r *recorder) takeEvents() []health.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := slices.Clone(r.events)
	r.events = nil
	return e
}

// round runs one CheckNow and returns the results.
func round(t *testing.T, c *health.Checker) []health.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.CheckNow(ctx)
}

// dialCloser dials TCP and closes at once, like the built-in probe.
type dialCloser struct{ d net.Dialer }

func (n *dialCloser) dial(ctx context.Context, addr string) error {
	c, err := n.d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
