package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/exampletest"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// The example end to end: allowed requests reach the demo backend, each
// rule blocks its request with 403 before any backend sees it, and a client
// over its burst gets 429 with Retry-After.
func TestWAF(t *testing.T) {
	leakcheck.Check(t)
	out := &exampletest.Output{}
	const burst = 8
	base, stop := start(t, config{
		Listen:    "127.0.0.1:0",
		Methods:   []string{"GET", "HEAD", "POST"},
		MaxHeader: 1024,
		Rate:      0.01, // no refill during the test
		Burst:     burst,
	}, out)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	sent := 0
	for _, tc := range []struct {
		name, method, path string
		header             string
		code               int
		body               string
	}{
		{name: "pass", method: "GET", path: "/hello", code: 200, body: "backend: GET /hello (X-Forwarded-For: 127.0.0.1)"},
		{name: "post passes", method: "POST", path: "/form", code: 200, body: "backend: POST /form"},
		{name: "traversal", method: "GET", path: "/static/../../etc/passwd", code: 403, body: "blocked: path traversal"},
		{name: "encoded traversal", method: "GET", path: "/static/..%2f..%2fetc/passwd", code: 403, body: "blocked: path traversal"},
		{name: "method", method: "DELETE", path: "/hello", code: 403, body: "blocked: method DELETE not allowed"},
		{name: "big header", method: "GET", path: "/hello", header: strings.Repeat("a", 1100), code: 403, body: "blocked: header X-Big over 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tc.path // sent as is, dot segments included
			if tc.header != "" {
				req.Header.Set("X-Big", tc.header)
			}
			sent++
			code, body := do(t, c, req)
			if code != tc.code || !strings.HasPrefix(body, tc.body) {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
			}
		})
	}
	// The rest of the burst passes, then 429.
	for i := sent; i < burst; i++ {
		req, _ := http.NewRequest("GET", base+"/", nil)
		if code, body := do(t, c, req); code != 200 {
			t.Fatalf("request %d of a burst of %d = %d %q, want 200", i+1, burst, code, body)
		}
	}
	req, _ := http.NewRequest("GET", base+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("request %d = %d, Retry-After %q; want 429 with Retry-After", burst+1, resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	tr.CloseIdleConnections()
	stop()
	for _, want := range []string{
		"passes:  curl -i " + base + "/hello",
		`waf: 403 127.0.0.1 DELETE "/hello": method DELETE not allowed`,
		`waf: 429 127.0.0.1 GET "/": rate limit`,
		"waf: stopping",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The rate limit per client IP, on a fake clock: each IP has its own
// bucket, which refills at the rate.
func TestFilterRate(t *testing.T) {
	f := newFilter([]string{"GET"}, 1024, 2, 2) // 2/s, burst 2
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	get := func(ip string) int {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = ip + ":1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i, step := range []struct {
		ip      string
		advance time.Duration
		want    int
	}{
		{"192.0.2.1", 0, 200},
		{"192.0.2.1", 0, 200},
		{"192.0.2.1", 0, 429},
		{"192.0.2.2", 0, 200}, // another client, another bucket
		{"192.0.2.1", 400 * time.Millisecond, 429},
		{"192.0.2.1", 100 * time.Millisecond, 200}, // 0.5 s: one token back
		{"192.0.2.1", 0, 429},
		{"192.0.2.1", 2 * time.Minute, 200}, // swept and refilled
		{"192.0.2.1", 0, 200},
	} {
		now = now.Add(step.advance)
		if got := get(step.ip); got != step.want {
			t.Fatalf("GET(step %d, %s) = %d, want %d", i, step.ip, got, step.want)
		}
	}
	f.mu.Lock()
	n := len(f.clients)
	f.mu.Unlock()
	if n != 1 {
		t.Errorf("%d client buckets after the sweep, want 1", n)
	}
}

func TestTraverses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"/a/b", false},
		{"/a/..b/c", false},
		{"/a/../b", true},
		{`/a/..\b`, true},
		{"/a/..", true},
		{"..", true},
	} {
		if got := traverses(tc.in); got != tc.want {
			t.Errorf("traverses(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := unescapeAll("x=%252e%252e%252fetc"); !traverses(got) {
		t.Errorf("unescapeAll(double-encoded ../) = %q, not seen as traversal", got)
	}
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// start runs the example in the background (see exampletest.Start) and
// returns its base URL.
func start(t *testing.T, cfg config, out io.Writer) (string, func()) {
	addr, stop := exampletest.Start(t, func(ctx context.Context, ready func(string)) error {
		cfg.ready = ready
		return run(ctx, cfg, out)
	})
	return "http://" + addr, stop
}
