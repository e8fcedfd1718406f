package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fetch GETs url and returns the response (body read) and its body.
func fetch(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

func fixedNow() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

func TestStatusJSON(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	f.traffic(t, 4)
	f.settled(t)
	srv := serve(t, admin.New(f.inst, admin.Options{Now: fixedNow}))

	resp, body := fetch(t, srv.URL+"/status.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status.json = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("decoding /status.json: %v\n%s", err, body)
	}
	if st.Instance != "lb-test" || st.Address != "192.0.2.10" || !st.Time.Equal(fixedNow()) {
		t.Errorf("instance, address, time = %q, %q, %v; want lb-test, 192.0.2.10, %v", st.Instance, st.Address, st.Time, fixedNow())
	}
	if len(st.Listeners) != 2 {
		t.Fatalf("%d listeners, want 2:\n%s", len(st.Listeners), body)
	}

	tcp := st.Listeners[0]
	if tcp.Name != "tcp-echo" || tcp.Protocol != "tcp" || tcp.Port != f.tcp.Port() || tcp.State != "running" || tcp.Bandwidth != 100 {
		t.Errorf("tcp listener = %s %s %d %s %d Mbps, want tcp-echo tcp %d running 100 Mbps", tcp.Name, tcp.Protocol, tcp.Port, tcp.State, tcp.Bandwidth, f.tcp.Port())
	}
	// Each connection: "ping\n" in; a one-letter greeting and the echo out.
	if tcp.Active != 0 || tcp.New != 4 || tcp.BytesIn != 4*5 || tcp.BytesOut != 4*7 || tcp.Requests != nil {
		t.Errorf("tcp counters: active %d, new %d, in %d, out %d, requests %v; want 0, 4, 20, 28, nil", tcp.Active, tcp.New, tcp.BytesIn, tcp.BytesOut, tcp.Requests)
	}
	if len(tcp.Backends) != 2 {
		t.Fatalf("tcp backends = %+v, want a and b", tcp.Backends)
	}
	for i, id := range []string{"a", "b"} {
		b := tcp.Backends[i]
		if b.ID != id || !b.Member || !b.Healthy || b.Weight != 50 || b.New != 2 || b.BytesIn != 10 || b.BytesOut != 14 || b.Addr == "" {
			t.Errorf("tcp backend %d = %+v, want %s member healthy weight 50, new 2, in 10, out 14", i, b, id)
		}
	}

	web := st.Listeners[1]
	if web.Name != "web" || web.Protocol != "http" || web.New == 0 || web.Bandwidth != 0 {
		t.Errorf("web listener = %+v", web)
	}
	want := admin.Classes{Success: 3, ClientError: 1}
	if web.Requests == nil || *web.Requests != want {
		t.Errorf("web requests = %+v, want %+v", web.Requests, want)
	}
	if web.UpstreamLatencyMS <= 0 {
		t.Errorf("web upstream latency = %v ms, want > 0", web.UpstreamLatencyMS)
	}
	var sent uint64
	for _, b := range web.Backends {
		if b.Requests == nil {
			t.Errorf("web backend %s has no request classes", b.ID)
			continue
		}
		sent += b.New
		if b.Requests.Success+b.Requests.ClientError != b.New {
			t.Errorf("web backend %s: %d requests sent, classes %+v", b.ID, b.New, *b.Requests)
		}
	}
	if len(web.Backends) != 2 || sent != 4 {
		t.Errorf("web backends = %+v, want w1 and w2 with 4 requests between them", web.Backends)
	}

	// The wire names are part of the API.
	var raw map[string]any
	json.Unmarshal([]byte(body), &raw)
	l1 := raw["listeners"].([]any)[1].(map[string]any)
	b1 := l1["backends"].([]any)[0].(map[string]any)
	for _, key := range []string{"id", "addr", "member", "weight", "healthy", "active", "new", "bytes_in", "bytes_out", "connect_failures", "requests"} {
		if _, ok := b1[key]; !ok {
			t.Errorf("backend object lacks %q: %v", key, b1)
		}
	}
	if r, _ := l1["requests"].(map[string]any); r["2xx"] != 3.0 || r["4xx"] != 1.0 {
		t.Errorf(`listener "requests" = %v, want 2xx 3 and 4xx 1`, l1["requests"])
	}
}

func TestStatusFollowsGroup(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	f.traffic(t, 2)
	f.settled(t)
	s := admin.New(f.inst, admin.Options{})

	g := f.tcp.Group()
	if err := g.SetHealthy("a", false); err != nil {
		t.Fatal(err)
	}
	if err := g.SetState("b", balancer.Drain); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove("a"); err != nil {
		t.Fatal(err)
	}
	bs := s.Status().Listeners[0].Backends
	if len(bs) != 2 || bs[0].ID != "b" || bs[0].Weight != 0 || bs[0].State != "drain" || !bs[0].Member || bs[1].ID != "a" || bs[1].Member || bs[1].New != 1 {
		t.Errorf("backends after removing a and draining b = %+v, want b (draining: CLB weight 0, state drain), then a (not a member, 1 connection)", bs)
	}
	if err := g.SetState("b", balancer.Ready); err != nil {
		t.Fatal(err)
	}
	if b := s.Status().Listeners[0].Backends[0]; b.Weight != 50 || b.State != "ready" {
		t.Errorf("b ready again = %+v, want its weight 50 back, state ready", b)
	}
	if err := f.web.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status().Listeners[1].State; st != "stopped" {
		t.Errorf("web state after Stop = %q, want stopped", st)
	}
}

func TestPage(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	f.traffic(t, 2)
	hostile := `x"><script>alert(1)</script>`
	if err := f.web.Group().Add(balancer.Backend{ID: hostile, Addr: "127.0.0.1:9", State: balancer.Drain}); err != nil {
		t.Fatal(err)
	}
	f.tcp.Group().SetHealthy("b", false)
	srv := serve(t, admin.New(f.inst, admin.Options{Refresh: 5 * time.Second}))

	resp, body := fetch(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("Content-Security-Policy = %q, want the inline script allowed by hash", csp)
	}
	for _, want := range []string{
		`<h1>Instance <span id="instance">lb-test</span></h1>`,
		`<span id="address">192.0.2.10</span>`,
		`<section class="listener" data-listener="tcp-echo">`,
		`<section class="listener" data-listener="web">`,
		`<tr class="backend" data-backend="a"><td class="id">a</td>`,
		`<td class="weight">50</td><td class="health ok">healthy</td>`,
		`<tr class="backend" data-backend="b">`,
		`<td class="health bad">unhealthy</td>`,
		`<tr class="backend" data-backend="w1">`,
		`<th>2xx</th>`,
		`<dt>Bandwidth</dt><dd>100 Mbps</dd>`,
		`data-refresh-ms="5000"`,
		`fetch("status.json"`,
		`x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Errorf("page carries a backend ID unescaped")
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("page refers to an external resource")
	}
}

func TestRoutes(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	srv := serve(t, admin.Handler(f.inst))
	for _, tc := range []struct {
		name, method, path string
		want               int
	}{
		{"page", "GET", "/", 200},
		{"head", "HEAD", "/", 200},
		{"json", "GET", "/status.json", 200},
		{"metrics", "GET", "/metrics", 200},
		{"unknown", "GET", "/nope", 404},
		{"post", "POST", "/status.json", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
		})
	}

	// Mounted under a prefix, as the doc of Server says.
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", admin.Handler(f.inst)))
	pre := serve(t, mux)
	for _, path := range []string{"/admin/", "/admin/status.json", "/admin/metrics"} {
		if resp, _ := fetch(t, pre.URL+path); resp.StatusCode != 200 {
			t.Errorf("GET %s under a prefix = %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestMetrics(t *testing.T) {
	leaks(t)
	f := newFixture(t)
	f.traffic(t, 4)
	f.settled(t)
	f.tcp.Group().SetHealthy("b", false)
	srv := serve(t, admin.New(f.inst, admin.Options{}))

	resp, body := fetch(t, srv.URL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	for _, name := range []string{
		"lbkit_instance_info",
		"lbkit_listener_up", "lbkit_listener_bandwidth_limit_mbps",
		"lbkit_listener_connections_active", "lbkit_listener_connections_total",
		"lbkit_listener_bytes_total", "lbkit_listener_refused_acl_total",
		"lbkit_listener_connect_failures_total", "lbkit_listener_no_backend_total",
		"lbkit_listener_requests_total", "lbkit_listener_upstream_latency_seconds", "lbkit_listener_proxy_refused_total",
		"lbkit_backend_up", "lbkit_backend_weight", "lbkit_backend_standby",
		"lbkit_backend_connections_active", "lbkit_backend_connections_total",
		"lbkit_backend_bytes_total", "lbkit_backend_connect_failures_total",
		"lbkit_backend_requests_total", "lbkit_backend_upstream_latency_seconds",
	} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if fams["go_goroutines"] != nil {
		t.Errorf("/metrics carries Go runtime metrics without Options.RuntimeMetrics")
	}

	expected := `
# HELP lbkit_backend_up Whether the backend is healthy (1) or not (0).
# TYPE lbkit_backend_up gauge
lbkit_backend_up{backend="a",listener="tcp-echo"} 1
lbkit_backend_up{backend="b",listener="tcp-echo"} 0
lbkit_backend_up{backend="w1",listener="web"} 1
lbkit_backend_up{backend="w2",listener="web"} 1
# HELP lbkit_backend_connections_total Connections made to the backend (HTTP: requests sent).
# TYPE lbkit_backend_connections_total counter
lbkit_backend_connections_total{backend="a",listener="tcp-echo"} 2
lbkit_backend_connections_total{backend="b",listener="tcp-echo"} 2
lbkit_backend_connections_total{backend="w1",listener="web"} 2
lbkit_backend_connections_total{backend="w2",listener="web"} 2
`
	if err := testutil.CollectAndCompare(admin.NewCollector(f.inst), strings.NewReader(expected),
		"lbkit_backend_up", "lbkit_backend_connections_total"); err != nil {
		t.Error(err)
	}
	tcpLabels := `listener="tcp-echo",port="` + strconv.Itoa(f.tcp.Port()) + `",protocol="tcp"}`
	webLabels := `listener="web",port="` + strconv.Itoa(f.web.Port()) + `",protocol="http"}`
	for _, want := range []string{
		`lbkit_listener_bytes_total{direction="in",` + tcpLabels + ` 20`,
		`lbkit_listener_bytes_total{direction="out",` + tcpLabels + ` 28`,
		`lbkit_listener_connections_total{` + tcpLabels + ` 4`,
		`lbkit_listener_bandwidth_limit_mbps{` + tcpLabels + ` 100`,
		`lbkit_listener_requests_total{class="2xx",` + webLabels + ` 3`,
		`lbkit_listener_requests_total{class="4xx",` + webLabels + ` 1`,
		`lbkit_listener_upstream_latency_seconds_count{` + webLabels + ` 4`,
		`lbkit_backend_weight{backend="a",listener="tcp-echo"} 50`,
		`lbkit_instance_info{address="192.0.2.10",instance="lb-test"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	problems, err := testutil.CollectAndLint(admin.NewCollector(f.inst))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	srv2 := serve(t, admin.New(f.inst, admin.Options{RuntimeMetrics: true}))
	if _, body := fetch(t, srv2.URL+"/metrics"); !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics with RuntimeMetrics lacks go_goroutines")
	}
}
