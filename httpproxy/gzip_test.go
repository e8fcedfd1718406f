package httpproxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzhttp"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

func TestGzipAccept(t *testing.T) {
	tests := []struct {
		name   string
		method string
		fields []string
		want   bool
	}{
		{"none", "GET", nil, false},
		{"gzip", "GET", []string{"gzip"}, true},
		{"browser", "GET", []string{"gzip, deflate, br, zstd"}, true},
		{"case and spaces", "GET", []string{"  br ,  GZip  ; Q=0.8 "}, true},
		{"q=0", "GET", []string{"gzip;q=0"}, false},
		{"q=0.000", "GET", []string{"gzip;q=0.000"}, false},
		{"q=0.001", "GET", []string{"gzip;q=0.001"}, true},
		{"q=1.0", "GET", []string{"gzip;q=1.0"}, true},
		{"q above 1", "GET", []string{"gzip;q=7"}, true},
		{"q with exponent", "GET", []string{"gzip;q=1e-3"}, true},
		{"q negative", "GET", []string{"gzip;q=-1"}, false},
		{"q malformed", "GET", []string{"gzip;q=abc"}, false},
		{"q empty", "GET", []string{"gzip;q="}, false},
		{"q spaced is not a q", "GET", []string{"gzip;q = 0"}, true},
		{"last q wins", "GET", []string{"gzip;q=0;q=1"}, true},
		{"first gzip wins", "GET", []string{"gzip;q=0, gzip"}, false},
		{"other parameter", "GET", []string{"gzip;level=9"}, true},
		{"star", "GET", []string{"*"}, false},
		{"star with gzip refused", "GET", []string{"*, gzip;q=0"}, false},
		{"identity", "GET", []string{"identity"}, false},
		{"x-gzip", "GET", []string{"x-gzip"}, false},
		{"gzip in a longer name", "GET", []string{"gzipped, notgzip"}, false},
		{"second field", "GET", []string{"br", "gzip"}, true},
		{"first field refuses", "GET", []string{"gzip;q=0", "gzip"}, false},
		{"HEAD", "HEAD", []string{"gzip"}, false},
		{"empty entries", "GET", []string{" , ,gzip,"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a gzipAccept
			for _, f := range tt.fields {
				a.add(f)
			}
			if got := a.accepts(tt.method); got != tt.want {
				t.Errorf("accepts(%s %q) = %v, want %v", tt.method, tt.fields, got, tt.want)
			}
		})
	}
}

func TestGzipDecide(t *testing.T) {
	text := bytes.Repeat([]byte("hello, gzip "), 200) // 2400 bytes
	tests := []struct {
		name   string
		status int
		lines  [][2]string
		body   []byte
		stage  gzipStage
		want   gzipVerdict
	}{
		{"json, known length", 200, [][2]string{{"Content-Type", "application/json"}, {"Content-Length", "2400"}}, nil, gzipMore, gzipCompress},
		{"json, known length, end with no body", 200, [][2]string{{"Content-Type", "application/json"}, {"Content-Length", "2400"}}, nil, gzipEnd, gzipPlain},
		{"json, short known length", 200, [][2]string{{"Content-Type", "application/json"}, {"Content-Length", "1023"}}, text[:1023], gzipEnd, gzipPlain},
		{"json, length at the minimum", 200, [][2]string{{"Content-Type", "application/json"}, {"Content-Length", "1024"}}, text[:10], gzipMore, gzipCompress},
		{"unknown length, short so far", 200, [][2]string{{"Content-Type", "text/css"}}, text[:1000], gzipMore, gzipWait},
		{"unknown length, short at the end", 200, [][2]string{{"Content-Type", "text/css"}}, text[:1000], gzipEnd, gzipPlain},
		{"unknown length, short at a flush", 200, [][2]string{{"Content-Type", "text/css"}}, text[:10], gzipFlush, gzipCompress},
		{"unknown length, nothing at a flush", 200, [][2]string{{"Content-Type", "text/css"}}, nil, gzipFlush, gzipWait},
		{"unknown length, long enough", 200, [][2]string{{"Content-Type", "text/css"}}, text[:1024], gzipMore, gzipCompress},
		{"charset", 200, [][2]string{{"Content-Type", "text/plain; charset=utf-8"}}, text, gzipEnd, gzipCompress},
		{"quoted charset", 200, [][2]string{{"Content-Type", `text/plain;charset="utf-8"`}}, text, gzipEnd, gzipCompress},
		{"upper case type", 200, [][2]string{{"content-type", "Application/JSON"}}, text, gzipEnd, gzipCompress},
		{"malformed parameter", 200, [][2]string{{"Content-Type", "text/plain; charset"}}, text, gzipEnd, gzipPlain},
		{"excluded type", 200, [][2]string{{"Content-Type", "text/html"}}, text, gzipEnd, gzipPlain},
		{"excluded type decides early", 200, [][2]string{{"Content-Type", "image/png"}}, nil, gzipMore, gzipPlain},
		{"no type, sniffed text", 200, nil, text, gzipEnd, gzipCompress},
		{"no type, sniffed html", 200, nil, []byte("<html>" + string(text)), gzipEnd, gzipPlain},
		{"no type, nothing to sniff", 200, [][2]string{{"Content-Length", "5000"}}, nil, gzipMore, gzipWait},
		{"encoded", 200, [][2]string{{"Content-Type", "text/plain"}, {"Content-Encoding", "br"}}, text, gzipEnd, gzipPlain},
		{"encoded identity", 200, [][2]string{{"Content-Type", "text/plain"}, {"Content-Encoding", "identity"}}, text, gzipEnd, gzipPlain},
		{"range", 206, [][2]string{{"Content-Type", "text/plain"}, {"Content-Range", "bytes 0-2399/9000"}}, text, gzipEnd, gzipPlain},
		{"no-transform", 200, [][2]string{{"Content-Type", "text/plain"}, {"Cache-Control", `private="x,y", No-Transform`}}, text, gzipEnd, gzipPlain},
		{"no-transform quoted is not one", 200, [][2]string{{"Content-Type", "text/plain"}, {"Cache-Control", `private="no-transform"`}}, text, gzipEnd, gzipCompress},
		{"204", 204, [][2]string{{"Content-Type", "text/plain"}}, nil, gzipMore, gzipPlain},
		{"304", 304, [][2]string{{"Content-Type", "text/plain"}, {"Content-Length", "5000"}}, nil, gzipMore, gzipPlain},
		{"404 text", 404, [][2]string{{"Content-Type", "text/plain"}}, text, gzipEnd, gzipCompress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := gzipHead{status: tt.status, length: -1}
			for _, l := range tt.lines {
				h.line(l[0], l[1])
			}
			if got := gzipCLB.decide(&h, tt.body, tt.stage); got != tt.want {
				t.Errorf("decide(%d %q, %d bytes, stage %d) = %d, want %d", tt.status, tt.lines, len(tt.body), tt.stage, got, tt.want)
			}
		})
	}
}

// TestGzipEditRawAndHeader checks that the two renderings of an edit,
// over raw header lines and over an http.Header, give the same fields.
func TestGzipEditRawAndHeader(t *testing.T) {
	lines := [][2]string{
		{"Content-Type", "text/plain"}, {"content-length", "2400"}, {"Accept-Ranges", "bytes"},
		{"ETag", `"x"`}, {"Vary", "Origin"}, {"Content-Encoding", ""}, {"X-Keep", "1"},
	}
	for _, e := range []gzipEdit{{}, {compress: true}, {vary: true}, {compress: true, vary: true}} {
		var raw []byte
		hdr := http.Header{}
		for _, l := range lines {
			hdr.Add(l[0], l[1])
			if !e.drops(l[0]) {
				raw = fmt.Appendf(raw, "%s: %s\r\n", l[0], l[1])
			}
		}
		raw = e.appendLines(raw)
		e.apply(hdr)
		var want bytes.Buffer
		hdr.Write(&want)
		got, err := http.ReadResponse(bufioReader("HTTP/1.1 200 OK\r\n"+string(raw)+"\r\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		delete(got.Header, "Content-Length") // ReadResponse keeps its own
		if l := hdr["Content-Length"]; l != nil {
			got.Header["Content-Length"] = l
		}
		var gotb bytes.Buffer
		got.Header.Write(&gotb)
		if gotb.String() != want.String() {
			t.Errorf("edit %+v: raw gives\n%s\nheader gives\n%s", e, gotb.String(), want.String())
		}
	}
}

func TestGzipAppend(t *testing.T) {
	for _, n := range []int{0, 1, 1024, 16 << 10, 200 << 10} {
		body := testBody(n)
		out := gzipAppend([]byte("prefix"), body)
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("gzipAppend(%d bytes) lost the prefix", n)
		}
		if got := gunzip(t, out[len("prefix"):]); !bytes.Equal(got, body) {
			t.Errorf("gunzip(gzipAppend(%d bytes)) = %d bytes, want the input", n, len(got))
		}
	}
}

func TestGzipChunked(t *testing.T) {
	for _, n := range []int{0, 1, 1024, 16 << 10, 200 << 10} {
		for _, flushEvery := range []int{0, 1000} {
			body := testBody(n)
			var out bytes.Buffer
			g := newGzipChunked(&out)
			for i := 0; i < len(body); i += 4096 {
				g.Write(body[i:min(i+4096, len(body))])
				if flushEvery > 0 && i%flushEvery == 0 {
					if err := g.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(out.Bytes(), []byte("\r\n0\r\n\r\n")) {
				t.Fatalf("%d bytes: chunked body ends %q", n, out.Bytes()[max(0, out.Len()-10):])
			}
			coded, err := io.ReadAll(httputil.NewChunkedReader(&out))
			if err != nil {
				t.Fatalf("%d bytes, flush %d: chunked reader: %v", n, flushEvery, err)
			}
			if got := gunzip(t, coded); !bytes.Equal(got, body) {
				t.Errorf("%d bytes, flush %d: decoded %d bytes, want the input", n, flushEvery, len(got))
			}
		}
	}
}

// testBody is n bytes of JSON-like text with some randomness, so that
// long bodies code to more than one chunk.
func testBody(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%x","ok":true},`, b.Len(), r.Uint64())
	}
	return b.Bytes()[:n]
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// parityCase is one response, served once behind gzhttp with the options
// the proxy used and once behind gzipCLB.handler.
type parityCase struct {
	name    string
	method  string
	ae      []string          // Accept-Encoding field values
	req     map[string]string // other request fields
	serve   func(http.ResponseWriter, *http.Request)
	differs string // a deliberate difference: why; "" when none
	// With differs: what ours must send as Content-Encoding and Vary.
	wantEncoding string
	wantVary     []string
}

// send writes body with the given header fields (a nil value sets the
// key with no value, as the proxy does for a response without type).
func send(status int, body string, fields ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(fields); i += 2 {
			if fields[i+1] == "<nil>" {
				w.Header()[fields[i]] = nil
				continue
			}
			w.Header().Add(fields[i], fields[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func parityCases() []parityCase {
	long := string(testBody(5000))
	short := long[:500]
	n := func(s string) string { return fmt.Sprint(len(s)) }
	var cases []parityCase
	for _, typ := range gzipTypes {
		cases = append(cases, parityCase{name: typ, serve: send(200, long, "Content-Type", typ)})
	}
	return append(cases, []parityCase{
		{name: "type with charset", serve: send(200, long, "Content-Type", "application/json; charset=utf-8")},
		{name: "type upper case", serve: send(200, long, "Content-Type", "Text/CSS")},
		{name: "type with two parameters", serve: send(200, long, "Content-Type", "text/plain; charset=utf-8; format=flowed")},
		{name: "type with a duplicate parameter", serve: send(200, long, "Content-Type", "text/plain; a=1; a=2")},
		{name: "type with a malformed parameter", serve: send(200, long, "Content-Type", "text/plain; charset")},
		{name: "excluded type", serve: send(200, long, "Content-Type", "text/html")},
		{name: "excluded image", serve: send(200, long, "Content-Type", "image/png")},
		{name: "no type, sniffed text", serve: send(200, long)},
		{name: "no type, sniffed html", serve: send(200, "<html>"+long)},
		{name: "no type, as the proxy passes it", serve: send(200, long, "Content-Type", "<nil>")},
		{name: "known length below 1024", serve: send(200, short, "Content-Type", "text/plain", "Content-Length", n(short))},
		{name: "known length at 1024", serve: send(200, long[:1024], "Content-Type", "text/plain", "Content-Length", "1024")},
		{name: "known length above 1024", serve: send(200, long, "Content-Type", "text/plain", "Content-Length", n(long))},
		{name: "unknown length below 1024", serve: send(200, short, "Content-Type", "text/plain")},
		{name: "unknown length above 1024", serve: send(200, long, "Content-Type", "text/plain")},
		{name: "unknown length, many writes", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < len(long); i += 100 {
				io.WriteString(w, long[i:min(i+100, len(long))])
			}
		}},
		{name: "already encoded", serve: send(200, long, "Content-Type", "text/plain", "Content-Encoding", "br")},
		{name: "already encoded identity", serve: send(200, long, "Content-Type", "text/plain", "Content-Encoding", "identity")},
		{name: "HEAD", method: "HEAD", serve: send(200, "", "Content-Type", "text/plain", "Content-Length", n(long))},
		{name: "204", serve: send(204, "", "Content-Type", "text/plain")},
		{name: "304", serve: send(304, "", "Content-Type", "text/plain", "ETag", `"v1"`)},
		{name: "404 with text", serve: send(404, long, "Content-Type", "text/plain")},
		{name: "range answered with a part", req: map[string]string{"Range": "bytes=0-1999"},
			serve: send(206, long[:2000], "Content-Type", "text/plain", "Content-Range", "bytes 0-1999/5000")},
		{name: "range answered whole", req: map[string]string{"Range": "bytes=0-1999"},
			serve: send(200, long, "Content-Type", "text/plain", "Accept-Ranges", "bytes")},
		{name: "accept-ranges on a short body", serve: send(200, short, "Content-Type", "text/plain", "Accept-Ranges", "bytes")},
		{name: "strong ETag", serve: send(200, long, "Content-Type", "text/plain", "ETag", `"abc"`)},
		{name: "weak ETag", serve: send(200, long, "Content-Type", "text/plain", "ETag", `W/"abc"`)},
		{name: "Vary existing", serve: send(200, long, "Content-Type", "text/plain", "Vary", "Origin")},
		{name: "Vary existing, not compressed", serve: send(200, long, "Content-Type", "image/png", "Vary", "Origin, Cookie")},
		{name: "client without Accept-Encoding", ae: []string{}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "q=0", ae: []string{"gzip;q=0"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "q=0.5", ae: []string{"br;q=1, gzip;q=0.5"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "q malformed", ae: []string{"gzip;q=x"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "q with exponent", ae: []string{"gzip;q=5e-1"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "star", ae: []string{"*"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "identity", ae: []string{"identity"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "upper case gzip", ae: []string{"GZIP"}, serve: send(200, long, "Content-Type", "text/plain")},
		{name: "flush before 1024 bytes", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, short[:100])
			w.(http.Flusher).Flush()
			io.WriteString(w, long)
		}},
		{name: "flush of a short excluded body", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "data: 2\n\n")
		}},
		{name: "flush before any byte", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			http.NewResponseController(w).Flush()
			io.WriteString(w, long)
		}},
		{name: "informational first", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, long)
		}},
		{name: "trailer", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, long)
			w.Header().Set("X-Sum", "42")
		}},

		// Deliberate differences.
		{name: "no-transform", serve: send(200, long, "Content-Type", "text/plain", "Cache-Control", "no-transform"),
			differs:  "a proxy must not transform such a response (RFC 9110 §7.7); gzhttp compresses it",
			wantVary: []string{"Accept-Encoding"}},
		{name: "Accept-Encoding in two fields", ae: []string{"br", "gzip"}, serve: send(200, long, "Content-Type", "text/plain"),
			differs:      "fields are one comma list (RFC 9110 §5.3); gzhttp reads the first only",
			wantEncoding: "gzip", wantVary: []string{"Accept-Encoding"}},
		{name: "Vary already lists Accept-Encoding", serve: send(200, long, "Content-Type", "text/plain", "Vary", "accept-encoding"),
			differs:      "gzhttp adds Accept-Encoding a second time",
			wantEncoding: "gzip", wantVary: []string{"accept-encoding"}},
		{name: "Vary *", serve: send(200, long, "Content-Type", "text/plain", "Vary", "*"),
			differs:      "Vary: * already varies on everything; gzhttp adds Accept-Encoding",
			wantEncoding: "gzip", wantVary: []string{"*"}},
	}...)
}

// TestGzipParity serves each case through gzhttp with the options the
// proxy used and through gzipCLB.handler, on loopback servers, and
// compares what a client sees: status, the fields below, and the
// decoded body. Deliberate differences are listed as cases with differs.
func TestGzipParity(t *testing.T) {
	leakcheck.Check(t)
	cases := parityCases()
	mux := func(wrap func(http.Handler) http.Handler) *httptest.Server {
		return httptest.NewServer(wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var i int
			fmt.Sscan(r.URL.Query().Get("c"), &i)
			cases[i].serve(w, r)
		})))
	}
	gz, err := gzhttp.NewWrapper(gzhttp.ContentTypes(gzipTypes), gzhttp.EnableZstd(false), gzhttp.MinSize(1024), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	oracle := mux(func(h http.Handler) http.Handler { return gz(h) })
	defer oracle.Close()
	ours := mux(gzipCLB.handler)
	defer ours.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			get := func(base string) (*http.Response, []byte) {
				t.Helper()
				method := c.method
				if method == "" {
					method = "GET"
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/?c=%d", base, i), nil)
				req.Header["Accept-Encoding"] = c.ae
				if c.ae == nil {
					req.Header["Accept-Encoding"] = []string{"gzip, deflate, br"}
				}
				for k, v := range c.req {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Header.Get("Content-Encoding") == "gzip" {
					body = gunzip(t, body)
				}
				return resp, body
			}
			want, wantBody := get(oracle.URL)
			got, gotBody := get(ours.URL)
			if got.StatusCode != want.StatusCode {
				t.Errorf("status = %d, gzhttp %d", got.StatusCode, want.StatusCode)
			}
			if !bytes.Equal(gotBody, wantBody) {
				t.Errorf("decoded body = %d bytes, gzhttp %d", len(gotBody), len(wantBody))
			}
			if !slices.Equal(got.Trailer["X-Sum"], want.Trailer["X-Sum"]) {
				t.Errorf("trailer X-Sum = %q, gzhttp %q", got.Trailer["X-Sum"], want.Trailer["X-Sum"])
			}
			if v := varyTokens(got.Header["Vary"]); len(v) != len(slices.Compact(slices.Clone(v))) {
				t.Errorf("Vary = %q: a field twice", v)
			}
			if c.differs != "" {
				ce, vary := got.Header.Get("Content-Encoding"), varyTokens(got.Header["Vary"])
				if ce != c.wantEncoding || !slices.Equal(vary, varyTokens(c.wantVary)) {
					t.Errorf("Content-Encoding %q, Vary %q; want %q, %q (%s)", ce, vary, c.wantEncoding, c.wantVary, c.differs)
				}
				if ce == want.Header.Get("Content-Encoding") && slices.Equal(vary, varyTokens(want.Header["Vary"])) {
					t.Errorf("gzhttp answers the same: the listed difference %q is gone", c.differs)
				}
				return
			}
			for _, k := range []string{"Content-Encoding", "Etag", "Content-Length", "Accept-Ranges", "Content-Type"} {
				if g, w := got.Header[k], want.Header[k]; !slices.Equal(g, w) {
					t.Errorf("%s = %q, gzhttp %q", k, g, w)
				}
			}
			if g, w := varyTokens(got.Header["Vary"]), varyTokens(want.Header["Vary"]); !slices.Equal(g, w) {
				t.Errorf("Vary = %q, gzhttp %q", g, w)
			}
		})
	}
}

// varyTokens is a Vary field's tokens, lower case and sorted: where
// gzhttp adds Accept-Encoding before the handler's fields, ours comes
// after them, which means the same.
func varyTokens(vv []string) []string {
	var out []string
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(f)))
		}
	}
	slices.Sort(out)
	return out
}

// FuzzGzipAccept compares gzipAccept with gzhttp on one field value:
// gzhttp is the oracle. Values with bytes beyond ASCII are skipped:
// gzhttp lowers Unicode ("gzİp" is gzip to it), ours reads tokens as
// RFC 9110 spells them, in ASCII.
func FuzzGzipAccept(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", "*", "gzip;q=1e-3", "gzip;q=-0", "gzip;q=NaN",
		"gzip;q=inf", "gzip;q=0x1p-2", "gzip;q=.5", "gzip;q=5.", "gzip;q=0.", "gzip;Q=0", "gzip ; q=0 ; q=1", "\tgzip\v", "gzip;q=1_0"} {
		f.Add(s)
	}
	gz, err := gzhttp.NewWrapper(gzhttp.ContentTypes(gzipTypes), gzhttp.EnableZstd(false), gzhttp.MinSize(1))
	if err != nil {
		f.Fatal(err)
	}
	h := gz(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	}))
	f.Fuzz(func(t *testing.T, v string) {
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				t.Skip()
			}
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", v)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want := w.Header().Get("Content-Encoding") == "gzip"
		var a gzipAccept
		a.add(v)
		if got := a.accepts("GET"); got != want {
			t.Errorf("accepts(%q) = %v, gzhttp %v", v, got, want)
		}
	})
}

// FuzzGzipCompressible compares the policy's type match with
// mime.ParseMediaType's reading, which gzhttp used.
func FuzzGzipCompressible(f *testing.F) {
	for _, s := range []string{"text/plain", "text/plain; charset=utf-8", "TEXT/Plain;charset=\"a\\\"b\"", "text/plain;", "text/plain; ;",
		"text/plain; a=1; a=1", "text/plain; a=1; a=2", "text/plain; charset", "text/plain; charset=", `text/plain; charset=""`,
		"text/plain;\u00a0charset=x", "application/json ; x*=utf-8''a", "text/plain/x", " text/xml ", "text/plain; c=\"a\r\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		mt, _, err := mime.ParseMediaType(ct)
		want := err == nil && slices.Contains(gzipTypes, mt)
		if got := gzipCLB.compressible(ct); got != want {
			t.Errorf("compressible(%q) = %v, mime says %v (%q, %v)", ct, got, want, mt, err)
		}
	})
}
