package session

import (
	"net/http"
	"strings"
	"time"
)

// Separator joins the application's cookie value and the backend token in
// Rewrite mode: value + "~" + token. Since a token has a fixed length
// (TokenLen) and is appended last, splitting is unambiguous even when the
// application's value itself contains '~'.
const Separator = '~'

// Lookup is LookupAt(h, Config.Now()).
func (s *Sticky) Lookup(h http.Header) Session { return s.LookupAt(h, s.now()) }

// LookupAt returns the session named by the request header h's cookies,
// without changing h. Every Cookie line is read; of several cookies with
// the configured name, the first that decodes wins. DQUOTE-wrapped values
// are unwrapped. A missing, forged, stale or unknown token yields the zero
// Session. It allocates nothing.
func (s *Sticky) LookupAt(h http.Header, now time.Time) Session {
	t := s.table()
	sec := now.Unix()
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			name, val, ok := strings.Cut(pair, "=")
			if !ok || trimOWS(name) != s.name {
				continue
			}
			val = trimOWS(val)
			if s.mode == Rewrite {
				_, val, ok = splitValue(val)
				if !ok {
					continue
				}
			} else {
				val = unquote(val)
			}
			if sess, ok := s.decode(t, val, sec); ok {
				return sess
			}
		}
	}
	return Session{}
}

// Request is RequestAt(h, Config.Now()).
func (s *Sticky) Request(h http.Header) Session { return s.RequestAt(h, s.now()) }

// RequestAt is what the HTTP listener calls on each request before
// forwarding it: it returns LookupAt(h, now), then rewrites h's Cookie lines
// in place for the backend. In Insert mode it removes every cookie with the
// configured name (the application never sees SERVERID); in Rewrite mode it
// strips the token from every cookie with the configured name, so the
// application gets back exactly the value it set, quotes included. Lines
// without such a cookie are left byte for byte; a line left empty is
// removed.
func (s *Sticky) RequestAt(h http.Header, now time.Time) Session {
	sess := s.LookupAt(h, now)
	lines := h["Cookie"]
	var out []string
	for i, line := range lines {
		nl, changed := s.forwardLine(line)
		if changed && out == nil {
			out = make([]string, i, len(lines))
			copy(out, lines[:i])
		}
		if out != nil && nl != "" {
			out = append(out, nl)
		}
	}
	switch {
	case out == nil:
	case len(out) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = out
	}
	return sess
}

// forwardLine rewrites one Cookie line for the backend.
func (s *Sticky) forwardLine(line string) (string, bool) {
	if !strings.Contains(line, s.name) {
		return line, false
	}
	var b strings.Builder
	changed := false
	for rest := line; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, ";")
		p := trimOWS(pair)
		if name, val, ok := strings.Cut(p, "="); ok && trimOWS(name) == s.name {
			if s.mode == Insert {
				changed = true
				continue
			}
			if app, _, ok := splitValue(trimOWS(val)); ok {
				p = s.name + "=" + app
				changed = true
			}
		}
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	if !changed {
		return line, false
	}
	return b.String(), true
}

// Response is ResponseAt(h, sess, id, secure, Config.Now()).
func (s *Sticky) Response(h http.Header, sess Session, id string, secure bool) {
	s.ResponseAt(h, sess, id, secure, s.now())
}

// ResponseAt is what the HTTP listener calls on each backend response
// before sending it to the client: sess is what Request returned, id the
// backend that served the request ("" does nothing), secure whether the
// client connection is HTTPS. It works the same for every status code —
// 1xx aside, which the listener does not pass — including 3xx redirects
// and 4xx errors, so stickiness set on a login redirect survives it.
//
// In Insert mode it adds a Set-Cookie naming id when the pick changed
// (sess.ID != id: no cookie, a stale one, or a fallback pick), when the
// token is half CookieTimeout old (sliding expiry) or when it was made
// with the previous key. The cookie is
//
//	SERVERID=<token>; Path=/; Max-Age=<CookieTimeout>; HttpOnly; SameSite=Lax|None[; Secure]
//
// In Rewrite mode it appends Separator and a fresh token for id to the
// value of every Set-Cookie that sets the application's cookie, keeping
// the attributes byte for byte; cookies being deleted (Max-Age ≤ 0 or
// Expires not after now) pass unchanged. If the application sets no
// cookie, nothing is added: the balancer cannot know the cookie's Path,
// Domain or lifetime, so the session sticks again from the application's
// next Set-Cookie.
func (s *Sticky) ResponseAt(h http.Header, sess Session, id string, secure bool, now time.Time) {
	if id == "" || h == nil {
		return
	}
	if s.mode == Insert {
		if sess.ID == id && !sess.stale && now.Unix()-sess.Issued.Unix() < s.timeout/2 {
			return
		}
		h["Set-Cookie"] = append(h["Set-Cookie"], s.insertCookie(s.EncodeAt(id, now), secure))
		return
	}
	token := ""
	for i, line := range h["Set-Cookie"] {
		v, start, end, ok := s.appCookie(line)
		if !ok || isDeletion(line[end:], now) {
			continue
		}
		if token == "" {
			token = s.EncodeAt(id, now)
		}
		h["Set-Cookie"][i] = line[:start] + joinValue(v, token) + line[end:]
	}
}

// insertCookie formats the Insert-mode Set-Cookie value.
func (s *Sticky) insertCookie(token string, secure bool) string {
	ss := ""
	switch s.sameSite {
	case 0:
		ss = "; SameSite=Lax"
		if secure {
			ss = "; SameSite=None"
		}
	case http.SameSiteLaxMode:
		ss = "; SameSite=Lax"
	case http.SameSiteStrictMode:
		ss = "; SameSite=Strict"
	case http.SameSiteNoneMode:
		ss = "; SameSite=Lax"
		if secure {
			ss = "; SameSite=None"
		}
	}
	sec := ""
	if secure {
		sec = "; Secure"
	}
	return s.name + "=" + token + s.attrs + ss + sec
}

// appCookie finds the application's cookie in a Set-Cookie line: its
// trimmed value and where that value starts and ends in line.
func (s *Sticky) appCookie(line string) (val string, start, end int, ok bool) {
	pairEnd := strings.IndexByte(line, ';')
	if pairEnd < 0 {
		pairEnd = len(line)
	}
	eq := strings.IndexByte(line[:pairEnd], '=')
	if eq < 0 || trimOWS(line[:eq]) != s.name {
		return "", 0, 0, false
	}
	start, end = eq+1, pairEnd
	for start < end && isOWS(line[start]) {
		start++
	}
	for end > start && isOWS(line[end-1]) {
		end--
	}
	return line[start:end], start, end, true
}

// joinValue attaches token to an application cookie value, inside the
// quotes if the value is quoted.
func joinValue(v, token string) string {
	if isQuoted(v) {
		return v[:len(v)-1] + string(Separator) + token + `"`
	}
	return v + string(Separator) + token
}

// splitValue undoes joinValue: it returns the application's value and the
// token. ok is false if v carries no token, judged by syntax alone: a
// value from a token made with a forgotten key is still stripped, so the
// application never sees a balancer token.
func splitValue(v string) (app, token string, ok bool) {
	inner := v
	q := isQuoted(v)
	if q {
		inner = v[1 : len(v)-1]
	}
	n := len(inner) - TokenLen - 1
	if n < 0 || inner[n] != Separator {
		return v, "", false
	}
	token = inner[n+1:]
	var raw [rawLen]byte
	if !unpack(token, &raw) {
		return v, "", false
	}
	if q {
		return v[:n+1] + `"`, token, true
	}
	return inner[:n], token, true
}

// isDeletion reports whether Set-Cookie attributes (the part after the
// name=value pair) make the cookie expire at once: Max-Age ≤ 0, or, with no
// valid Max-Age, an Expires not after now (RFC 6265 §5.2.1–5.2.2, §5.3).
func isDeletion(attrs string, now time.Time) bool {
	maxAge, expires := 0, 0 // 0 unseen, 1 deletes, 2 keeps
	for attrs != "" {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		name, val, _ := strings.Cut(a, "=")
		name, val = trimOWS(name), trimOWS(val)
		switch {
		case strings.EqualFold(name, "Max-Age"):
			if n, ok := parseDelta(val); ok {
				maxAge = 2
				if n <= 0 {
					maxAge = 1
				}
			}
		case strings.EqualFold(name, "Expires"):
			if t, ok := parseExpires(val); ok {
				expires = 2
				if !t.After(now) {
					expires = 1
				}
			}
		}
	}
	if maxAge != 0 {
		return maxAge == 1
	}
	return expires == 1
}

// parseDelta parses a Max-Age value: an optional '-' and digits. Only the
// sign matters, so overflow saturates.
func parseDelta(v string) (int, bool) {
	neg := false
	if v != "" && v[0] == '-' {
		neg, v = true, v[1:]
	}
	if v == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		if n < 1<<30 {
			n = n*10 + int(v[i]-'0')
		}
	}
	if neg {
		return -n, true
	}
	return n, true
}

func parseExpires(v string) (time.Time, bool) {
	if t, err := http.ParseTime(v); err == nil {
		return t, true
	}
	if t, err := time.Parse("Mon, 02-Jan-2006 15:04:05 MST", v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func isQuoted(v string) bool { return len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' }

func unquote(v string) string {
	if isQuoted(v) {
		return v[1 : len(v)-1]
	}
	return v
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(s string) string {
	for s != "" && isOWS(s[0]) {
		s = s[1:]
	}
	for s != "" && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
