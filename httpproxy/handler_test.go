package httpproxy

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// TestHandlerInPlainServer mounts the proxy in a plain net/http server:
// requests reach the group's backends with the header plan applied,
// bodies go through, compression applies, and a group without backends
// answers 503.
func TestHandlerInPlainServer(t *testing.T) {
	leaks(t)
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := newGroup(t, balancer.RoundRobin(), a.member(), b.member())
	p, err := New(g, Options{XForwardedProto: true, SLBID: true, Identity: Identity{ID: "lb-1"}})
	if err != nil {
		t.Fatal(err)
	}
	url := mount(t, p)
	c := client(t)
	seen := map[string]int{}
	for range 4 {
		req, _ := http.NewRequest(http.MethodGet, url+"/x?y=1", nil)
		req.Header.Set("X-Forwarded-For", "192.0.2.9")
		req.Header.Set("SLB-ID", "forged")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		seen[string(body)]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("round robin over a and b: %v", seen)
	}
	r := a.lastRequest()
	for k, want := range map[string]string{
		"X-Forwarded-For": "192.0.2.9, 127.0.0.1", "X-Forwarded-Proto": "http", "Slb-Id": "lb-1", "X-Hop": "",
	} {
		if got := strings.Join(r.Header.Values(k), ","); got != want {
			t.Errorf("backend saw %s %q, want %q", k, got, want)
		}
	}
	if r.URL.RequestURI() != "/x?y=1" {
		t.Errorf("backend saw target %q", r.URL.RequestURI())
	}

	// A body goes through.
	echo := startBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	pe, err := New(newGroup(t, nil, echo.member()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(mount(t, pe), "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "hello" {
		t.Errorf("POST echoed %q", got)
	}

	// No backend: 503 with the proxy's own body.
	empty, err := New(newGroup(t, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Get(mount(t, empty))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(got), "no backend") {
		t.Errorf("empty group: %d %q, want 503", resp.StatusCode, got)
	}
}

// TestHandlerGzip: inside a plain server the proxy compresses what the
// client accepts, as the listener tier does.
func TestHandlerGzip(t *testing.T) {
	leaks(t)
	text := strings.Repeat("compressible text ", 200)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, text)
	})
	p, err := New(newGroup(t, nil, b.member()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, mount(t, p), nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("Content-Encoding %q, Vary %q: want gzip, Accept-Encoding", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if string(got) != text {
		t.Errorf("decompressed body differs (%d bytes, want %d)", len(got), len(text))
	}
}

// TestHandlerHooks: Rewrite, ModifyResponse, ErrorHandler and Transport
// are called as httputil.ReverseProxy calls its own.
func TestHandlerHooks(t *testing.T) {
	leaks(t)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		io.WriteString(w, "ok")
	})
	var trips atomic.Int32
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p, err := New(newGroup(t, nil, b.member()), Options{
		Rewrite: func(r *http.Request) {
			r.URL.Path = "/rewritten" + r.URL.Path
			r.Header.Set("X-Rewritten", "yes")
		},
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			trips.Add(1)
			return tr.RoundTrip(r)
		}),
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Query().Get("fail") != "" {
				return errors.New("refused by the hook")
			}
			resp.Header.Set("X-Modified", "yes")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "handled: "+err.Error())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	url := mount(t, p)
	c := client(t)
	resp, err := c.Get(url + "/a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Path") != "/rewritten/a" || resp.Header.Get("X-Modified") != "yes" {
		t.Errorf("X-Path %q, X-Modified %q: want /rewritten/a, yes", resp.Header.Get("X-Path"), resp.Header.Get("X-Modified"))
	}
	if b.lastRequest().Header.Get("X-Rewritten") != "yes" {
		t.Error("the backend did not get the rewritten header")
	}
	if n := trips.Load(); n != 1 {
		t.Errorf("the transport made %d round trips, want 1", n)
	}
	resp, err = c.Get(url + "/a?fail=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || !strings.Contains(string(body), "refused by the hook") {
		t.Errorf("ModifyResponse error: %d %q, want 418 from the ErrorHandler", resp.StatusCode, body)
	}

	// A group without backends reaches the ErrorHandler with ErrNoBackend.
	var got atomic.Value
	pe, err := New(newGroup(t, nil), Options{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		got.Store(err)
		w.WriteHeader(http.StatusServiceUnavailable)
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Get(mount(t, pe))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err, _ := got.Load().(error); !errors.Is(err, balancer.ErrNoBackend) {
		t.Errorf("ErrorHandler got %v, want ErrNoBackend", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNewRefuses: every refused option at once, each named.
func TestNewRefuses(t *testing.T) {
	_, err := New(nil, Options{RequestTimeout: -time.Second, Rules: []Rule{{Path: "api"}}})
	if err == nil {
		t.Fatal("New accepted a nil group")
	}
	for _, want := range []string{"httpproxy: Group", "httpproxy: RequestTimeout -1s: negative", "httpproxy: Rules[0].Group"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBackendPoolPrune: the pooled connections of a removed backend are
// closed.
func TestBackendPoolPrune(t *testing.T) {
	leaks(t)
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	g := newGroup(t, balancer.RoundRobin(), a.member(), b.member())
	p, err := New(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	url := mount(t, p)
	c := client(t)
	for range 4 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	idle := func(addr string) int {
		v, ok := p.handler().pool.hosts.Load(addr)
		if !ok {
			return 0
		}
		il := v.(*idleList)
		il.mu.Lock()
		defer il.mu.Unlock()
		return len(il.conns)
	}
	if idle(a.addr()) == 0 {
		t.Fatal("no pooled connection to a")
	}
	if err := g.Remove("a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle(a.addr()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a's pooled connections were not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if idle(b.addr()) == 0 {
		t.Error("b's pooled connections were closed too")
	}
}

var _ http.Handler = (*Proxy)(nil)

// TestHandlerHTTP2PooledGET: GETs that came over HTTP/2 (whose bodies
// are empty streams, not http.NoBody) take the pooled transport as
// HTTP/1 GETs do.
func TestHandlerHTTP2PooledGET(t *testing.T) {
	leaks(t)
	b := startBackend(t, "b", nil)
	p, err := New(newGroup(t, nil, b.member()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	c := srv.Client()
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	if _, ok := p.handler().pool.hosts.Load(b.addr()); !ok {
		t.Error("the HTTP/2 GET did not take the pool")
	}
}
