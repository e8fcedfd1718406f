package listener

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/httpproxy"
)

// keepAliveRequest returns request i (from 1) of kind k: g (a GET) and z
// (a GET accepting gzip) the fast lane serves; p (a POST) and o (an
// HTTP/1.0 keep-alive GET) are handed to net/http's lane.
func keepAliveRequest(k byte, i int) string {
	path := "/" + strconv.Itoa(i)
	switch k {
	case 'g':
		return "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n"
	case 'p':
		return "POST " + path + " HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
	case 'z':
		return "GET " + path + " HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"
	case 'o':
		return "GET " + path + " HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
	}
	panic("unknown request kind " + string(k))
}

// TestHTTPKeepAliveLimit sends requests one by one over one keep-alive
// connection: the response to request MaxKeepAliveRequests, and no
// other, says "Connection: close", and the listener closes the
// connection after it, whichever lanes the requests took.
func TestHTTPKeepAliveLimit(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	b := startHTTPBackend(t, "b", nil)
	mixed := strings.Repeat("g", 50) + "p" + strings.Repeat("gzop", 12) + "g" // 100
	tests := []struct {
		name          string
		https         bool
		limit         int // MaxKeepAliveRequests; 0 is the default, 100
		kinds         string
		served, hands uint64 // requests the fast lane served, connections it handed off
	}{
		{"fast lane", false, 0, strings.Repeat("g", 100), 100, 0},
		{"fast lane with gzip", false, 0, strings.Repeat("gz", 50), 100, 0},
		{"net/http lane", false, 0, strings.Repeat("pzo", 33) + "p", 0, 1},
		{"HTTP/1.0 keep-alive", false, 0, strings.Repeat("o", 100), 0, 1},
		{"both lanes", false, 0, mixed, 50, 1},
		{"https/1.1 fast lane", true, 0, strings.Repeat("g", 100), 100, 0},
		{"https/1.1 both lanes", true, 0, mixed, 50, 1},
		{"limit 3 fast lane", false, 3, "ggg", 3, 0},
		{"limit 3 last in net/http", false, 3, "ggp", 2, 1},
		{"limit 3 HTTP/1.0", false, 3, "ooo", 0, 1},
		{"https/1.1 limit 3", true, 3, "gpg", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l *Listener
			var c net.Conn
			var err error
			opts := HTTPOptions{MaxKeepAliveRequests: tt.limit}
			if tt.https {
				l = addHTTPS(t, ca, opts, b)
				c, err = tls.Dial("tcp", listenerAddr(l), &tls.Config{RootCAs: ca.pool, ServerName: "default.test", NextProtos: []string{"http/1.1"}})
			} else {
				l = addHTTP(t, Config{HTTP: opts}, b)
				c, err = net.Dial("tcp", listenerAddr(l))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			last := len(tt.kinds)
			for i := 1; i <= last; i++ {
				req := keepAliveRequest(tt.kinds[i-1], i)
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("response %d (%q): status %d", i, tt.kinds[i-1], resp.StatusCode)
				}
				if resp.Close != (i == last) {
					t.Fatalf("response %d (%q): Connection: close = %v, want %v", i, tt.kinds[i-1], resp.Close, i == last)
				}
			}
			if _, err := r.ReadByte(); err != io.EOF {
				t.Errorf("after response %d: read %v, want EOF (the connection closed)", last, err)
			}
			if s, h := lanes(l); s != tt.served || h != tt.hands {
				t.Errorf("the fast lane served %d requests and handed off %d connections, want %d and %d", s, h, tt.served, tt.hands)
			}
		})
	}
}

// TestHTTP2RequestLimit sends three times HTTP2MaxRequestsPerConnection
// GETs over HTTP/2 with Go's client, one by one and from 8 goroutines:
// none fails (the client retries what the GOAWAY left unprocessed), and
// the listener made the client move to new connections.
func TestHTTP2RequestLimit(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	ports := newPortCounter()
	b := startHTTPBackend(t, "b", ports.handler)
	const limit = 10
	for _, tt := range []struct {
		name    string
		workers int
	}{
		{"sequential", 1},
		{"concurrent", 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ports.reset()
			l := addHTTPS(t, ca, HTTPOptions{HTTP2MaxRequestsPerConnection: limit, Options: httpproxy.Options{XForwardedClientSrcPort: true}}, b)
			c := httpsClient(t, ca, nil, true)
			if errs := getMany(c, httpsURL(l, "/"), 3*limit, tt.workers); len(errs) > 0 {
				t.Fatalf("%d of %d requests failed, first: %v", len(errs), 3*limit, errs[0])
			}
			per := ports.counts()
			t.Logf("requests per client connection: %v", per)
			// Racing requests may each dial; connections that carried
			// none are in the listener's count only.
			if n := l.Stats().New; len(per) < 2 || uint64(len(per)) > uint64(n) {
				t.Errorf("%d client connections carried requests (the listener accepted %d), want at least 2", len(per), n)
			}
			if tt.workers == 1 && per[0] < limit {
				t.Errorf("the first connection carried %d requests, want at least %d", per[0], limit)
			}
		})
	}
	t.Run("default 1000", func(t *testing.T) {
		ports.reset()
		l := addHTTPS(t, ca, HTTPOptions{Options: httpproxy.Options{XForwardedClientSrcPort: true}}, b)
		if got := l.cfg.HTTP.HTTP2MaxRequestsPerConnection; got != 1000 {
			t.Fatalf("HTTP2MaxRequestsPerConnection = %d, want 1000", got)
		}
		c := httpsClient(t, ca, nil, true)
		if errs := getMany(c, httpsURL(l, "/"), 1001, 1); len(errs) > 0 {
			t.Fatalf("%d of 1001 requests failed, first: %v", len(errs), errs[0])
		}
		per := ports.counts()
		t.Logf("requests per client connection: %v", per)
		if len(per) != 2 || per[0] < 1000 {
			t.Errorf("requests per connection %v, want 1000 (or a few more) on the first and the rest on a second", per)
		}
	})
}

// getMany sends n GETs for url over c from workers goroutines and
// returns the errors, HTTP/2 not spoken included.
func getMany(c *http.Client, url string, n, workers int) []error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2) {
						err = fmt.Errorf("%s %s", resp.Proto, resp.Status)
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("request %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// portCounter is a backend handler counting requests by the client's
// source port (X-Forwarded-Client-srcport): requests per client
// connection.
type portCounter struct {
	mu    sync.Mutex
	order []string
	n     map[string]int
}

func newPortCounter() *portCounter { return &portCounter{n: map[string]int{}} }

func (p *portCounter) handler(w http.ResponseWriter, r *http.Request) {
	port := r.Header.Get("X-Forwarded-Client-srcport")
	p.mu.Lock()
	if p.n[port] == 0 {
		p.order = append(p.order, port)
	}
	p.n[port]++
	p.mu.Unlock()
	io.WriteString(w, "ok")
}

func (p *portCounter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.order, p.n = nil, map[string]int{}
}

// counts returns the requests of each connection, in order of their
// first request.
func (p *portCounter) counts() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.order))
	for _, port := range p.order {
		out = append(out, p.n[port])
	}
	return slices.Clip(out)
}
