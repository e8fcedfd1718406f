package admin_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/syncbuf"
)

const opsToken = "ops-0123456789abcdef"

func opsTokens(t *testing.T) *admin.Tokens {
	t.Helper()
	tk, err := admin.ParseTokens("tokens", []byte("ops:"+opsToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// clock is a time seam tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// loginRig is a fixture behind an admin server with the runtime API, one
// token and a hand-moved clock, on 127.0.0.1 over plain HTTP.
type loginRig struct {
	*fixture
	url   string
	clock *clock
	audit *syncbuf.Buffer
	c     *http.Client // does not follow redirects
}

func newLoginRig(t *testing.T) *loginRig {
	t.Helper()
	rg := &loginRig{fixture: newFixture(t), clock: &clock{now: fixedNow()}, audit: &syncbuf.Buffer{}}
	srv := serve(t, admin.New(rg.inst, admin.Options{Runtime: groupRuntime{rg.inst}, Tokens: opsTokens(t), Now: rg.clock.Now,
		Audit: slog.New(slog.NewTextHandler(rg.audit, nil))}))
	rg.url = srv.URL
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rg.c = &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return rg
}

// send makes a request with the given headers and cookie (none if nil)
// and returns the response, its body read.
func (rg *loginRig) send(t *testing.T, method, path, body string, cookie *http.Cookie, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rg.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(body, "token=") || strings.HasPrefix(body, "csrf=") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := rg.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var csrfAttr = regexp.MustCompile(`data-csrf="([A-Za-z0-9_-]+)"`)

// login logs in with token and returns the session cookie and the CSRF
// token the page carries.
func (rg *loginRig) login(t *testing.T, token string) (*http.Cookie, string) {
	t.Helper()
	resp, body := rg.send(t, "POST", "/login", "token="+url.QueryEscape(token), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "./" {
		t.Fatalf("POST /login = %d %q (Location %q), want 303 to ./", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != admin.SessionCookie {
		t.Fatalf("POST /login set cookies %v, want one %s", cs, admin.SessionCookie)
	}
	_, page := rg.send(t, "GET", "/", "", cs[0])
	m := csrfAttr.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page of a session has no data-csrf:\n%s", page)
	}
	return cs[0], m[1]
}

// state is what the API can change: each listener's state and each
// backend's state and weight.
func (rg *loginRig) state() string {
	var b strings.Builder
	for _, l := range rg.inst.Listeners() {
		fmt.Fprintf(&b, "%s %v:", l.Name(), l.State())
		for _, m := range l.Group().Members() {
			fmt.Fprintf(&b, " %s %v %d", m.ID(), m.State(), m.Weight())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (rg *loginRig) metric(t *testing.T, reason string) string {
	t.Helper()
	_, m := rg.send(t, "GET", "/metrics", "", nil)
	re := regexp.MustCompile(`clb_admin_refused_total\{reason="` + reason + `"\} (\d+)`)
	v := re.FindStringSubmatch(m)
	if v == nil {
		t.Fatalf("metrics lack clb_admin_refused_total{reason=%q}", reason)
	}
	return v[1]
}

// The login flow: the cookie's flags; a write with the cookie alone is
// refused (CSRF), with the page's CSRF token it is made and audited; a
// logout or 8 hours end the session.
func TestLogin(t *testing.T) {
	leaks(t)
	rg := newLoginRig(t)
	drain := "/api/listeners/tcp-echo/backends/a/state"

	if _, page := rg.send(t, "GET", "/", "", nil); !strings.Contains(page, `<a href="login">log in to change</a>`) || strings.Contains(page, "data-csrf") {
		t.Errorf("the page without a session lacks the login link or has a CSRF token:\n%s", page)
	}
	if resp, body := rg.send(t, "POST", "/login", "token=not-the-token-at-all", nil); resp.StatusCode != 401 || body != "admin: bad token\n" || len(resp.Cookies()) != 0 {
		t.Errorf("login with a bad token = %d %q %v, want 401 and no cookie", resp.StatusCode, body, resp.Cookies())
	}

	cookie, csrf := rg.login(t, opsToken)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure || cookie.MaxAge != 8*3600 || len(cookie.Value) < 43 {
		t.Errorf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=/, not Secure over HTTP, Max-Age 8 h, 32 random bytes", cookie)
	}
	if _, page := rg.send(t, "GET", "/", "", cookie); !strings.Contains(page, `Logged in as <b id="who">ops</b>`) {
		t.Errorf("the page of ops's session does not say who:\n%s", page)
	}

	before := rg.state()
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"no CSRF header", nil},
		{"a bad CSRF header", []string{admin.CSRFHeader, csrf[1:] + "x"}},
		{"an empty CSRF header", []string{admin.CSRFHeader, ""}},
	} {
		resp, body := rg.send(t, "POST", drain, `{"state": "drain"}`, cookie, tc.header...)
		if resp.StatusCode != 403 || body != "admin: missing or bad X-CSRF-Token header\n" {
			t.Errorf("%s: %d %q, want 403", tc.name, resp.StatusCode, body)
		}
	}
	if after := rg.state(); after != before {
		t.Errorf("refused writes changed the state:\n%s\nwas\n%s", after, before)
	}
	if got := rg.metric(t, "csrf"); got != "3" {
		t.Errorf("csrf refusals counted %s, want 3", got)
	}

	if resp, body := rg.send(t, "POST", drain, `{"state": "drain"}`, cookie, admin.CSRFHeader, csrf); resp.StatusCode != 200 {
		t.Fatalf("write with the session's CSRF token: %d %q, want 200", resp.StatusCode, body)
	}
	if m, _ := rg.tcp.Group().Member("a"); m.State() != balancer.Drain {
		t.Errorf("a is %v after the write, want drain", m.State())
	}
	if !strings.Contains(rg.audit.String(), `msg="admin change" who=ops`) {
		t.Errorf("the audit log lacks the change by ops:\n%s", rg.audit)
	}

	// Logout needs the CSRF token too (another site must not log the
	// operator out); after it the cookie is worth nothing.
	if resp, _ := rg.send(t, "POST", "/logout", "csrf=wrong", cookie); resp.StatusCode != 403 {
		t.Errorf("logout without the CSRF token = %d, want 403", resp.StatusCode)
	}
	resp, _ := rg.send(t, "POST", "/logout", "csrf="+csrf, cookie)
	if cs := resp.Cookies(); resp.StatusCode != 303 || len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("logout = %d, cookies %v; want 303 and the cookie cleared", resp.StatusCode, cs)
	}
	if resp, body := rg.send(t, "POST", drain, `{"state": "ready"}`, cookie, admin.CSRFHeader, csrf); resp.StatusCode != 401 {
		t.Errorf("write with a logged-out cookie: %d %q, want 401", resp.StatusCode, body)
	}
	// A stale cookie does not close loopback reads.
	if resp, _ := rg.send(t, "GET", "/status.json", "", cookie); resp.StatusCode != 200 {
		t.Errorf("loopback read with a logged-out cookie: %d, want 200", resp.StatusCode)
	}

	cookie, csrf = rg.login(t, opsToken)
	rg.clock.Add(admin.SessionTTL - time.Second)
	if resp, body := rg.send(t, "POST", drain, `{"state": "ready"}`, cookie, admin.CSRFHeader, csrf); resp.StatusCode != 200 {
		t.Errorf("write a second before the session ends: %d %q, want 200", resp.StatusCode, body)
	}
	rg.clock.Add(time.Second)
	if resp, body := rg.send(t, "POST", drain, `{"state": "drain"}`, cookie, admin.CSRFHeader, csrf); resp.StatusCode != 401 {
		t.Errorf("write when the session ends: %d %q, want 401", resp.StatusCode, body)
	}
	if got := rg.metric(t, "bad_session"); got != "2" {
		t.Errorf("bad_session refusals counted %s, want 2", got)
	}
}

// Failed logins from one address are limited: 5 at once, then one every
// 10 s; while limited even the right token is refused (429).
func TestLoginRateLimit(t *testing.T) {
	leaks(t)
	rg := newLoginRig(t)
	for i := range 5 {
		if resp, _ := rg.send(t, "POST", "/login", fmt.Sprintf("token=guess-%d-0123456789", i), nil); resp.StatusCode != 401 {
			t.Fatalf("failed login %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	if resp, body := rg.send(t, "POST", "/login", "token="+opsToken, nil); resp.StatusCode != 429 || strings.Count(body, "\n") != 1 {
		t.Errorf("login after 5 failures = %d %q, want 429 with one line", resp.StatusCode, body)
	}
	rg.clock.Add(10 * time.Second)
	rg.login(t, opsToken)
	if got := rg.metric(t, "bad_token"); got != "5" {
		t.Errorf("bad_token refusals counted %s, want 5", got)
	}
	if got := rg.metric(t, "rate_limited"); got != "1" {
		t.Errorf("rate_limited refusals counted %s, want 1", got)
	}
}

// No GET changes anything: every route, asked with GET and every
// credential (a session, its CSRF token, a bearer token), leaves the
// state and the session as they were.
func TestNoStateChangingGET(t *testing.T) {
	leaks(t)
	rg := newLoginRig(t)
	cookie, csrf := rg.login(t, opsToken)
	before := rg.state()
	for _, path := range []string{
		"/", "/status.json", "/metrics", "/login", "/logout",
		"/api/config",
		"/api/listeners/tcp-echo/backends/a/weight?weight=0",
		"/api/listeners/tcp-echo/backends/a/state?state=maint",
		"/api/listeners/tcp-echo/stop", "/api/listeners/tcp-echo/start",
		"/api/listeners/web/stop",
	} {
		for _, method := range []string{"GET", "HEAD"} {
			resp, _ := rg.send(t, method, path, `{"state": "maint", "weight": 0}`, cookie, admin.CSRFHeader, csrf, "Authorization", "Bearer "+opsToken)
			if resp.StatusCode != 200 && resp.StatusCode != 405 {
				t.Errorf("%s %s = %d, want 200 or 405", method, path, resp.StatusCode)
			}
		}
	}
	if after := rg.state(); after != before {
		t.Errorf("GETs changed the state:\n%s\nwas\n%s", after, before)
	}
	if resp, body := rg.send(t, "POST", "/api/listeners/web/backends/w1/weight", `{"weight": 5}`, cookie, admin.CSRFHeader, csrf); resp.StatusCode != 200 {
		t.Errorf("the session ended by GETs: a write answers %d %q", resp.StatusCode, body)
	}
	if strings.Contains(rg.audit.String(), "admin logout") {
		t.Errorf("a GET logged out:\n%s", rg.audit)
	}
}
