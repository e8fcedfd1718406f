package httpproxy

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

var (
	testPlan      = newHeaderPlan(&Options{SLBID: true, XForwardedProto: true})
	testH1Options = h1Options{maxHead: 4096, maxURI: 256, gzip: true, sticky: true, plan: &testPlan}
)

func TestParseRequest(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a.example\r\n"
	tests := []struct {
		name string
		head string
		want h1Verdict
	}{
		{"get", get + "\r\n", h1Complete},
		{"head", "HEAD /x?y=%20 HTTP/1.1\r\nhost: a\r\n\r\n", h1Complete},
		{"partial", get, h1More},
		{"partial line", "GET / HTT", h1More},
		{"close", get + "Connection: close\r\n\r\n", h1Complete},
		{"keep-alive", get + "Connection: Keep-Alive\r\n\r\n", h1Complete},
		{"no host", "GET / HTTP/1.1\r\n\r\n", h1Decline},
		{"two hosts", get + "Host: b\r\n\r\n", h1Decline},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", h1Decline},
		{"host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", h1Decline},
		{"post", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", h1Decline},
		{"lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"http/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", h1Decline},
		{"absolute form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"percent in path", "GET /%2e%2e/ HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"fragment", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"long URI", "GET /" + strings.Repeat("a", 256) + " HTTP/1.1\r\nHost: a\r\n\r\n", h1Decline},
		{"content-length", get + "Content-Length: 0\r\n\r\n", h1Decline},
		{"transfer-encoding", get + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", h1Decline},
		{"CL and TE", get + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", h1Decline},
		{"expect", get + "Expect: 100-continue\r\n\r\n", h1Decline},
		{"upgrade", get + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", h1Decline},
		{"connection names a field", get + "Connection: X-Secret\r\n\r\n", h1Decline},
		{"obs-fold", get + "X-A: 1\r\n 2\r\n\r\n", h1Decline},
		{"space before colon", get + "X-A : 1\r\n\r\n", h1Decline},
		{"bare LF in header", get + "X-A: 1\nX-B: 2\r\n\r\n", h1Decline},
		{"bare LF, incomplete", "GET / HTTP/1.1\nHost: a\n", h1Decline},
		{"bare CR", get + "X-A: 1\rX-B: 2\r\n\r\n", h1Decline},
		{"NUL in value", get + "X-A: 1\x002\r\n\r\n", h1Decline},
		{"UTF-8 in value", get + "X-A: é\r\n\r\n", h1Decline},
		{"gzip", get + "Accept-Encoding: gzip, br\r\n\r\n", h1Complete},
		{"too big", get + "X-A: " + strings.Repeat("a", 4096) + "\r\n\r\n", h1Decline},
		{"too big, incomplete", get + "X-A: " + strings.Repeat("a", 4096), h1Decline},
		{"too many fields", get + strings.Repeat("X-A: 1\r\n", maxH1Lines) + "\r\n", h1Decline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q h1Request
			if got := parseRequest([]byte(tt.head), &testH1Options, &q); got != tt.want {
				t.Errorf("parseRequest(%q) = %d, want %d", tt.head, got, tt.want)
			}
		})
	}
}

// TestParseRequestFields checks what the fast lane forwards: the fields
// kept verbatim, the X-Forwarded-For values to extend, and those the
// listener replaces or drops (hop-by-hop ones).
func TestParseRequestFields(t *testing.T) {
	head := "GET /a?b HTTP/1.1\r\nHost: h:80\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for:3.3.3.3 \r\n" +
		"Keep-Alive: 5\r\nTE: trailers\r\nSLB-ID: forged\r\nX-Forwarded-Proto: forged\r\nProxy-Authorization: x\r\n" +
		"Connection: keep-alive, close\r\nAccept: */*\r\nCookie: a=1; SERVERID=x\r\nX-Forwarded-Port: 1\r\n\r\nGET /next"
	var q h1Request
	if v := parseRequest([]byte(head), &testH1Options, &q); v != h1Complete {
		t.Fatalf("verdict %d", v)
	}
	raw := []byte(head[:q.len])
	var kept, xff []string
	for _, ln := range q.keep[:q.nkeep] {
		kept = append(kept, string(raw[ln.start:ln.end]))
	}
	for _, v := range q.xff[:q.nxff] {
		xff = append(xff, string(raw[v.start:v.end]))
	}
	want := []string{"Host: h:80\r\n", "Accept: */*\r\n", "X-Forwarded-Port: 1\r\n"}
	if strings.Join(kept, "|") != strings.Join(want, "|") {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if strings.Join(xff, "|") != "1.1.1.1, 2.2.2.2|3.3.3.3" {
		t.Errorf("X-Forwarded-For values %q", xff)
	}
	if q.ncookie != 1 || string(raw[q.cookie[0].start:q.cookie[0].end]) != "a=1; SERVERID=x" {
		t.Errorf("Cookie values %v, want the one field's for the session to rewrite", q.cookie[:q.ncookie])
	}
	if !q.close || q.head || string(q.target) != "/a?b" || string(q.path) != "/a" || string(q.host) != "h:80" || q.len != len(head)-len("GET /next") {
		t.Errorf("parsed %+v", q)
	}
}

func TestParseResponse(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\n"
	tests := []struct {
		name   string
		head   string
		want   h1Verdict
		length int64
		close  bool
	}{
		{"length", ok + "Content-Length: 5\r\n\r\nhello", h1Complete, 5, false},
		{"no reason", "HTTP/1.1 204\r\n\r\n", h1Complete, -1, false},
		{"same length twice", ok + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", h1Complete, 5, false},
		{"close", ok + "Connection: close\r\nContent-Length: 0\r\n\r\n", h1Complete, 0, true},
		{"unframed", ok + "\r\n", h1Complete, -1, false},
		{"partial", ok + "Content-Le", h1More, 0, false},
		{"two lengths", ok + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", h1Decline, 0, false},
		{"signed length", ok + "Content-Length: +5\r\n\r\n", h1Decline, 0, false},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n", h1Decline, 0, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", h1Decline, 0, false},
		{"continue", "HTTP/1.1 100 Continue\r\n\r\n", h1Decline, 0, false},
		{"switching", "HTTP/1.1 101 Switching Protocols\r\n\r\n", h1Decline, 0, false},
		{"status 600", "HTTP/1.1 600 X\r\n\r\n", h1Decline, 0, false},
		{"status 2000", "HTTP/1.1 2000 X\r\n\r\n", h1Decline, 0, false},
		{"LF only", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", h1Decline, 0, false},
		{"connection names a field", ok + "Connection: X-A\r\n\r\n", h1Decline, 0, false},
		{"obs-fold", ok + "X-A: 1\r\n 2\r\n\r\n", h1Decline, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p h1Response
			got := parseResponse([]byte(tt.head), &p, nil, false)
			if got != tt.want {
				t.Fatalf("parseResponse(%q) = %d, want %d", tt.head, got, tt.want)
			}
			if got == h1Complete && (p.length != tt.length || p.close != tt.close) {
				t.Errorf("length %d close %v, want %d %v", p.length, p.close, tt.length, tt.close)
			}
		})
	}
}

// FuzzH1Request checks parseRequest against net/http: every head it
// accepts, http.ReadRequest reads too, to the same method, target, host,
// length and Connection: close, with no body, and each field it keeps
// or extends is one net/http saw.
func FuzzH1Request(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\ncookie:  SERVERID=x ; b=2 \r\n\r\n"))
	f.Add([]byte("HEAD /x?%41 HTTP/1.1\r\nHost: a:1\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var q h1Request
		if parseRequest(b, &testH1Options, &q) != h1Complete {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b))
		r, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("accepted %q; net/http: %v", b, err)
		}
		method := "GET"
		if q.head {
			method = "HEAD"
		}
		if r.Method != method || r.RequestURI != string(q.target) || r.Host != string(q.host) ||
			r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.Close != q.close || r.URL.Path != string(q.path) {
			t.Fatalf("accepted %q as %s %q host %q close %v; net/http read %s %q host %q close %v length %d TE %q path %q",
				b, method, q.target, q.host, q.close, r.Method, r.RequestURI, r.Host, r.Close, r.ContentLength, r.TransferEncoding, r.URL.Path)
		}
		if rest := len(b) - br.Buffered(); rest != q.len {
			t.Fatalf("head of %q: %d bytes, net/http read %d", b, q.len, rest)
		}
		raw := b[:q.len]
		for _, ln := range q.keep[:q.nkeep] {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(raw[ln.start:ln.end]), "\r\n"), ":")
			if !slices.Contains(r.Header.Values(name), strings.Trim(value, " \t")) && !strings.EqualFold(name, "Host") {
				t.Fatalf("kept %q: net/http has %q", raw[ln.start:ln.end], r.Header.Values(name))
			}
		}
		for _, v := range q.xff[:q.nxff] {
			if !slices.Contains(r.Header.Values("X-Forwarded-For"), string(raw[v.start:v.end])) {
				t.Fatalf("X-Forwarded-For value %q: net/http has %q", raw[v.start:v.end], r.Header.Values("X-Forwarded-For"))
			}
		}
		for _, v := range q.cookie[:q.ncookie] {
			if !slices.Contains(r.Header.Values("Cookie"), string(raw[v.start:v.end])) {
				t.Fatalf("Cookie value %q: net/http has %q", raw[v.start:v.end], r.Header.Values("Cookie"))
			}
		}
	})
}

// FuzzH1Response checks parseResponse against http.ReadResponse: every
// head it accepts with a framed body, net/http reads to the same status,
// length and Connection: close.
func FuzzH1Response(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 304\r\nDate: x\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p h1Response
		if parseResponse(b, &p, nil, false) != h1Complete || p.length < 0 {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b))
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("accepted %q; net/http: %v", b, err)
		}
		bodiless := p.bodiless(false)
		if resp.StatusCode != p.status || resp.Close != p.close || !bodiless && resp.ContentLength != p.length {
			t.Fatalf("accepted %q as %d length %d close %v; net/http read %d length %d close %v",
				b, p.status, p.length, p.close, resp.StatusCode, resp.ContentLength, resp.Close)
		}
		if rest := len(b) - br.Buffered(); rest != p.len {
			t.Fatalf("head of %q: %d bytes, net/http read %d", b, p.len, rest)
		}
	})
}
