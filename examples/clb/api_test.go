package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

const opsToken = "ops-0123456789abcdef"

// apiRig is a running app (reloadRig's) behind a real admin server on
// loopback with the runtime API and one token, "ops".
type apiRig struct {
	*reloadRig
	ctl   *control
	url   string
	audit *syncBuffer
	c     *http.Client
}

func newAPIRig(t *testing.T, tokens *admin.Tokens) *apiRig {
	t.Helper()
	rg := newReloadRig(t)
	ar := &apiRig{reloadRig: rg, audit: &syncBuffer{}, c: &http.Client{Timeout: 10 * time.Second}}
	ar.ctl = &control{a: rg.a, planOf: func(f *File) (*plan, error) { return planFile(f, rg.e) }}
	srv := httptest.NewServer(admin.New(rg.a.inst, admin.Options{Runtime: ar.ctl, Tokens: tokens, Audit: slog.New(slog.NewTextHandler(ar.audit, nil))}))
	t.Cleanup(srv.Close)
	ar.url = srv.URL
	return ar
}

func opsTokens(t *testing.T) *admin.Tokens {
	t.Helper()
	tk, err := admin.ParseTokens("tokens", []byte("# operators\nops:"+opsToken+"\nci:ci-0123456789abcdef0\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// do sends a request with token (none if ""), returning status and body.
func (ar *apiRig) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ar.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ar.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// listenerName returns the name of the rig's listener of protocol p.
func (ar *apiRig) listenerName(t *testing.T, p listener.Protocol) (string, int) {
	t.Helper()
	for _, l := range ar.a.inst.Listeners() {
		if l.Protocol() == p {
			return l.Name(), l.Port()
		}
	}
	t.Fatalf("no %s listener", p)
	return "", 0
}

// answers returns which backends answered n requests to port.
func answers(t *testing.T, port, n int) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	got := map[string]int{}
	for range n {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[string(b)]++
	}
	return got
}

// Each write changes what the load balancer does and says, and logs one
// audit line naming the token, the change, before and after.
func TestAPIWrites(t *testing.T) {
	leakcheck.Check(t)
	ar := newAPIRig(t, opsTokens(t))
	web, webPort := ar.listenerName(t, listener.HTTP)
	tcp, tcpPort := ar.listenerName(t, listener.TCP)

	code, body := ar.do(t, "POST", "/api/listeners/"+web+"/backends/a/weight", opsToken, `{"weight": 0}`)
	if code != 200 || !strings.Contains(body, `"before":"100","after":"0"`) {
		t.Fatalf("weight 0: %d %s", code, body)
	}
	if got := answers(t, webPort, 6); got["a"] != 0 || got["b"] != 6 {
		t.Errorf("after weight 0 on a, answers = %v, want only b", got)
	}
	if !strings.Contains(ar.audit.String(), "who=ops") || !strings.Contains(ar.audit.String(), `what="listener `+web+` backend a weight" before=0`) && !strings.Contains(ar.audit.String(), "before=100 after=0") {
		t.Errorf("audit log lacks the change:\n%s", ar.audit)
	}
	if code, body := ar.do(t, "GET", "/status.json", "", ""); code != 200 || !strings.Contains(body, `"id":"a","addr"`) || !strings.Contains(body, `"weight":0,"state":"drain"`) {
		t.Errorf("status.json after the drain: %d %s", code, body)
	}
	code, body = ar.do(t, "POST", "/api/listeners/"+web+"/backends/a/weight", opsToken, `{"weight": 50}`)
	if code != 200 || !strings.Contains(body, `"before":"0","after":"50"`) {
		t.Fatalf("weight 50: %d %s", code, body)
	}
	if got := answers(t, webPort, 6); got["a"] != 2 || got["b"] != 4 {
		t.Errorf("weights 50:100, answers = %v, want a 2, b 4", got)
	}

	code, body = ar.do(t, "POST", "/api/listeners/"+web+"/backends/b/state", opsToken, `{"state": "maint"}`)
	if code != 200 || !strings.Contains(body, `"before":"ready","after":"maint"`) {
		t.Fatalf("maint: %d %s", code, body)
	}
	if got := answers(t, webPort, 3); got["a"] != 3 {
		t.Errorf("b in maintenance, answers = %v, want only a", got)
	}

	code, body = ar.do(t, "POST", "/api/listeners/"+tcp+"/stop", opsToken, "")
	if code != 200 || !strings.Contains(body, `"before":"running","after":"stopped"`) {
		t.Fatalf("stop: %d %s", code, body)
	}
	if c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", tcpPort)); err == nil {
		c.Close()
		t.Errorf("stopped listener %s accepted a connection", tcp)
	}
	if code, body = ar.do(t, "POST", "/api/listeners/"+tcp+"/start", opsToken, ""); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	if got := answers(t, tcpPort, 1); got["a"]+got["b"] != 1 {
		t.Errorf("started listener answers %v, want a or b", got)
	}

	for _, tc := range []struct{ name, path, body, want string }{
		{"weight out of range", "/api/listeners/" + web + "/backends/a/weight", `{"weight": 101}`, "400 admin: invalid request: Weight 101 out of range 0–100"},
		{"no such backend", "/api/listeners/" + web + "/backends/zz/weight", `{"weight": 1}`, `404 admin: not found: listener ` + web + ` has no backend "zz"`},
		{"no such listener", "/api/listeners/nope/stop", ``, `404 admin: not found: listener "nope"`},
		{"bad state", "/api/listeners/" + web + "/backends/a/state", `{"state": "off"}`, `400 admin: invalid request: state "off": want ready, drain or maint`},
	} {
		code, body := ar.do(t, "POST", tc.path, opsToken, tc.body)
		if got := fmt.Sprint(code, " ", strings.TrimSpace(body)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if code, _ := ar.do(t, "GET", "/api/listeners/"+tcp+"/stop", opsToken, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a write: %d, want 405", code)
	}
	// A reload applies the configuration again: the API's changes end.
	if err := ar.ctl.reload(ar.plan(t, "100", "{AclEntryIP: 127.0.0.0/8}", `"on"`, "")); err != nil {
		t.Fatal(err)
	}
	if got := answers(t, webPort, 4); got["a"] != 2 || got["b"] != 2 {
		t.Errorf("after a reload, answers = %v, want a 2, b 2", got)
	}
}

// Writes need a valid token; without a token file they are refused;
// reads are open on loopback only. Every refusal is counted.
func TestAPIAuth(t *testing.T) {
	leakcheck.Check(t)
	ar := newAPIRig(t, opsTokens(t))
	web, _ := ar.listenerName(t, listener.HTTP)
	path := "/api/listeners/" + web + "/backends/a/weight"
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "POST", path, "", 401},
		{"bad token", "POST", path, opsToken + "x", 401},
		{"prefix of a token", "POST", path, opsToken[:16], 401},
		{"good token", "POST", path, opsToken, 200},
		{"loopback read", "GET", "/api/config", "", 200},
		{"loopback read, bad token", "GET", "/status.json", "nope-nope-nope-nope", 401},
	} {
		code, body := ar.do(t, tc.method, tc.path, tc.token, `{"weight": 7}`)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
		if code == 401 && strings.Count(body, "\n") != 1 {
			t.Errorf("%s: body %q is not one line", tc.name, body)
		}
	}
	// The scheme's name is case-insensitive.
	req, _ := http.NewRequest("POST", ar.url+path, strings.NewReader(`{"weight": 8}`))
	req.Header.Set("Authorization", "bEaReR "+opsToken)
	resp, err := ar.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("scheme bEaReR: %s, want 200", resp.Status)
	}
	_, metrics := ar.do(t, "GET", "/metrics", "", "")
	for _, want := range []string{`clb_admin_refused_total{reason="bad_token"} 3`, `clb_admin_refused_total{reason="missing_token"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A request that reached a non-loopback address needs a token to read.
	s := admin.New(ar.a.inst, admin.Options{Runtime: ar.ctl, Tokens: opsTokens(t)})
	for _, token := range []string{"", opsToken} {
		r := httptest.NewRequest("GET", "/status.json", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8090}))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		want := map[string]int{"": 401, opsToken: 200}[token]
		if w.Code != want || want == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("non-loopback read with token %q: %d %v, want %d", token, w.Code, w.Header(), want)
		}
	}

	none := newAPIRig(t, nil)
	code, body := none.do(t, "POST", path, opsToken, `{"weight": 7}`)
	if code != 403 || body != "admin: writes are off: no -admin-tokens configured\n" {
		t.Errorf("write without a token file: %d %q, want 403", code, body)
	}
}

// A PUT of a bad configuration changes nothing and lists every problem;
// a good one applies whole; GET returns what runs.
func TestAPIConfig(t *testing.T) {
	leakcheck.Check(t)
	ar := newAPIRig(t, opsTokens(t))
	_, cfg := ar.do(t, "GET", "/api/config", "", "")
	before := ar.state()
	bad := strings.ReplaceAll(cfg, "Weight: 100", "Weight: 300")
	code, body := ar.do(t, "PUT", "/api/config", opsToken, bad)
	if code != 400 || !strings.Contains(body, "BackendServers[0].Weight: 300") || !strings.Contains(body, "BackendServers[1].Weight: 300") {
		t.Errorf("bad PUT: %d %s, want 400 naming both weights", code, body)
	}
	if after := ar.state(); after != before {
		t.Errorf("a refused PUT changed the state:\n%s\nwas:\n%s", after, before)
	}
	good := strings.Replace(cfg, "Weight: 100", "Weight: 30", 1)
	if code, body := ar.do(t, "PUT", "/api/config", opsToken, good); code != 200 {
		t.Fatalf("good PUT: %d %s\n%s", code, body, good)
	}
	if !strings.Contains(ar.state(), "a weight 30") {
		t.Errorf("after the PUT:\n%s", ar.state())
	}
	if _, now := ar.do(t, "GET", "/api/config", "", ""); !strings.Contains(now, "Weight: 30") {
		t.Errorf("GET after the PUT:\n%s", now)
	}
}

// API writes and reloads are serialized (run with -race).
func TestAPIConcurrentWithReload(t *testing.T) {
	leakcheck.Check(t)
	ar := newAPIRig(t, opsTokens(t))
	web, _ := ar.listenerName(t, listener.HTTP)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 5 {
				ar.do(t, "POST", "/api/listeners/"+web+"/backends/a/weight", opsToken, fmt.Sprintf(`{"weight": %d}`, 1+i*5+j))
			}
		})
	}
	wg.Go(func() {
		for w := range 5 {
			if err := ar.ctl.reload(ar.plan(t, fmt.Sprint(50+w), "{AclEntryIP: 127.0.0.0/8}", `"on"`, "")); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	ar.serves(t)
}
