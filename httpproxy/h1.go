package httpproxy

import (
	"bytes"
	"net/http"
	"unsafe"
)

// The fast lane's HTTP/1.1 parsers. They accept only what they are sure
// of: a request or response head that is well formed, in the common
// shape, with no framing or hop-by-hop subtleties. Everything else is
// left to net/http (the request's connection is handed over before any
// of it is consumed) or to http.ReadResponse, which apply their own
// checks: smuggling attempts, obs-fold, bare line feeds, oversized or
// malformed heads never take the fast lane. FuzzH1Request checks that
// every head parseRequest accepts, net/http reads the same way.

// maxH1Lines bounds the header lines of a head the fast lane takes.
const maxH1Lines = 64

// h1Verdict is what a parser made of the bytes it was given.
type h1Verdict uint8

const (
	h1Complete h1Verdict = iota // a whole head, parsed
	h1More                      // a head's beginning; read more
	h1Decline                   // not for the fast lane
)

// An h1Line is a header line to forward, as offsets into the head.
type h1Line struct{ start, end int32 }

// h1Request is a request head parsed in place from the connection's
// buffer. Its slices alias that buffer.
type h1Request struct {
	raw     []byte // the head, set by the caller once parsed
	len     int    // bytes of the head, final blank line included
	head    bool   // the method is HEAD
	target  []byte // origin-form request target
	path    []byte // target up to '?'
	host    []byte
	close   bool // Connection: close
	gzip    bool // the client accepts gzip and gzip is on
	keep    [maxH1Lines]h1Line
	nkeep   int
	xff     [8]h1Line // values of X-Forwarded-For fields (when we append to it or read the client in it)
	nxff    int
	cookie  [8]h1Line // values of Cookie fields (with sticky sessions)
	ncookie int
}

// h1Options are the settings the request parser applies.
type h1Options struct {
	maxHead, maxURI int
	gzip            bool // responses may be gzip-compressed (gzip.go)
	sticky          bool // Cookie fields are the session's to rewrite
	plan            *headerPlan
}

var crlf2 = []byte("\r\n\r\n")

// parseRequest parses a request head at the start of b.
func parseRequest(b []byte, o *h1Options, q *h1Request) h1Verdict {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		if len(b) >= o.maxHead || bareLineBreak(b) {
			return h1Decline
		}
		return h1More
	}
	end += 4
	if end > o.maxHead {
		return h1Decline
	}
	h := b[:end]
	*q = h1Request{len: end}

	// Request line: GET or HEAD, an origin-form target, HTTP/1.1.
	var rest []byte
	switch {
	case bytes.HasPrefix(h, []byte("GET /")):
		rest = h[4:]
	case bytes.HasPrefix(h, []byte("HEAD /")):
		rest, q.head = h[5:], true
	default:
		return h1Decline
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 || sp > o.maxURI || !bytes.HasPrefix(rest[sp:], []byte(" HTTP/1.1\r\n")) {
		return h1Decline
	}
	q.target = rest[:sp]
	if !validTarget(q.target) {
		return h1Decline
	}
	q.path = q.target
	if i := bytes.IndexByte(q.target, '?'); i >= 0 {
		q.path = q.target[:i]
	}

	// Header lines, up to the blank line.
	pos := len(h) - len(rest) + sp + len(" HTTP/1.1\r\n")
	hosts := 0
	var ae gzipAccept
	for pos < end-2 {
		eol := pos + bytes.Index(h[pos:], []byte("\r\n"))
		line := h[pos:eol]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return h1Decline // obs-fold, a bad name, no colon
		}
		v, off, ok := fieldValue(line[colon+1:])
		if !ok {
			return h1Decline
		}
		vs := int32(pos + colon + 1 + off)
		keep := true
		switch n := line[:colon]; len(n) {
		case 4:
			if equalFold(n, "host") {
				if hosts++; hosts > 1 || !validHost(v) {
					return h1Decline
				}
				q.host = v
			}
		case 6:
			switch {
			case equalFold(n, "expect"):
				return h1Decline
			case equalFold(n, "cookie") && o.sticky:
				if q.ncookie == len(q.cookie) {
					return h1Decline
				}
				q.cookie[q.ncookie] = h1Line{vs, vs + int32(len(v))}
				q.ncookie++
				keep = false
			}
		case 7:
			if equalFold(n, "upgrade") || equalFold(n, "trailer") {
				return h1Decline
			}
		case 10:
			if equalFold(n, "connection") { // removed as hop-by-hop below
				if q.close, ok = connectionTokens(v); !ok {
					return h1Decline
				}
			}
		case 14:
			if equalFold(n, "content-length") || equalFold(n, "http2-settings") {
				return h1Decline
			}
		case 15:
			if equalFold(n, "accept-encoding") && o.gzip {
				ae.add(unsafeString(v)) // and forwarded as it is
			}
			if equalFold(n, "x-forwarded-for") && o.plan.readsXFF() {
				if q.nxff == len(q.xff) {
					return h1Decline
				}
				q.xff[q.nxff] = h1Line{vs, vs + int32(len(v))}
				q.nxff++
				keep = !o.plan.xff // else written anew, appended to or cut
			}
		case 17:
			if equalFold(n, "transfer-encoding") {
				return h1Decline
			}
		}
		if keep && o.plan.drops(line[:colon]) {
			keep = false
		}
		if keep {
			if q.nkeep == maxH1Lines {
				return h1Decline
			}
			q.keep[q.nkeep] = h1Line{int32(pos), int32(eol + 2)}
			q.nkeep++
		}
		pos = eol + 2
	}
	if hosts != 1 {
		return h1Decline
	}
	method := http.MethodGet
	if q.head {
		method = http.MethodHead
	}
	q.gzip = ae.accepts(method)
	return h1Complete
}

// h1Response is a backend's response head, parsed in place from the
// backend connection's read buffer.
type h1Response struct {
	len     int
	status  int
	line    []byte // the status line, without "HTTP/1.x" and CRLF: " 200 OK"
	keep    [maxH1Lines]h1Line
	nkeep   int
	length  int64 // Content-Length, or -1
	close   bool  // the backend closes the connection after it
	hasDate bool
}

// parseResponse parses a response head at the start of b. Heads it
// declines (chunked or unframed bodies, 1xx, HTTP/1.0, unusual
// Connection fields, oddities) are read by http.ReadResponse instead.
// If gz is not nil, the fields the gzip rules read go to it as they are
// parsed, so a response for a client accepting gzip is read once. With
// dropAltSvc, the backend's Alt-Svc is not kept (see advertiseH3).
func parseResponse(b []byte, p *h1Response, gz *gzipHead, dropAltSvc bool) h1Verdict {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		if bytes.Contains(b, []byte("\n\n")) {
			return h1Decline
		}
		return h1More
	}
	end += 4
	h := b[:end]
	*p = h1Response{len: end, length: -1}
	if len(h) < len("HTTP/1.1 200\r\n\r\n") || !bytes.HasPrefix(h, []byte("HTTP/1.1 ")) {
		return h1Decline
	}
	eol := bytes.Index(h, []byte("\r\n"))
	p.line = h[len("HTTP/1.1"):eol]
	code := h[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return h1Decline
		}
	}
	p.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if p.status < 200 || p.status > 599 || eol > 12 && h[12] != ' ' {
		return h1Decline
	}
	if _, _, ok := fieldValue(p.line); !ok {
		return h1Decline
	}
	if gz != nil {
		*gz = gzipHead{status: p.status, length: -1}
	}
	for pos := eol + 2; pos < end-2; {
		eol := pos + bytes.Index(h[pos:], []byte("\r\n"))
		line := h[pos:eol]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return h1Decline
		}
		v, _, ok := fieldValue(line[colon+1:])
		if !ok {
			return h1Decline
		}
		if gz != nil {
			gz.line(unsafeString(line[:colon]), unsafeString(v))
		}
		keep := true
		switch n := line[:colon]; len(n) {
		case 4:
			p.hasDate = p.hasDate || equalFold(n, "date")
		case 7:
			if equalFold(n, "upgrade") || equalFold(n, "trailer") {
				return h1Decline
			}
			keep = !dropAltSvc || !equalFold(n, "alt-svc")
		case 10:
			if equalFold(n, "connection") { // removed as hop-by-hop below
				if p.close, ok = connectionTokens(v); !ok {
					return h1Decline
				}
			}
		case 14:
			if equalFold(n, "content-length") {
				l, ok := parseLength(v)
				if !ok || p.length >= 0 && p.length != l {
					return h1Decline
				}
				p.length = l
			}
		case 17:
			if equalFold(n, "transfer-encoding") {
				return h1Decline
			}
		}
		if keep && hopNames.has(line[:colon]) {
			keep = false
		}
		if keep {
			if p.nkeep == maxH1Lines {
				return h1Decline
			}
			p.keep[p.nkeep] = h1Line{int32(pos), int32(eol + 2)}
			p.nkeep++
		}
		pos = eol + 2
	}
	return h1Complete
}

// bodiless reports whether a response has no body whatever its header
// says (RFC 9112 §6.3).
func (p *h1Response) bodiless(head bool) bool {
	return head || p.status == 204 || p.status == 304
}

// validTarget reports whether t is an origin-form target the fast lane
// passes through unchanged: '/' then unreserved characters, sub-delims,
// ':', '@', '/' and '?', with percent-encoding only in the query (the
// path is used for routing as it is, so it must need no decoding).
func validTarget(t []byte) bool {
	query := false
	for _, c := range t {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-._~!$&'()*+,;=:@/"), c) >= 0:
		case c == '?':
			query = true
		case c == '%' && query:
		default:
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is a plain name or address with
// an optional port.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token (a field name).
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

// fieldValue trims a field value's optional whitespace, returning the
// value and its offset in v, and reports whether it holds only visible
// ASCII, spaces and tabs.
func fieldValue(v []byte) (value []byte, off int, ok bool) {
	for _, c := range v {
		if c < ' ' && c != '\t' || c >= 0x7f {
			return nil, 0, false
		}
	}
	value = bytes.TrimLeft(v, " \t")
	return bytes.TrimRight(value, " \t"), len(v) - len(value), true
}

// connectionTokens reads a Connection field: "close" and "keep-alive"
// are understood; any other token names a field to remove, which the
// fast lane leaves to net/http.
func connectionTokens(v []byte) (close, ok bool) {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		switch t = bytes.Trim(t, " \t"); {
		case len(t) == 0, equalFold(t, "keep-alive"):
		case equalFold(t, "close"):
			close = true
		default:
			return false, false
		}
	}
	return close, true
}

// parseLength parses a Content-Length value: digits only.
func parseLength[T string | []byte](v T) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := range len(v) {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// bareLineBreak reports whether b holds a CR or LF that is not part of a
// CRLF pair (a trailing CR may still be followed by its LF).
func bareLineBreak(b []byte) bool {
	for i, c := range b {
		switch c {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return true
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return true
			}
		}
	}
	return false
}

// equalFold reports whether b equals the lower-case s, ignoring ASCII
// case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// unsafeString returns b as a string without copying, for lookups that
// do not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
