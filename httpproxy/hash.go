package httpproxy

import (
	"bytes"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/lbkit/lbkit/balancer"
)

// HashPolicy chooses what of an HTTP request the hash scheduler hashes
// (HTTPOptions.HashBy): a header field's value, a cookie's value, the URI
// path or a query parameter's value — HAProxy's balance hdr(), uri and
// url_param, nginx's hash … consistent, Envoy's hash_policy. Requests with
// the same value go to the same backend of a group whose scheduler is
// hash (balancer.Maglev{By: balancer.HashKey}), and when a backend leaves
// or joins only about its share of values moves.
//
// The value is hashed with xxhash (Key.Hash = xxhash.Sum64String(value),
// HasHash true), so an own gateway hashing the same value with the same
// function sends it to the same backend. A request without the value (the
// field, cookie or parameter absent or empty) is placed by its source IP,
// as sch places it. A valid sticky-session cookie wins over the hash: the
// client stays on its session's backend (HTTPOptions.StickySession).
//
// Set exactly one field. The zero value hashes nothing: every request is
// placed by its source IP under the hash scheduler. A HashPolicy is a
// plain value, read once when the listener is created.
type HashPolicy struct {
	// Header names a request header field whose value is hashed (the
	// first field of that name, its whole value). Case-insensitive; Host
	// hashes the request's host (HTTP/2's :authority).
	Header string
	// Cookie names a cookie whose value is hashed (the first cookie of
	// that name, without surrounding double quotes).
	Cookie string
	// Path hashes the request's path as forwarding rules match it:
	// percent-decoded, without the query (HAProxy's balance uri).
	Path bool
	// Query names a query parameter whose value is hashed (the first
	// parameter of that name, as sent: not percent-decoded). The name is
	// made of letters, digits and "-._~", so it matches as sent too.
	Query string
}

// hashPolicy is a validated HashPolicy, ready for both lanes. A nil
// *hashPolicy hashes nothing.
type hashPolicy struct {
	src   hashSource
	name  string // lower-case header name, or the cookie or query parameter name
	canon string // the header name as net/http keys it
}

type hashSource uint8

const (
	hashHeader hashSource = iota
	hashCookie
	hashPath
	hashQuery
)

// compile validates p and returns its lanes' form, nil for the zero
// HashPolicy.
func (p HashPolicy) compile() (*hashPolicy, error) {
	var set []*hashPolicy
	if p.Header != "" {
		if !isToken([]byte(p.Header)) {
			return nil, configErr("HashBy.Header", p.Header, "not a header field name")
		}
		set = append(set, &hashPolicy{hashHeader, strings.ToLower(p.Header), http.CanonicalHeaderKey(p.Header)})
	}
	if p.Cookie != "" {
		if !isToken([]byte(p.Cookie)) {
			return nil, configErr("HashBy.Cookie", p.Cookie, "not a cookie name")
		}
		set = append(set, &hashPolicy{src: hashCookie, name: p.Cookie})
	}
	if p.Path {
		set = append(set, &hashPolicy{src: hashPath})
	}
	if p.Query != "" {
		if !unreserved(p.Query) {
			return nil, configErr("HashBy.Query", p.Query, `want letters, digits and "-._~"`)
		}
		set = append(set, &hashPolicy{src: hashQuery, name: p.Query})
	}
	switch len(set) {
	case 0:
		return nil, nil
	case 1:
		return set[0], nil
	}
	return nil, configErr("HashBy", p.String(), "set one of Header, Cookie, Path and Query")
}

// String renders the policy as a config shows it: "header X-User",
// "cookie uid", "path", "query id"; several fields are joined by commas.
func (p HashPolicy) String() string {
	var s []string
	if p.Header != "" {
		s = append(s, "header "+p.Header)
	}
	if p.Cookie != "" {
		s = append(s, "cookie "+p.Cookie)
	}
	if p.Path {
		s = append(s, "path")
	}
	if p.Query != "" {
		s = append(s, "query "+p.Query)
	}
	return strings.Join(s, ", ")
}

// hashRequest is a request as the hash rule reads it. Each lane renders
// its own parse of the request this way, so that the rule — which part,
// which occurrence, what counts as absent — is written once, in
// hashPolicy.value. The strings may alias the lane's buffers: they are
// hashed, never kept.
type hashRequest interface {
	// headerField returns the value of the i-th (from 0) header field
	// named lower (lower case; canon as net/http keys it), with the OWS
	// around it trimmed.
	headerField(lower, canon string, i int) (string, bool)
	// urlPath is the request's path, percent-decoded.
	urlPath() string
	// rawQuery is the request's query, as sent, without the '?'.
	rawQuery() string
}

// key returns the pick key of a request from src to dst: with the hash
// of the policy's value, if the request has one.
func (p *hashPolicy) key(src, dst netip.AddrPort, r hashRequest) balancer.Key {
	k := balancer.Key{Src: src, Dst: dst}
	if p != nil {
		if v := p.value(r); v != "" {
			k.Hash, k.HasHash = xxhash.Sum64String(v), true
		}
	}
	return k
}

// value is the request's value for the policy, "" if it has none.
func (p *hashPolicy) value(r hashRequest) string {
	switch p.src {
	case hashHeader:
		v, _ := r.headerField(p.name, p.canon, 0)
		return v
	case hashCookie:
		for i := 0; ; i++ {
			f, ok := r.headerField("cookie", "Cookie", i)
			if !ok {
				return ""
			}
			if v, ok := cookieValue(f, p.name); ok {
				return v
			}
		}
	case hashPath:
		return r.urlPath()
	}
	return queryValue(r.rawQuery(), p.name)
}

// cookieValue returns the value of the first cookie called name in a
// Cookie field ("a=1; b=2"), without surrounding double quotes.
func cookieValue(field, name string) (string, bool) {
	for field != "" {
		var pair string
		pair, field, _ = strings.Cut(field, ";")
		n, v, ok := strings.Cut(strings.Trim(pair, " \t"), "=")
		if ok && n == name {
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// queryValue returns the value of the first parameter called name in a
// raw query ("a=1&b=2"), as sent.
func queryValue(query, name string) string {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if n, v, ok := strings.Cut(pair, "="); ok && n == name {
			return v
		}
	}
	return ""
}

// unreserved reports whether s is non-empty and made of RFC 3986
// unreserved characters, which a query carries as they are.
func unreserved(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// stdRequest renders a net/http request (HTTP/1.x or HTTP/2) for the
// hash rule.
type stdRequest http.Request

func (r *stdRequest) headerField(lower, canon string, i int) (string, bool) {
	if lower == "host" {
		// net/http moves Host (HTTP/2: :authority) out of Header.
		return r.Host, i == 0 && r.Host != ""
	}
	vs := r.Header[canon]
	if i >= len(vs) {
		return "", false
	}
	return vs[i], true
}

func (r *stdRequest) urlPath() string  { return r.URL.Path }
func (r *stdRequest) rawQuery() string { return r.URL.RawQuery }

// h1View renders a request the fast lane parsed in place for the hash
// rule, reading the head's bytes without copying them.
type h1View h1Request

func (q *h1View) headerField(lower, _ string, i int) (string, bool) {
	h := q.raw
	h = h[bytes.Index(h, []byte("\r\n"))+2 : len(h)-2] // the header lines, each ending in CRLF
	for len(h) > 0 {
		eol := bytes.Index(h, []byte("\r\n"))
		line := h[:eol]
		h = h[eol+2:]
		colon := bytes.IndexByte(line, ':') // parseRequest saw one on every line
		if !equalFold(line[:colon], lower) {
			continue
		}
		if i > 0 {
			i--
			continue
		}
		v, _, _ := fieldValue(line[colon+1:])
		return unsafeString(v), true
	}
	return "", false
}

// urlPath needs no decoding: parseRequest takes no '%' in a path.
func (q *h1View) urlPath() string { return unsafeString(q.path) }

func (q *h1View) rawQuery() string {
	_, after, _ := bytes.Cut(q.target, []byte("?"))
	return unsafeString(after)
}
