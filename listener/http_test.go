package listener

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/internal/errtest"
	"github.com/lbkit/lbkit/session"
)

func TestHTTPWeights(t *testing.T) {
	leaks(t)
	a, b := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{Group: newGroup(t, nil, a.backend(75), b.backend(25))})
	c := newClient(t)
	got := map[string]int{}
	for range 40 {
		code, body, _ := get(t, c, httpURL(l, "/"))
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		got[body]++
	}
	if got["a"] != 30 || got["b"] != 10 {
		t.Errorf("40 requests with weights 75:25 went %v, want a:30 b:10", got)
	}
	st := l.Stats()
	if st.Status[1] != 40 || st.Backends["a"].New != 30 || st.UpstreamResponses != 40 || st.UpstreamLatency() <= 0 {
		t.Errorf("Stats: 2xx=%d a.New=%d upstream=%d/%v, want 40, 30, 40/>0", st.Status[1], st.Backends["a"].New, st.UpstreamResponses, st.Upstream)
	}
	if st.BytesOut != 40 || st.New == 0 {
		t.Errorf("Stats: BytesOut=%d New=%d, want 40 and > 0", st.BytesOut, st.New)
	}
}

func TestHTTPSchedulers(t *testing.T) {
	leaks(t)
	for _, sched := range []balancer.Scheduler{balancer.RoundRobin(), balancer.LeastConnections()} {
		t.Run(sched.Name(), func(t *testing.T) {
			a, b := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil)
			l := addHTTP(t, Config{Group: newGroup(t, sched, a.backend(100), b.backend(100))})
			c := newClient(t)
			got := map[string]int{}
			for range 20 {
				_, body, _ := get(t, c, httpURL(l, "/"))
				got[body]++
			}
			if got["a"] == 0 || got["b"] == 0 {
				t.Errorf("%s: 20 requests went %v, want both backends", sched.Name(), got)
			}
		})
	}
}

func TestHTTPHeaders(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	tests := []struct {
		name   string
		opts   HTTPOptions
		header string
		want   string // "" = absent
	}{
		{"xff default", HTTPOptions{}, "X-Forwarded-For", "127.0.0.1"},
		{"xff off", HTTPOptions{Options: httpproxy.Options{NoXForwardedFor: true}}, "X-Forwarded-For", ""},
		{"slb-id on", HTTPOptions{Options: httpproxy.Options{SLBID: true}}, "SLB-ID", "lb-test"},
		{"slb-id off", HTTPOptions{}, "SLB-ID", ""},
		{"slb-ip on", HTTPOptions{Options: httpproxy.Options{SLBIP: true}}, "SLB-IP", "192.0.2.10"},
		{"slb-ip off", HTTPOptions{}, "SLB-IP", ""},
		{"proto on", HTTPOptions{Options: httpproxy.Options{XForwardedProto: true}}, "X-Forwarded-Proto", "http"},
		{"proto off", HTTPOptions{}, "X-Forwarded-Proto", ""},
		{"port on", HTTPOptions{Options: httpproxy.Options{XForwardedPort: true}}, "X-Forwarded-Port", "PORT"},
		{"port off", HTTPOptions{}, "X-Forwarded-Port", ""},
		{"srcport on", HTTPOptions{Options: httpproxy.Options{XForwardedClientSrcPort: true}}, "X-Forwarded-Client-srcport", "SRCPORT"},
		{"srcport off", HTTPOptions{}, "X-Forwarded-Client-srcport", ""},
	}
	in, err := NewInstance(InstanceConfig{ID: "lb-test", Address: mustAddr("192.0.2.10"), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Stop(within(t, 10*time.Second)) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := addListener(t, in, Config{Protocol: HTTP, HTTP: tt.opts, Group: newGroup(t, nil, b.backend(100))})
			defer func() { in.Remove(within(t, 10*time.Second), l.Name()) }()
			c := newClient(t)
			var srcPort string
			tr := c.Transport.(*http.Transport)
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					_, srcPort, _ = net.SplitHostPort(conn.LocalAddr().String())
				}
				return conn, err
			}
			if code, _, _ := get(t, c, httpURL(l, "/")); code != 200 {
				t.Fatalf("status %d", code)
			}
			tr.CloseIdleConnections()
			h, _ := b.lastHeader()
			want := strings.NewReplacer("PORT", fmt.Sprint(l.Port()), "SRCPORT", srcPort).Replace(tt.want)
			if got := h.Get(tt.header); got != want {
				t.Errorf("backend saw %s = %q, want %q", tt.header, got, want)
			}
		})
	}
}

func TestHTTPXForwardedForAppends(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{}, b)
	c := newClient(t)
	get(t, c, httpURL(l, "/"), "X-Forwarded-For", "203.0.113.1, 198.51.100.2", "X-Forwarded-For", "192.0.2.3")
	h, _ := b.lastHeader()
	if got, want := h.Values("X-Forwarded-For"), []string{"203.0.113.1, 198.51.100.2, 192.0.2.3, 127.0.0.1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("X-Forwarded-For = %q, want %q", got, want)
	}
}

func TestHTTPHopByHop(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	})
	l := addHTTP(t, Config{}, b)
	c := newClient(t)
	_, _, rh := get(t, c, httpURL(l, "/"), "Connection", "X-Drop", "X-Drop", "1", "Proxy-Authorization", "x", "Te", "gzip", "X-Keep", "1")
	h, proto := b.lastHeader()
	for _, k := range []string{"X-Drop", "Proxy-Authorization", "Te"} {
		if h.Get(k) != "" {
			t.Errorf("backend got hop-by-hop %s", k)
		}
	}
	if h.Get("X-Keep") != "1" || proto != "HTTP/1.1" || h.Get("User-Agent") != "Go-http-client/1.1" {
		t.Errorf("backend got X-Keep=%q proto %s UA %q, want 1, HTTP/1.1, the client's", h.Get("X-Keep"), proto, h.Get("User-Agent"))
	}
	if rh.Get("X-Private") != "" || rh.Get("Keep-Alive") != "" {
		t.Errorf("client got hop-by-hop response fields: %v", rh)
	}
}

func TestHTTPErrors(t *testing.T) {
	leaks(t)
	dead := balancer.Backend{ID: "dead", Addr: deadAddr(t), Weight: 100}
	slow := startHTTPBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	tests := []struct {
		name  string
		group *balancer.Group
		code  int
	}{
		{"no backend", newGroup(t, nil), 503},
		{"refused", newGroup(t, nil, dead), 502},
		{"slow", newGroup(t, nil, slow.backend(100)), 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			// 200 ms, below the CLB's 1 s: the library takes it.
			l := addListener(t, in, Config{Protocol: HTTP, Group: tt.group,
				HTTP: HTTPOptions{Options: httpproxy.Options{RequestTimeout: 200 * time.Millisecond}}})
			c := newClient(t)
			start := time.Now()
			code, body, _ := get(t, c, httpURL(l, "/"))
			if code != tt.code || !strings.HasPrefix(body, fmt.Sprint(tt.code)) {
				t.Errorf("status %d body %q, want %d with a short explanation", code, body, tt.code)
			}
			if tt.code == 504 && time.Since(start) > 3*time.Second {
				t.Errorf("504 took %v with a 200ms request timeout", time.Since(start))
			}
			if st := l.Stats(); st.Status[4] != 1 {
				t.Errorf("Stats.Status[4] = %d, want 1", st.Status[4])
			}
		})
	}
}

func TestHTTPACL(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	grp, _ := acl.NewGroup(acl.GroupConfig{Name: "deny-local", Family: acl.IPv4})
	entry, _ := acl.ParseEntry("127.0.0.0/8")
	grp.Add(entry)
	pol, _ := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: acl.Blacklist, Family: acl.IPv4})
	l := addHTTP(t, Config{ACL: pol}, b)
	c := newClient(t)
	if code, _, _ := get(t, c, httpURL(l, "/")); code != 403 {
		t.Errorf("status %d, want 403", code)
	}
	if st := l.Stats(); st.RefusedACL != 1 || b.hits.Load() != 0 {
		t.Errorf("RefusedACL=%d backend hits=%d, want 1, 0", st.RefusedACL, b.hits.Load())
	}
	l.SetACL(nil)
	if code, _, _ := get(t, c, httpURL(l, "/")); code != 200 {
		t.Errorf("after SetACL(nil): status %d, want 200", code)
	}
}

// rawGet sends a GET on a raw connection and reads the response.
func rawGet(c net.Conn, r *bufio.Reader, path string) (*http.Response, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestHTTPIdleTimeout(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{HTTP: HTTPOptions{IdleTimeout: 200 * time.Millisecond}}, b)
	c, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := rawGet(c, r, "/"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about 200ms", d)
	}
}

func TestHTTPHeaderLimits(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{HTTP: HTTPOptions{HeaderTimeout: 200 * time.Millisecond}}, b)
	c := newClient(t)
	code, _, _ := get(t, c, httpURL(l, "/"), "X-Big", strings.Repeat("x", DefaultMaxHeaderBytes+8<<10))
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: status %d, want 431", code)
	}
	code, _, _ = get(t, c, httpURL(l, "/"+strings.Repeat("a", DefaultMaxURIBytes)))
	if code != http.StatusRequestURITooLong {
		t.Errorf("oversized URI: status %d, want 414", code)
	}
	if code, _, _ = get(t, c, httpURL(l, "/"+strings.Repeat("a", DefaultMaxURIBytes-1))); code != http.StatusOK {
		t.Errorf("URI of exactly MaxURIBytes: status %d, want 200", code)
	}
	// A client that never finishes its header is cut off.
	conn, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("slow header: %v, want the listener to close the connection", err)
	}
	if n := b.hits.Load(); n != 1 {
		t.Errorf("backend saw %d requests, want only the 1 within the limits", n)
	}
}

// TestHTTPGzip runs the gzip rules through both lanes: each case gets
// the same answer from the fast lane (which serves every GET here) and
// from net/http's.
func TestHTTPGzip(t *testing.T) {
	leaks(t)
	big := strings.Repeat(`{"k":"value"},`, 200)                         // 2.8 KiB
	huge := strings.Repeat(`{"k":"value"},`, 10000)                      // 140 KiB: coded as it streams
	page := "<!DOCTYPE html><html>" + strings.Repeat("<p>text</p>", 200) // sniffed text/html: not a listed type
	plain := strings.Repeat("plain text, no Content-Type ", 60)          // sniffed text/plain
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		body := big
		switch r.URL.Path {
		case "/json":
			h.Set("Content-Type", "application/json")
		case "/charset":
			h.Set("Content-Type", "Text/Plain; charset=utf-8")
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/encoded":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "br")
		case "/small":
			h.Set("Content-Type", "text/plain")
			body = "short"
		case "/huge":
			h.Set("Content-Type", "application/json")
			body = huge
		case "/vary":
			h.Set("Content-Type", "text/css")
			h.Set("Vary", "Accept-Encoding, Cookie")
		case "/no-transform":
			h.Set("Content-Type", "text/plain")
			h.Set("Cache-Control", "no-transform")
		case "/sniff-html":
			h["Content-Type"] = nil
			body = page
		case "/sniff-text":
			h["Content-Type"] = nil
			body = plain
		case "/chunked":
			h.Set("Content-Type", "application/json")
			io.WriteString(w, big[:100])
			w.(http.Flusher).Flush() // unknown length: chunked to the proxy
			body = big[100:]
		}
		if r.URL.Path != "/chunked" {
			h.Set("Content-Length", strconv.Itoa(len(body)))
		}
		io.WriteString(w, body)
	})
	want := map[string]string{"/json": big, "/charset": big, "/png": big, "/encoded": big, "/small": "short", "/huge": huge,
		"/vary": big, "/no-transform": big, "/sniff-html": page, "/sniff-text": plain, "/chunked": big}
	tests := []struct {
		name, path, accept string
		noGzip             bool
		want               string // Content-Encoding
		vary               string
	}{
		{"json", "/json", "gzip", false, "gzip", "Accept-Encoding"},
		{"browser", "/json", "gzip, deflate, br", false, "gzip", "Accept-Encoding"},
		{"type with a charset", "/charset", "gzip", false, "gzip", "Accept-Encoding"},
		{"json, client without gzip", "/json", "", false, "", ""},
		{"json, gzip refused", "/json", "gzip;q=0, br", false, "", ""},
		{"json, gzip off", "/json", "gzip", true, "", ""},
		{"png", "/png", "gzip", false, "", "Accept-Encoding"},
		{"already encoded", "/encoded", "gzip", false, "br", "Accept-Encoding"},
		{"below 1 KiB", "/small", "gzip", false, "", "Accept-Encoding"},
		{"140 KiB", "/huge", "gzip", false, "gzip", "Accept-Encoding"},
		{"vary kept once", "/vary", "gzip", false, "gzip", "Accept-Encoding, Cookie"},
		{"no-transform", "/no-transform", "gzip", false, "", "Accept-Encoding"},
		{"sniffed html", "/sniff-html", "gzip", false, "", "Accept-Encoding"},
		{"sniffed text", "/sniff-text", "gzip", false, "gzip", "Accept-Encoding"},
		{"chunked", "/chunked", "gzip", false, "gzip", "Accept-Encoding"},
	}
	for _, lane := range []string{"fast", "net/http"} {
		for _, tt := range tests {
			t.Run(lane+"/"+tt.name, func(t *testing.T) {
				noFastLane = lane == "net/http"
				l := addHTTP(t, Config{HTTP: HTTPOptions{Options: httpproxy.Options{NoGzip: tt.noGzip}}}, b)
				noFastLane = false
				c := newClient(t)
				var hdr []string
				if tt.accept != "" {
					hdr = []string{"Accept-Encoding", tt.accept}
				}
				_, body, h := get(t, c, httpURL(l, tt.path), hdr...)
				if got := h.Get("Content-Encoding"); got != tt.want {
					t.Fatalf("Content-Encoding = %q, want %q", got, tt.want)
				}
				if got := strings.Join(h.Values("Vary"), ", "); got != tt.vary {
					t.Errorf("Vary = %q, want %q", got, tt.vary)
				}
				if tt.want == "gzip" {
					if cl := h.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
						t.Errorf("Content-Length %s of a %d-byte coded body", cl, len(body))
					}
					zr, err := gzip.NewReader(strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					plain, _ := io.ReadAll(zr)
					body = string(plain)
				}
				if body != want[tt.path] {
					t.Errorf("body of %d bytes differs from the backend's %d", len(body), len(want[tt.path]))
				}
				if served, _ := lanes(l); (served == 1) != (lane == "fast") {
					t.Errorf("the fast lane served %d requests", served)
				}
			})
		}
	}
}

func TestHTTPRedirect(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{HTTP: HTTPOptions{RedirectToPort: 8443}}, b)
	c := newClient(t)
	code, _, h := get(t, c, httpURL(l, "/a/b?x=1&y=%20"), "Host", "www.example.com:8080")
	if code != http.StatusMovedPermanently || h.Get("Location") != "https://www.example.com:8443/a/b?x=1&y=%20" {
		t.Errorf("redirect = %d %q, want 301 https://www.example.com:8443/a/b?x=1&y=%%20", code, h.Get("Location"))
	}
	resp, err := c.Post(httpURL(l, "/form"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST redirect = %d, want 308", resp.StatusCode)
	}
	if b.hits.Load() != 0 {
		t.Errorf("backend saw %d requests", b.hits.Load())
	}
}

func TestHTTPRules(t *testing.T) {
	leaks(t)
	def := startHTTPBackend(t, "default", nil)
	api := startHTTPBackend(t, "api", nil)
	apiV2 := startHTTPBackend(t, "api-v2", nil)
	exact := startHTTPBackend(t, "exact", nil)
	narrow := startHTTPBackend(t, "narrow", nil)
	wide := startHTTPBackend(t, "wide", nil)
	grp := func(b *httpBackend) *balancer.Group { return newGroup(t, nil, b.backend(100)) }
	l := addHTTP(t, Config{Group: grp(def), HTTP: HTTPOptions{Options: httpproxy.Options{Rules: []Rule{
		{Path: "/api", Group: grp(api)},
		{Path: "/api/v2", Group: grp(apiV2)},
		{Host: "www.example.com", Group: grp(exact)},
		{Host: "*.market.example.com", Group: grp(narrow)},
		{Host: "*.example.com", Path: "/shop", Group: grp(wide)},
	}}}})
	c := newClient(t)
	tests := []struct{ host, path, want string }{
		{"other.test", "/", "default"},
		{"other.test", "/api/x", "api"},
		{"other.test", "/api/v2/x", "api-v2"},
		{"www.example.com:80", "/", "exact"},
		{"WWW.example.com", "/api", "exact"},
		{"info.market.example.com", "/", "narrow"},
		{"a.example.com", "/shop/1", "wide"},
		{"a.example.com", "/", "default"},
		{"a.example.com", "/api", "api"},
		{"example.com", "/shop", "default"},
	}
	for _, tt := range tests {
		if _, body, _ := get(t, c, httpURL(l, tt.path), "Host", tt.host); body != tt.want {
			t.Errorf("Host %s path %s went to %q, want %q", tt.host, tt.path, body, tt.want)
		}
	}
}

func TestHTTPRulesRefused(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100})
	sch, _ := balancer.ParseScheduler("sch")
	tests := []struct {
		name  string
		opts  HTTPOptions
		proto Protocol
		field string
	}{
		{"rule without group", HTTPOptions{Options: httpproxy.Options{Rules: []Rule{{Path: "/a"}}}}, HTTP, "HTTP.Rules[0].Group"},
		{"relative path", HTTPOptions{Options: httpproxy.Options{Rules: []Rule{{Path: "a", Group: g}}}}, HTTP, "HTTP.Rules[0].Path"},
		{"bad host", HTTPOptions{Options: httpproxy.Options{Rules: []Rule{{Host: "a_b.com", Group: g}}}}, HTTP, "HTTP.Rules[0].Host"},
		{"hash scheduler", HTTPOptions{Options: httpproxy.Options{Rules: []Rule{{Path: "/a", Group: newGroup(t, sch)}}}}, HTTP, "Scheduler"},
		{"idle negative", HTTPOptions{IdleTimeout: -time.Second}, HTTP, "HTTP.IdleTimeout"},
		{"request negative", HTTPOptions{Options: httpproxy.Options{RequestTimeout: -time.Second}}, HTTP, "HTTP.RequestTimeout"},
		{"header timeout negative", HTTPOptions{HeaderTimeout: -time.Second}, HTTP, "HTTP.HeaderTimeout"},
		{"header bytes", HTTPOptions{MaxHeaderBytes: 63}, HTTP, "HTTP.MaxHeaderBytes"},
		{"URI bytes", HTTPOptions{MaxURIBytes: -1}, HTTP, "HTTP.MaxURIBytes"},
		{"negative keep-alive requests", HTTPOptions{MaxKeepAliveRequests: -1}, HTTP, "HTTP.MaxKeepAliveRequests"},
		{"URI beyond header", HTTPOptions{MaxHeaderBytes: 2048, MaxURIBytes: 4096}, HTTP, "HTTP.MaxURIBytes"},
		{"negative HTTP/2 requests", HTTPOptions{HTTP2MaxRequestsPerConnection: -1}, HTTPS, "HTTP.HTTP2MaxRequestsPerConnection"},
		{"redirect on https", HTTPOptions{RedirectToPort: 443}, HTTPS, "HTTP.RedirectToPort"},
		{"redirect to self", HTTPOptions{RedirectToPort: 80}, HTTP, "HTTP.RedirectToPort"},
		{"https without cert", HTTPOptions{}, HTTPS, "HTTP.Certificate"},
		{"cert on http", HTTPOptions{Options: httpproxy.Options{ClientCertHeaders: true}}, HTTP, "HTTP.ClientCertHeaders"},
		{"sticky", HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{Mode: session.Rewrite}}}, HTTP, "CookieName"},
	}
	in := newInstance(t)
	own := map[string]error{} // the listener's own refusals: one prefix each
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.Add(Config{Protocol: tt.proto, Port: 80, Group: g, HTTP: tt.opts, Stopped: true})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("Add = %v, want a ConfigError on %s", err, tt.field)
			}
			if ce.Pkg == "listener" {
				own[tt.name] = err
			}
		})
	}
	errtest.OnePrefix(t, "listener", own)
}

// cookieClient is a client with a cookie jar, like curl -c/-b.
func cookieClient(t *testing.T) *http.Client {
	c := newClient(t)
	c.Jar, _ = cookiejar.New(nil)
	return c
}

func TestHTTPStickyInsert(t *testing.T) {
	leaks(t)
	a, b, cc := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil), startHTTPBackend(t, "c", nil)
	g := newGroup(t, balancer.RoundRobin(), a.backend(100), b.backend(100), cc.backend(100))
	l := addHTTP(t, Config{Group: g, HTTP: HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{Key: bytes.Repeat([]byte("k"), 32)}}}})
	c := cookieClient(t)
	_, first, h := get(t, c, httpURL(l, "/"))
	if !strings.HasPrefix(h.Get("Set-Cookie"), "SERVERID=") {
		t.Fatalf("first response Set-Cookie = %q, want SERVERID", h.Get("Set-Cookie"))
	}
	for i := range 30 {
		if _, body, _ := get(t, c, httpURL(l, "/")); body != first {
			t.Fatalf("request %d with the cookie went to %s, want %s", i, body, first)
		}
	}
	if hd, _ := func() (http.Header, string) {
		switch first {
		case "a":
			return a.lastHeader()
		case "b":
			return b.lastHeader()
		}
		return cc.lastHeader()
	}(); strings.Contains(hd.Get("Cookie"), "SERVERID") {
		t.Errorf("backend saw the balancer's cookie: %q", hd.Get("Cookie"))
	}
	// Draining keeps the session; removal moves it.
	g.SetState(first, balancer.Drain)
	if _, body, _ := get(t, c, httpURL(l, "/")); body != first {
		t.Errorf("while draining the session moved to %s", body)
	}
	fresh := newClient(t)
	for range 6 {
		if _, body, _ := get(t, fresh, httpURL(l, "/")); body == first {
			t.Errorf("a new client reached draining %s", first)
		}
	}
	g.Remove(first)
	eventually(t, "the session to move", func() bool {
		_, body, _ := get(t, c, httpURL(l, "/"))
		return body != first
	})
	// A tampered cookie is a fresh pick, never an error.
	code, _, _ := get(t, fresh, httpURL(l, "/"), "Cookie", "SERVERID=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if code != 200 {
		t.Errorf("tampered cookie: status %d", code)
	}
}

// appCookieBackend is a backend whose application sets its own cookie
// app=v-name and records in seen the value of app it is sent.
func appCookieBackend(t *testing.T, name string, seen *sync.Map) *httpBackend {
	return startHTTPBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if ck, err := r.Cookie("app"); err == nil {
			seen.Store(name, ck.Value)
		} else {
			http.SetCookie(w, &http.Cookie{Name: "app", Value: "v-" + name, Path: "/"})
		}
		io.WriteString(w, name)
	})
}

func TestHTTPStickyRewrite(t *testing.T) {
	leaks(t)
	var seen sync.Map // backend name -> cookie value it saw
	a, b := appCookieBackend(t, "a", &seen), appCookieBackend(t, "b", &seen)
	l := addHTTP(t, Config{HTTP: HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{Mode: session.Rewrite, CookieName: "app"}}}}, a, b)
	c := cookieClient(t)
	_, first, h := get(t, c, httpURL(l, "/"))
	if sc := h.Get("Set-Cookie"); !strings.HasPrefix(sc, "app=v-"+first+"~") {
		t.Fatalf("Set-Cookie = %q, want the application's value with a token", sc)
	}
	for i := range 10 {
		if _, body, _ := get(t, c, httpURL(l, "/")); body != first {
			t.Fatalf("request %d went to %s, want %s", i, body, first)
		}
	}
	if v, _ := seen.Load(first); v != "v-"+first {
		t.Errorf("backend saw app=%v, want its own value v-%s", v, first)
	}
	if n := served(l); n != 11 {
		t.Errorf("the fast lane served %d of the 11 requests", n)
	}
}

func TestHTTPRetryOnDeadBackend(t *testing.T) {
	leaks(t)
	a, b := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{}, a, b)
	c := newClient(t)
	for range 10 {
		get(t, c, httpURL(l, "/"))
	}
	a.srv.Close() // killed mid-run, with pooled connections to it
	for i := range 40 {
		if code, body, _ := get(t, c, httpURL(l, "/")); code != 200 || body != "b" {
			t.Fatalf("GET %d after a died: %d %q", i, code, body)
		}
	}
	if st := l.Stats(); st.ConnectFailures == 0 {
		t.Error("no connect failure counted")
	}
}

func TestHTTPGracefulStop(t *testing.T) {
	leaks(t)
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	started := make(chan struct{}, 1)
	b := startHTTPBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "done")
	})
	t.Cleanup(releaseAll) // before the backend's Close, which waits for the handler
	l := addHTTP(t, Config{}, b)
	c := newClient(t)
	result := make(chan string, 1)
	go func() {
		resp, err := c.Get(httpURL(l, "/"))
		if err != nil {
			result <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(body)
	}()
	select {
	case <-started:
	case got := <-result:
		t.Fatalf("the request ended before reaching the backend: %q", got)
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend in 10 s")
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- l.Stop(ctx)
	}()
	eventually(t, "the listener to stop accepting", func() bool {
		conn, err := net.Dial("tcp", listenerAddr(l))
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	releaseAll()
	if got := recvWithin(t, result, 15*time.Second, "the in-flight request's answer"); got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	if err := recvWithin(t, stopped, 15*time.Second, "Stop to return"); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

// waf is a Middleware that answers 403 to a query with "attack" in it.
func waf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "attack") {
			http.Error(w, "blocked", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestHTTPMiddleware(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{HTTP: HTTPOptions{Middleware: waf}}, b)
	c := newClient(t)
	if code, _, _ := get(t, c, httpURL(l, "/?q=attack")); code != 403 {
		t.Errorf("blocked request: %d", code)
	}
	if code, _, _ := get(t, c, httpURL(l, "/?q=fine")); code != 200 {
		t.Errorf("allowed request: %d", code)
	}
	if st := l.Stats(); st.Status[3] != 1 || st.Status[1] != 1 {
		t.Errorf("Status = %v, want one 2xx and one 4xx", st.Status)
	}
}

func TestHTTP10Backend(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{}, b)
	conn, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "b" {
		t.Errorf("body %q", body)
	}
	if _, proto := b.lastHeader(); proto != "HTTP/1.0" {
		t.Errorf("backend saw %s, want HTTP/1.0", proto)
	}
}

func TestHTTP10KeepAlive(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	l := addHTTP(t, Config{}, b)
	conn, err := net.Dial("tcp", listenerAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	for i := range 2 {
		io.WriteString(conn, "GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "b" || resp.Close {
			t.Errorf("request %d: body %q, close %v", i, body, resp.Close)
		}
	}
	if h, proto := b.lastHeader(); proto != "HTTP/1.0" || h.Get("Connection") != "" {
		t.Errorf("backend saw %s with Connection %q", proto, h.Get("Connection"))
	}
}
