package session

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzDecode checks that decoding never panics and accepts only what
// EncodeAt produced with the current key for a known backend.
func FuzzDecode(f *testing.F) {
	s := newSticky(f, Config{})
	good := s.EncodeAt("a", t0)
	for _, seed := range []string{
		good, s.EncodeAt("10.0.0.3:8080", t0), good[:TokenLen-1], good + "A", "",
		strings.Repeat("A", TokenLen), strings.Repeat("_", TokenLen), "\"" + good + "\"",
		good[:20] + "\n" + good[21:], good[:20] + "=" + good[21:],
		newSticky(f, Config{Key: otherKey}).EncodeAt("a", t0),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		sess, ok := s.decode(s.tab.Load(), token, t0.Unix())
		if !ok {
			if sess != (Session{}) {
				t.Fatalf("decode(%q) = %+v, false; want the zero Session", token, sess)
			}
			return
		}
		if again := s.EncodeAt(sess.ID, sess.Issued); again != token {
			t.Fatalf("decode(%q) accepted %+v, but EncodeAt gives %q", token, sess, again)
		}
		if _, known := s.tab.Load().tags[sess.ID]; !known {
			t.Fatalf("decode(%q) = unknown backend %q", token, sess.ID)
		}
	})
}

// FuzzRewriteSplit checks that stripping the token from a Rewrite cookie
// value never panics, undoes joining for every application value, and
// only ever removes a well-formed token.
func FuzzRewriteSplit(f *testing.F) {
	s := newSticky(f, Config{Mode: Rewrite, CookieName: "APP"})
	tok := s.EncodeAt("a", t0)
	for _, seed := range []string{
		"", "abc", "a~b", "~", `""`, `"`, `"x"`, `"a~b"`, "x~" + tok, `"x~` + tok + `"`,
		"~" + tok, tok, "x~" + tok[:TokenLen-1], "x~" + tok + "~" + tok, `"~` + tok,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if app, token, ok := splitValue(v); ok {
			if len(token) != TokenLen || joinValue(app, token) != v {
				t.Fatalf("splitValue(%q) = %q, %q; joinValue gives %q", v, app, token, joinValue(app, token))
			}
			var raw [rawLen]byte
			if !unpack(token, &raw) {
				t.Fatalf("splitValue(%q) removed a malformed token %q", v, token)
			}
		} else if app != v {
			t.Fatalf("splitValue(%q) = %q, not ok; want the value unchanged", v, app)
		}
		joined := joinValue(v, tok)
		app, token, ok := splitValue(joined)
		if !ok || app != v || token != tok {
			t.Fatalf("splitValue(joinValue(%q)) = %q, %q, %v", v, app, token, ok)
		}
	})
}

// FuzzCookieHeaders feeds arbitrary Cookie and Set-Cookie lines through
// both modes: no panic; Insert forwards no balancer cookie; a Rewrite
// round trip gives the backend back its value; a session is only ever a
// known backend.
func FuzzCookieHeaders(f *testing.F) {
	ins := newSticky(f, Config{})
	rw := newSticky(f, Config{Mode: Rewrite, CookieName: "APP"})
	tok := ins.EncodeAt("a", t0)
	for _, seed := range []string{
		"SERVERID=" + tok, "x=1; SERVERID=" + tok + "; y=2", `SERVERID="` + tok + `"`, "SERVERID",
		"APP=v~" + rw.EncodeAt("b", t0), `APP="v~` + rw.EncodeAt("b", t0) + `"`, "APP=v; Path=/",
		"APP=; Max-Age=0", "APP=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT", ";;; =; APP", "",
	} {
		f.Add(seed)
	}
	known := map[string]bool{"": true, "a": true, "b": true, "10.0.0.3:8080": true}
	f.Fuzz(func(t *testing.T, line string) {
		for _, s := range []*Sticky{ins, rw} {
			h := http.Header{"Cookie": {line, line}}
			sess := s.RequestAt(h, t0)
			if !known[sess.ID] {
				t.Fatalf("%v: RequestAt(%q).ID = %q, not a backend", s.mode, line, sess.ID)
			}
			if s.mode == Insert {
				for _, l := range h["Cookie"] {
					if s.LookupAt(http.Header{"Cookie": {l}}, t0).ID != "" {
						t.Fatalf("forwarded %q still carries a session", l)
					}
				}
			}
			resp := http.Header{"Set-Cookie": {line}}
			s.ResponseAt(resp, sess, "b", true, t0)
		}
		// Rewrite round trip on the application's value.
		resp := http.Header{"Set-Cookie": {line}}
		rw.ResponseAt(resp, Session{}, "b", false, t0)
		out := resp.Get("Set-Cookie")
		val, start, end, ok := rw.appCookie(line)
		if !ok || out == line {
			return
		}
		_, newStart, newEnd, _ := rw.appCookie(out)
		if out[:newStart] != line[:start] || out[newEnd:] != line[end:] {
			t.Fatalf("rewrite of %q changed more than the value: %q", line, out)
		}
		req := http.Header{"Cookie": {"APP=" + out[newStart:newEnd]}}
		if sess := rw.RequestAt(req, t0); sess.ID != "b" {
			t.Fatalf("RequestAt after rewrite of %q: ID %q, want b", line, sess.ID)
		}
		if got := req.Get("Cookie"); got != "APP="+val {
			t.Fatalf("rewrite of %q: backend gets %q, want %q", line, got, "APP="+val)
		}
	})
}
