package session

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func hdr(key string, lines ...string) http.Header {
	if len(lines) == 0 {
		return http.Header{}
	}
	return http.Header{key: lines}
}

func TestLookupInsert(t *testing.T) {
	s := newSticky(t, Config{})
	a, b := s.EncodeAt("a", t0), s.EncodeAt("b", t0)
	forged := strings.Repeat("A", TokenLen)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"no cookie header", nil, ""},
		{"other cookies only", []string{"x=1; y=2"}, ""},
		{"plain", []string{"SERVERID=" + a}, "a"},
		{"among others", []string{"x=1; SERVERID=" + b + "; y=2"}, "b"},
		{"whitespace", []string{"x=1;  SERVERID = " + a + " ;y=2"}, "a"},
		{"quoted", []string{`SERVERID="` + a + `"`}, "a"},
		{"first valid of several", []string{"SERVERID=" + forged + "; SERVERID=" + b + "; SERVERID=" + a}, "b"},
		{"first of two valid", []string{"SERVERID=" + a + "; SERVERID=" + b}, "a"},
		{"second header line", []string{"x=1", "SERVERID=" + a}, "a"},
		{"forged", []string{"SERVERID=" + forged}, ""},
		{"empty value", []string{"SERVERID="}, ""},
		{"no equals", []string{"SERVERID"}, ""},
		{"name case differs", []string{"serverid=" + a}, ""},
		{"name is a suffix", []string{"XSERVERID=" + a}, ""},
		{"token with separator form", []string{"SERVERID=v~" + a}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr("Cookie", tc.lines...)
			if got := s.LookupAt(h, t0).ID; got != tc.want {
				t.Errorf("LookupAt(%q).ID = %q, want %q", tc.lines, got, tc.want)
			}
		})
	}
}

func TestRequestInsertStrips(t *testing.T) {
	s := newSticky(t, Config{})
	a := s.EncodeAt("a", t0)
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string // nil: header removed
	}{
		{"only ours", []string{"SERVERID=" + a}, nil},
		{"ours among others", []string{"x=1; SERVERID=" + a + "; y=\"q\""}, []string{`x=1; y="q"`}},
		{"all duplicates", []string{"SERVERID=zz; x=1; SERVERID=" + a}, []string{"x=1"}},
		{"untouched line kept byte for byte", []string{"x=1;y=2  ;z", "SERVERID=" + a}, []string{"x=1;y=2  ;z"}},
		{"no ours", []string{"x=1;y=2"}, []string{"x=1;y=2"}},
		{"name as a value", []string{"x=SERVERID"}, []string{"x=SERVERID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr("Cookie", tc.lines...)
			sess := s.RequestAt(h, t0)
			if got := h["Cookie"]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("after RequestAt: Cookie = %q, want %q", got, tc.want)
			}
			if strings.Contains(strings.Join(tc.lines, ";"), a) && sess.ID != "a" {
				t.Errorf("RequestAt.ID = %q, want a", sess.ID)
			}
		})
	}
}

func TestRewriteRoundTrip(t *testing.T) {
	s := newSticky(t, Config{Mode: Rewrite, CookieName: "APP"})
	for _, tc := range []struct {
		name, setCookie string
		value           string // what the client then sends (the app's value, as set)
	}{
		{"plain", "APP=abc123; Path=/; HttpOnly", "abc123"},
		{"contains separator", "APP=a~b~c; Path=/", "a~b~c"},
		{"ends with a token-shaped suffix", "APP=x~" + s.EncodeAt("b", t0) + "; Path=/", "x~" + s.EncodeAt("b", t0)},
		{"quoted", `APP="hello world"; Max-Age=60`, `"hello world"`},
		{"quoted empty", `APP=""`, `""`},
		{"empty", "APP=; Path=/x", ""},
		{"spaces around", "APP = v1 ; Secure", "v1"},
		{"lone quote", `APP="v; Path=/`, `"v`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := hdr("Set-Cookie", "other=1; Path=/", tc.setCookie)
			s.ResponseAt(resp, Session{}, "a", false, t0)
			out := resp["Set-Cookie"][1]
			if resp["Set-Cookie"][0] != "other=1; Path=/" {
				t.Errorf("other cookie changed: %q", resp["Set-Cookie"][0])
			}
			_, attrs, _ := strings.Cut(tc.setCookie, ";")
			_, gotAttrs, _ := strings.Cut(out, ";")
			if attrs != gotAttrs {
				t.Errorf("attributes %q, want %q (from %q)", gotAttrs, attrs, out)
			}
			c, err := http.ParseSetCookie(out)
			if err != nil && !strings.Contains(tc.name, "quote") {
				t.Fatalf("ParseSetCookie(%q): %v", out, err)
			}
			// The client sends back the raw value it got.
			pair, _, _ := strings.Cut(out, ";")
			_, val, _ := strings.Cut(pair, "=")
			val = trimOWS(val)
			req := hdr("Cookie", "z=9; APP="+val)
			sess := s.RequestAt(req, t0)
			if sess.ID != "a" {
				t.Errorf("RequestAt(%q).ID = %q, want a", req, sess.ID)
			}
			if got, want := req.Get("Cookie"), "z=9; APP="+tc.value; got != want {
				t.Errorf("forwarded Cookie = %q, want %q", got, want)
			}
			_ = c
		})
	}
}

func TestRewriteResponse(t *testing.T) {
	s := newSticky(t, Config{Mode: Rewrite, CookieName: "APP"})
	tok := s.EncodeAt("a", t0)
	past := t0.Add(-time.Hour).Format(http.TimeFormat)
	future := t0.Add(time.Hour).Format(http.TimeFormat)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"rewritten", "APP=v; Path=/", "APP=v~" + tok + "; Path=/"},
		{"other name", "APP2=v; Path=/", "APP2=v; Path=/"},
		{"name is case-sensitive", "app=v", "app=v"},
		{"max-age 0 deletes", "APP=; Max-Age=0", "APP=; Max-Age=0"},
		{"max-age negative deletes", "APP=x; max-age=-1", "APP=x; max-age=-1"},
		{"past expires deletes", "APP=x; Expires=" + past, "APP=x; Expires=" + past},
		{"old cookie date format", "APP=x; expires=Thu, 01-Jan-1970 00:00:01 GMT", "APP=x; expires=Thu, 01-Jan-1970 00:00:01 GMT"},
		{"future expires kept", "APP=x; Expires=" + future, "APP=x~" + tok + "; Expires=" + future},
		{"max-age wins over past expires", "APP=x; Expires=" + past + "; Max-Age=10", "APP=x~" + tok + "; Expires=" + past + "; Max-Age=10"},
		{"max-age 0 wins over future expires", "APP=x; Max-Age=0; Expires=" + future, "APP=x; Max-Age=0; Expires=" + future},
		{"invalid max-age ignored", "APP=x; Max-Age=abc", "APP=x~" + tok + "; Max-Age=abc"},
		{"invalid expires ignored", "APP=x; Expires=yesterday", "APP=x~" + tok + "; Expires=yesterday"},
		{"no value", "APP", "APP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hdr("Set-Cookie", tc.in)
			s.ResponseAt(h, Session{}, "a", false, t0)
			if got := h.Get("Set-Cookie"); got != tc.want {
				t.Errorf("Set-Cookie %q became %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	// Several Set-Cookie lines for the app cookie are all rewritten; no
	// app cookie means nothing is added.
	h := hdr("Set-Cookie", "APP=1; Path=/a", "APP=2; Path=/b")
	s.ResponseAt(h, Session{ID: "b"}, "a", true, t0)
	if want := []string{"APP=1~" + tok + "; Path=/a", "APP=2~" + tok + "; Path=/b"}; !reflect.DeepEqual(h["Set-Cookie"], want) {
		t.Errorf("Set-Cookie = %q, want %q", h["Set-Cookie"], want)
	}
	h = http.Header{}
	s.ResponseAt(h, Session{ID: "b"}, "a", false, t0)
	if len(h) != 0 {
		t.Errorf("rewrite without app cookie added %v", h)
	}
}

func TestInsertResponse(t *testing.T) {
	s := newSticky(t, Config{CookieTimeout: 100 * time.Second})
	tok := s.EncodeAt("a", t0)
	fresh := s.LookupAt(hdr("Cookie", "SERVERID="+tok), t0)
	prevS := newSticky(t, Config{Key: testKey, PreviousKey: otherKey, CookieTimeout: 100 * time.Second})
	oldTok := newSticky(t, Config{Key: otherKey}).EncodeAt("a", t0)
	stale := prevS.LookupAt(hdr("Cookie", "SERVERID="+oldTok), t0)
	if stale.ID != "a" {
		t.Fatalf("previous-key lookup = %+v", stale)
	}
	for _, tc := range []struct {
		name   string
		s      *Sticky
		sess   Session
		id     string
		at     time.Duration
		secure bool
		want   string // "" means no Set-Cookie
	}{
		{name: "new client", s: s, id: "a",
			want: "SERVERID=" + tok + "; Path=/; Max-Age=100; HttpOnly; SameSite=Lax"},
		{name: "new client https", s: s, id: "a", secure: true,
			want: "SERVERID=" + tok + "; Path=/; Max-Age=100; HttpOnly; SameSite=None; Secure"},
		{name: "session held", s: s, sess: fresh, id: "a", at: 49 * time.Second},
		{name: "session half old is refreshed", s: s, sess: fresh, id: "a", at: 50 * time.Second,
			want: "SERVERID=" + s.EncodeAt("a", t0.Add(50*time.Second)) + "; Path=/; Max-Age=100; HttpOnly; SameSite=Lax"},
		{name: "pick changed", s: s, sess: fresh, id: "b",
			want: "SERVERID=" + s.EncodeAt("b", t0) + "; Path=/; Max-Age=100; HttpOnly; SameSite=Lax"},
		{name: "previous key re-issued", s: prevS, sess: stale, id: "a",
			want: "SERVERID=" + tok + "; Path=/; Max-Age=100; HttpOnly; SameSite=Lax"},
		{name: "no backend", s: s, id: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Set-Cookie": {"app=1"}}
			tc.s.ResponseAt(h, tc.sess, tc.id, tc.secure, t0.Add(tc.at))
			got := h["Set-Cookie"][1:]
			if tc.want == "" {
				if len(got) != 0 {
					t.Errorf("Set-Cookie added: %q, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Set-Cookie added %q, want %q", got, tc.want)
			}
			if h["Set-Cookie"][0] != "app=1" {
				t.Errorf("app cookie changed: %q", h["Set-Cookie"][0])
			}
		})
	}
}

func TestInsertSameSite(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      http.SameSite
		http, tls string
	}{
		{"default", 0, "; SameSite=Lax", "; SameSite=None; Secure"},
		{"lax", http.SameSiteLaxMode, "; SameSite=Lax", "; SameSite=Lax; Secure"},
		{"strict", http.SameSiteStrictMode, "; SameSite=Strict", "; SameSite=Strict; Secure"},
		{"none", http.SameSiteNoneMode, "; SameSite=Lax", "; SameSite=None; Secure"},
		{"omitted", http.SameSiteDefaultMode, "", "; Secure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSticky(t, Config{SameSite: tc.mode})
			for _, secure := range []bool{false, true} {
				want := tc.http
				if secure {
					want = tc.tls
				}
				h := http.Header{}
				s.ResponseAt(h, Session{}, "a", secure, t0)
				if got := h.Get("Set-Cookie"); !strings.HasSuffix(got, "; HttpOnly"+want) {
					t.Errorf("secure=%v: Set-Cookie %q, want suffix %q", secure, got, "; HttpOnly"+want)
				}
			}
		})
	}
}

// TestCookieParsesWithNetHTTP checks that net/http reads our cookie back.
func TestCookieParsesWithNetHTTP(t *testing.T) {
	s := newSticky(t, Config{})
	h := http.Header{}
	s.ResponseAt(h, Session{}, "b", true, t0)
	c, err := http.ParseSetCookie(h.Get("Set-Cookie"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "SERVERID" || c.Path != "/" || c.MaxAge != 3600 || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteNoneMode {
		t.Errorf("parsed cookie %+v", c)
	}
	req := &http.Request{Header: http.Header{}}
	req.AddCookie(c)
	if id := s.LookupAt(req.Header, t0).ID; id != "b" {
		t.Errorf("LookupAt after AddCookie = %q, want b", id)
	}
}

func TestRequestNilHeader(t *testing.T) {
	s := newSticky(t, Config{})
	if sess := s.RequestAt(nil, t0); sess.ID != "" {
		t.Errorf("RequestAt(nil) = %+v", sess)
	}
	s.ResponseAt(nil, Session{}, "a", false, t0) // must not panic
}
