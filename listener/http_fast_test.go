package listener

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
)

// rawResponse is a response read by rawExchange, with its body.
type rawResponse struct {
	*http.Response
	body string
}

// rawExchange writes req, one or more requests, on a new connection to
// l and reads their responses.
func rawExchange(t *testing.T, l *Listener, req string) []rawResponse {
	t.Helper()
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	reqs := bufio.NewReader(strings.NewReader(req))
	br := bufio.NewReader(c)
	var out []rawResponse
	for {
		q, err := http.ReadRequest(reqs)
		if err != nil {
			return out
		}
		io.Copy(io.Discard, q.Body)
		resp, err := http.ReadResponse(br, q)
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", len(out)+1, err)
		}
		out = append(out, rawResponse{resp, string(body)})
	}
}

// echoPath answers with the request's method, path and body.
func echoPath(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
}

func TestFastLanePipelinedAndHandedOff(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", echoPath)
	l := addHTTP(t, Config{}, b)
	// Three GETs in one write, then a POST (net/http's lane) and a GET
	// after it on the same connection.
	req := "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3?x=%20 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	resps := rawExchange(t, l, req)
	want := []string{"GET /1 ", "GET /2 ", "GET /3?x=%20 ", "POST /4 hello", "GET /5 "}
	for i, r := range resps {
		if r.StatusCode != http.StatusOK || r.body != want[i] {
			t.Errorf("response %d: %d %q, want 200 %q", i+1, r.StatusCode, r.body, want[i])
		}
	}
	if !resps[4].Close {
		t.Error("Connection: close was not honoured")
	}
	if s, h := lanes(l); s != 3 || h != 1 {
		t.Errorf("fast lane served %d requests and handed off %d connections, want 3 and 1", s, h)
	}
	hdr, _ := b.lastHeader()
	if got := hdr.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
}

// TestFastLaneHeaders checks that both lanes forward the same request
// fields: the fast lane's byte-level edits against net/http's.
func TestFastLaneHeaders(t *testing.T) {
	for _, lane := range []string{"fast", "net/http"} {
		t.Run(lane, func(t *testing.T) {
			leaks(t)
			noFastLane = lane != "fast"
			t.Cleanup(func() { noFastLane = false })
			b := startHTTPBackend(t, "b", nil)
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: HTTP, Group: newGroup(t, nil, b.backend(100)),
				HTTP: HTTPOptions{Options: httpproxy.Options{SLBID: true, XForwardedProto: true, XForwardedPort: true, XForwardedClientSrcPort: true}}})
			r := rawExchange(t, l, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nSLB-ID: forged\r\n"+
				"X-Forwarded-Proto: forged\r\nKeep-Alive: 1\r\nProxy-Connection: x\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n")[0]
			if r.StatusCode != http.StatusOK || r.Header.Get("X-Backend") != "b" || r.Header.Get("Date") == "" {
				t.Fatalf("response %d %v", r.StatusCode, r.Header)
			}
			h, _ := b.lastHeader()
			for k, want := range map[string]string{
				"X-Forwarded-For": "10.0.0.1, 127.0.0.1", "Slb-Id": in.ID(), "X-Forwarded-Proto": "http", "Host": "h",
				"X-Forwarded-Port": strconv.Itoa(l.Port()), "X-Kept": "yes", "Keep-Alive": "", "Proxy-Connection": "", "Te": "",
			} {
				if got := strings.Join(h.Values(k), ","); got != want {
					t.Errorf("backend saw %s %q, want %q", k, got, want)
				}
			}
			if h.Get("X-Forwarded-Client-Srcport") == "" {
				t.Error("no X-Forwarded-Client-srcport")
			}
			if served := served(l); (served == 1) != (lane == "fast") {
				t.Errorf("the fast lane served %d requests", served)
			}
		})
	}
}

// TestFastLaneResponses sends one GET through the lane to a backend
// answering with canned bytes, for each way a response can be framed.
func TestFastLaneResponses(t *testing.T) {
	big := strings.Repeat("v", 5000)
	tests := []struct {
		name, resp, method string
		status             int
		body, trailer      string
		close              bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET", 200, "hello", "", false},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: done\r\n\r\n", "GET", 200, "abcde", "done", false},
		{"unframed", "HTTP/1.0 200 OK\r\n\r\nuntil close", "GET", 200, "until close", "", true},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", 200, "", "", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", "GET", 304, "", "", false},
		{"backend closes", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", "GET", 404, "no", "", false},
		{"long head", "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 2\r\n\r\nok", "GET", 200, "ok", "", false},
		{"informational", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", 502, "", "", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", "GET", 502, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks(t)
			addr := acceptOnce(t, func(c net.Conn) {
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, tt.resp)
			})
			in := newInstance(t)
			l := addListener(t, in, Config{Protocol: HTTP, ConnectTimeout: time.Second,
				Group: newGroup(t, nil, balancer.Backend{ID: "raw", Addr: addr, Weight: 1})})
			r := rawExchange(t, l, tt.method+" / HTTP/1.1\r\nHost: a\r\n\r\n")[0]
			if r.StatusCode != tt.status || tt.status != 502 && r.body != tt.body {
				t.Errorf("got %d %q, want %d %q", r.StatusCode, r.body, tt.status, tt.body)
			}
			if tt.method == "HEAD" && r.Header.Get("Content-Length") != "99" {
				t.Errorf("HEAD: Content-Length %q, want the backend's 99", r.Header.Get("Content-Length"))
			}
			if got := r.Trailer.Get("X-T"); got != tt.trailer {
				t.Errorf("trailer %q, want %q", got, tt.trailer)
			}
			if r.Close != tt.close {
				t.Errorf("client connection closes: %v, want %v", r.Close, tt.close)
			}
		})
	}
}

// TestFastLaneStop stops a listener with a slow request in the lane, an
// idle keep-alive connection and a fresh one that has sent nothing yet:
// the request completes, the idle connection is closed at once, the
// fresh one's first request is served (a client's request on its way
// when the stop came), new connections are refused.
func TestFastLaneStop(t *testing.T) {
	leaks(t)
	release := make(chan struct{})
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "done")
	})
	l := addHTTP(t, Config{}, b)
	idle, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if r, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive request: %v, %v", r, err)
	}
	fresh, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	slow := make(chan *http.Response, 1)
	go func() {
		c, err := net.Dial("tcp", listenerAddr(l))
		if err != nil {
			slow <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		r, _ := http.ReadResponse(bufio.NewReader(c), nil)
		if r != nil {
			io.ReadAll(r.Body)
		}
		slow <- r
	}()
	// The keep-alive request, then the slow one.
	eventually(t, "the slow request to reach the backend", func() bool { return b.hits.Load() >= 2 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- l.Stop(ctx)
	}()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle connection read %d bytes during Stop, want it closed", n)
	}
	if _, err := net.DialTimeout("tcp", listenerAddr(l), time.Second); err == nil {
		t.Error("a new connection was accepted during Stop")
	}
	io.WriteString(fresh, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	fresh.SetReadDeadline(time.Now().Add(4 * time.Second)) // within freshGrace
	if r, err := http.ReadResponse(bufio.NewReader(fresh), nil); err != nil || r.StatusCode != http.StatusOK || !r.Close {
		t.Errorf("a fresh connection's first request during Stop: %v, %v; want 200 with Connection: close", r, err)
	}
	close(release)
	r := recvWithin(t, slow, 25*time.Second, "the in-flight request's answer")
	if r == nil || r.StatusCode != http.StatusOK || !r.Close {
		t.Fatalf("in-flight request: %+v, want 200 with Connection: close", r)
	}
	if err := recvWithin(t, stopped, 15*time.Second, "Stop to return"); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestHTTPRequestBodies: bodies up to 64 KiB are read before a backend
// is chosen and sent with a Content-Length; longer ones stream through;
// a malformed one is the client's 400 and reaches no backend.
func TestHTTPRequestBodies(t *testing.T) {
	leaks(t)
	type seen struct {
		n      int
		length int64
		te     []string
	}
	got := make(chan seen, 1)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got <- seen{int(n), r.ContentLength, r.TransferEncoding}
	})
	l := addHTTP(t, Config{}, b)
	for _, size := range []int{10, 64 << 10, 200 << 10} {
		// Chunked from the client: the length is unknown to it.
		req := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(size), 16) + "\r\n" + strings.Repeat("x", size) + "\r\n0\r\n\r\n"
		if r := rawExchange(t, l, req)[0]; r.StatusCode != http.StatusOK {
			t.Fatalf("%d bytes: status %d", size, r.StatusCode)
		}
		s := recvWithin(t, got, 10*time.Second, "the backend to read the body")
		if s.n != size || size <= 64<<10 && s.length != int64(size) || size > 64<<10 && s.length != -1 {
			t.Errorf("%d bytes chunked: backend read %d, Content-Length %d, Transfer-Encoding %q", size, s.n, s.length, s.te)
		}
	}
	hits := b.hits.Load()
	r := rawExchange(t, l, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")[0]
	if r.StatusCode != http.StatusBadRequest || !r.Close || b.hits.Load() != hits {
		t.Errorf("malformed chunked body: %d, close %v, backend reached %d times; want 400, close, none",
			r.StatusCode, r.Close, b.hits.Load()-hits)
	}
}

// TestLanesAgree sends each request through a listener with the fast
// lane and one without, to the same backend, and checks that the
// backend sees the same request and the client the same response.
func TestLanesAgree(t *testing.T) {
	leaks(t)
	type seen struct {
		method, uri, host, proto string
		header                   http.Header
	}
	got := make(chan seen, 1)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		got <- seen{r.Method, r.RequestURI, r.Host, r.Proto, h}
		w.Header().Set("X-Echo", r.Header.Get("X-A"))
		w.Header()["Keep-Alive"] = []string{"timeout=5"} // hop-by-hop: never reaches the client
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	listeners := map[string]*Listener{}
	for _, lane := range []string{"fast", "net/http"} {
		noFastLane = lane != "fast"
		listeners[lane] = addHTTP(t, Config{HTTP: HTTPOptions{Options: httpproxy.Options{NoGzip: true, SLBIP: true, XForwardedProto: true}}}, b)
		noFastLane = false
	}
	tests := []struct{ name, req string }{
		{"plain", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"head", "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"query", "GET /p/q?a=1&b=%20&c HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"},
		{"repeated fields", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\nAccept: */*\r\nUser-Agent: ua/1\r\n\r\n"},
		{"prior X-Forwarded-For", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n"},
		{"forged lbkit fields", "GET / HTTP/1.1\r\nHost: a\r\nSLB-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n"},
		{"hop-by-hop", "GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 1\r\nTE: trailers\r\nProxy-Authorization: x\r\nConnection: keep-alive\r\n\r\n"},
		{"lower-case names", "GET / HTTP/1.1\r\nhost: a\r\nx-a: v\r\n\r\n"},
		{"whitespace", "GET / HTTP/1.1\r\nHost:a\r\nX-A:   v  \r\n\r\n"},
		{"chunked response", "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				reqs  []seen
				resps []rawResponse
			)
			for _, lane := range []string{"fast", "net/http"} {
				resps = append(resps, rawExchange(t, listeners[lane], tt.req)[0])
				reqs = append(reqs, <-got)
			}
			if f, n := fmt.Sprint(reqs[0]), fmt.Sprint(reqs[1]); f != n {
				t.Errorf("the backend saw\nfast:     %s\nnet/http: %s", f, n)
			}
			for _, r := range resps {
				r.Header.Del("Date")
			}
			f, n := resps[0], resps[1]
			if f.StatusCode != n.StatusCode || f.body != n.body || f.Close != n.Close || fmt.Sprint(f.Header) != fmt.Sprint(n.Header) ||
				fmt.Sprint(f.TransferEncoding) != fmt.Sprint(n.TransferEncoding) {
				t.Errorf("the client got\nfast:     %d %v %v close %v %q\nnet/http: %d %v %v close %v %q",
					f.StatusCode, f.Header, f.TransferEncoding, f.Close, f.body, n.StatusCode, n.Header, n.TransferEncoding, n.Close, n.body)
			}
		})
	}
	if served(listeners["fast"]) != uint64(len(tests)) {
		t.Errorf("the fast lane served %d of the %d requests", served(listeners["fast"]), len(tests))
	}
}

// TestFastLaneParksIdle: a keep-alive connection idle past parkAfter
// waits in the poller without a goroutine, is served again when its
// next request comes, and is closed when its client leaves; many idle
// connections do not hold a goroutine each.
// A listener serving on a handed socket parks the same way.
func TestFastLaneParksIdle(t *testing.T) {
	for _, handed := range []bool{false, true} {
		t.Run(map[bool]string{false: "bound", true: "handed"}[handed], func(t *testing.T) {
			testFastLaneParks(t, handed)
		})
	}
}

func testFastLaneParks(t *testing.T, handed bool) {
	leaks(t)
	if runtime.GOOS != "linux" {
		t.Skip("connections park on Linux only")
	}
	b := startHTTPBackend(t, "b", nil)
	var cfg Config
	if handed {
		cfg.Listener = localListener(t)
	}
	l := addHTTP(t, cfg, b)
	parked := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.srv.(httpServer).Parked()
	}
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	get := func() {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "b" {
			t.Fatalf("GET: %d %q", resp.StatusCode, body)
		}
	}
	for range 3 {
		get()
		eventually(t, "the idle connection to park", func() bool { return parked() == 1 })
	}
	c.Close()
	eventually(t, "the closed connection to leave the poller", func() bool { return parked() == 0 })

	// Many idle connections, one goroutine fewer each once parked.
	before := runtime.NumGoroutine()
	for range 50 {
		c, err := net.Dial("tcp", listenerAddr(l))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	eventually(t, "50 new connections to park", func() bool { return parked() == 50 })
	if n := runtime.NumGoroutine(); n > before+5 {
		t.Errorf("%d goroutines with 50 parked connections, %d before them", n, before)
	}
	if s, h := lanes(l); s != 3 || h != 0 {
		t.Errorf("lanes: %d served, %d handed off; want 3, 0", s, h)
	}
}
