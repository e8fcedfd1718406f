package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// MinTokenLen is the shortest token a token file may hold, in bytes: a
// guessable token would make authentication a formality.
const MinTokenLen = 16

// Tokens is the set of named bearer tokens that may use the admin
// server: a token's name is what the audit line reports as who made a
// change, so each operator or tool gets its own.
//
// A token file has one token a line, "name:token"; blank lines and lines
// starting with # are ignored. Names and tokens are unique, a name is
// letters, digits, '.', '_' or '-', and a token has at least MinTokenLen
// bytes and no spaces.
//
// A nil *Tokens holds none: the admin server then refuses every write
// but those of a client certificate.
// Create one with LoadTokens or ParseTokens. A Tokens is immutable and
// safe for concurrent use.
type Tokens struct {
	names  []string
	hashes [][sha256.Size]byte // of the tokens, so that compares take equal time whatever the length
}

// LoadTokens reads a token file (see Tokens).
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin: tokens: %w", err)
	}
	return ParseTokens(filepath.Base(path), data)
}

// ParseTokens parses the token file data, naming it name in errors.
func ParseTokens(name string, data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		who, secret, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("admin: %s:%d: want name:token", name, n)
		case !validName(who):
			return nil, fmt.Errorf("admin: %s:%d: token name %q: want letters, digits, '.', '_' or '-'", name, n, who)
		case len(secret) < MinTokenLen:
			return nil, fmt.Errorf("admin: %s:%d: token of %q is %d bytes, want at least %d", name, n, who, len(secret), MinTokenLen)
		case strings.ContainsAny(secret, " \t"):
			return nil, fmt.Errorf("admin: %s:%d: token of %q has a space", name, n, who)
		}
		h := sha256.Sum256([]byte(secret))
		if other, dup := seen[h]; dup {
			return nil, fmt.Errorf("admin: %s:%d: token of %q is also %q's", name, n, who, other)
		}
		for _, w := range t.names {
			if w == who {
				return nil, fmt.Errorf("admin: %s:%d: token name %q given twice", name, n, who)
			}
		}
		seen[h] = who
		t.names = append(t.names, who)
		t.hashes = append(t.hashes, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("admin: %s: %w", name, err)
	}
	if len(t.names) == 0 {
		return nil, fmt.Errorf("admin: %s: no tokens", name)
	}
	return t, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// match returns the name of secret's token. It compares with every token
// in constant time, so the time taken tells nothing of which or how much
// of a token matched.
func (t *Tokens) match(secret string) (string, bool) {
	if t == nil {
		return "", false
	}
	h := sha256.Sum256([]byte(secret))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.names[found], true
}

// Refusal reasons, the values of clb_admin_refused_total's reason label.
const (
	refusedMissing  = "missing_token" // 401: no credential
	refusedBad      = "bad_token"     // 401: a credential no token matches
	refusedSession  = "bad_session"   // 401: a session cookie of no live session
	refusedNoTokens = "no_tokens"     // 403: a write with no token file
	refusedCSRF     = "csrf"          // 403: a session's write without its CSRF token
	refusedLimited  = "rate_limited"  // 429: a login from an address with too many failures
)

var refusalReasons = []string{refusedMissing, refusedBad, refusedSession, refusedNoTokens, refusedCSRF, refusedLimited}

// authorize decides a request: it returns who made it (a token's name,
// "cert:NAME" for a client certificate, the login's for a session, or
// "" for an open read) or writes the refusal and returns ok false.
//
// A request is authenticated by, first, an Authorization header (a
// bearer token); else a verified client certificate; else a session
// cookie, whose writes also need the session's CSRF token in the
// X-CSRF-Token header, since a browser sends a cookie with any request.
// Writes always need one of them; reads need one unless the admin
// server was reached on a loopback address.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, write bool) (who string, ok bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if who, ok := certWho(r); ok {
			return who, true
		}
		if c, err := r.Cookie(SessionCookie); err == nil {
			return s.authorizeSession(w, r, c.Value, write)
		}
		if !write && onLoopback(r) {
			return "", true
		}
	}
	if write && s.tokens == nil {
		s.refuse(w, r, http.StatusForbidden, refusedNoTokens, "admin: writes are off: no -admin-tokens configured")
		return "", false
	}
	// The scheme's name is case-insensitive (RFC 9110 §11.1).
	scheme, secret, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		s.refuse(w, r, http.StatusUnauthorized, refusedMissing, "admin: missing bearer token")
		return "", false
	}
	who, ok = s.tokens.match(secret)
	if !ok {
		s.refuse(w, r, http.StatusUnauthorized, refusedBad, "admin: bad token")
		return "", false
	}
	return who, true
}

// authorizeSession is authorize for a request carrying a session cookie.
// A stale cookie does not close reads that are open anyway.
func (s *Server) authorizeSession(w http.ResponseWriter, r *http.Request, cookie string, write bool) (who string, ok bool) {
	sess := s.sess.lookup(cookie, s.now())
	switch {
	case sess == nil && !write && onLoopback(r):
		return "", true
	case sess == nil:
		s.refuse(w, r, http.StatusUnauthorized, refusedSession, "admin: session expired or unknown: log in again")
		return "", false
	case write && !validCSRF(sess, r.Header.Get(CSRFHeader)):
		s.refuse(w, r, http.StatusForbidden, refusedCSRF, "admin: missing or bad "+CSRFHeader+" header")
		return "", false
	}
	return sess.who, true
}

// onLoopback reports whether r came to a loopback address of the
// server. A request whose local address is unknown is not.
func onLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// refuse answers a refused request with a one-line body, counts it and
// logs it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	s.refused.WithLabelValues(reason).Inc()
	s.audit.Warn("admin request refused", "reason", reason, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="clb admin"`)
	}
	http.Error(w, msg, code)
}
