package httpproxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// guarded returns what net/http would read of in through a guard, fed
// whole and a byte at a time (both must agree).
func guarded(t *testing.T, in string) string {
	t.Helper()
	whole, err := io.ReadAll(newRequestGuard(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	bytewise, err := io.ReadAll(newRequestGuard(iotest.OneByteReader(strings.NewReader(in))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole, bytewise) {
		t.Fatalf("guard output depends on read sizes:\n%q\n%q", whole, bytewise)
	}
	return string(whole)
}

func TestRequestGuard(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n"
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	refused := string(refusal)
	tests := []struct {
		name, in, want string // want "" means in, unchanged
	}{
		{"pipelined", get + "\r\n" + get + "X: 1\r\n\r\n", ""},
		{"blank line first", "\r\n" + get + "\r\n", ""},
		{"LF only", "GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\nHost: a\n\n", ""},
		{"body is not looked at", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n" +
			" folded\r\nContent-Length: 1\r\n\r\n" + get + "\r\n", ""},
		{"chunked body and trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"a;ext=1\r\n folded\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n" + get + "\r\n", ""},
		{"obs-fold", get + "X: 1\r\n 2\r\n\r\n" + smuggled, get + "X: 1\r\n" + refused},
		{"obs-fold with a tab", get + "X: 1\r\n\t2\r\n\r\n", get + "X: 1\r\n" + refused},
		{"CL and TE", get + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			get + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n" + refused},
		{"TE and CL", get + "Transfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n",
			get + "Transfer-Encoding: chunked\r\ncontent-length: 5\r\n" + refused},
		{"CL twice", get + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
			get + "Content-Length: 5\r\nContent-Length: 5\r\n" + refused},
		{"second request refused", get + "\r\n" + get + "X: 1\r\n 2\r\n\r\n", get + "\r\n" + get + "X: 1\r\n" + refused},
		{"after a chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get + "X:\r\n 2\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get + "X:\r\n" + refused},
		{"HTTP/1.0 is net/http's", "GET / HTTP/1.0\r\nX: 1\r\n 2\r\n\r\n", ""},
		{"upgrade", get + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05 fold\r\n", ""},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + get + " fold\r\n\r\n", ""},
		{"other coding", get + "Transfer-Encoding: gzip\r\n\r\n" + get + " fold\r\n\r\n", ""},
		{"bad length", get + "Content-Length: +5\r\n\r\n" + get + " fold\r\n\r\n", ""},
		{"incomplete", get + "X-Partial", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if got := guarded(t, tt.in); got != want {
				t.Errorf("guard passed\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// FuzzRequestGuard checks that the guard passes any stream through
// unchanged or up to a line break followed by the refusal, whatever the
// read sizes.
func FuzzRequestGuard(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nX: 1\r\n 2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := guarded(t, string(in))
		if out == string(in) {
			return
		}
		k := len(out) - len(refusal)
		if k < 0 || out[k:] != string(refusal) || out[:k] != string(in[:k]) || k > 0 && out[k-1] != '\n' {
			t.Fatalf("guard turned\n%q\ninto\n%q", in, out)
		}
	})
}

// FuzzRequestGuardWellFormed writes requests with net/http's own writer
// (bodies framed by Content-Length or chunked, any header values) and
// checks that the guard passes them through untouched.
func FuzzRequestGuardWellFormed(f *testing.F) {
	f.Add("/a", "X-A", "1", []byte("hello"), true, uint8(3))
	f.Add("/", "Content-Type", "text/plain", []byte("Transfer-Encoding: chunked\r\n\r\n"), false, uint8(1))
	f.Fuzz(func(t *testing.T, path, key, value string, body []byte, chunked bool, n uint8) {
		var stream bytes.Buffer
		for i := range int(n%4) + 1 {
			r, err := http.NewRequest(http.MethodPost, "http://a"+path, bytes.NewReader(body))
			if err != nil {
				return
			}
			r.Header.Set(key, value)
			if chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(bytes.NewReader(body)) // unknown length: chunked
			}
			if i%2 == 1 {
				r.Method, r.Body, r.ContentLength = http.MethodGet, nil, 0
			}
			if err := r.Write(&stream); err != nil {
				return // net/http would not send it
			}
		}
		if got := guarded(t, stream.String()); got != stream.String() {
			t.Fatalf("guard changed a well-formed stream\n%q\ninto\n%q", stream.String(), got)
		}
	})
}
