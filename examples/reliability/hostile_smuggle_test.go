package reliability_test

import (
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/listener"
	"github.com/stretchr/testify/assert"
)

// smuggleCase is a hostile request written raw, with a second request
// in the same bytes behind it.
type smuggleCase struct {
	name string
	raw  string // the hostile request, "/hostile"
	want int    // the listener's answer
}

const (
	post    = "POST /hostile HTTP/1.1\r\nHost: x\r\n"
	chunked = post + "Transfer-Encoding: chunked\r\n\r\n"
)

// Requests that frame their body ambiguously or break HTTP/1.1 syntax are
// refused and the connection closed: the backend sees neither them nor
// the request smuggled behind them.
func TestHTTPSmuggling(t *testing.T) {
	checkSmuggling(t, []smuggleCase{
		{"two content-lengths", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"content-length list", post + "Content-Length: 5, 6\r\n\r\nhello!", 400},
		{"content-length list of equals", post + "Content-Length: 5, 5\r\n\r\nhello", 400},
		{"signed content-length", post + "Content-Length: +5\r\n\r\nhello", 400},
		{"obs-fold on the first field", "GET /hostile HTTP/1.1\r\n Host: x\r\n\r\n", 400},
		{"space before the colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		// RFC 9112 §6.1: a transfer coding the server does not know is
		// answered 501.
		{"chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501},
		{"identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501},
		{"xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"transfer-encoding twice", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"CR-only line ends", "GET /hostile HTTP/1.1\rHost: x\r\r", 400},
		{"bare CR in a value", "GET /hostile HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400},
		{"NUL in a value", "GET /hostile HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"two spaces in the request line", "GET  /hostile HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"space in the target", "GET /hos tile HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no version", "GET /hostile\r\nHost: x\r\n\r\n", 400},
		{"bad version", "GET /hostile HTTP/1.1x\r\nHost: x\r\n\r\n", 400},
		{"target without a slash", "GET hostile HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"two hosts", "GET /hostile HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
		{"no host", "GET /hostile HTTP/1.1\r\n\r\n", 400},
		// net/http accepts these; lbkit's request guard and handler
		// refuse them.
		{"content-length and transfer-encoding", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"transfer-encoding and content-length", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"duplicate content-length", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"obs-fold", "GET /hostile HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400},
		{"obs-fold with a tab", "GET /hostile HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n", 400},
		{"obs-fold transfer-encoding", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"absolute-form without a host", "GET http:///hostile HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"asterisk-form GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"HTTP/2 preface on HTTP/1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
		// Bodies are read (up to 64 KiB) before a backend is chosen, so
		// a malformed one never reaches a backend either.
		{"chunk size not hex", chunked + "zz\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk size 0x", chunked + "0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk size overflow", chunked + "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400},
		{"negative chunk size", chunked + "-1\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk longer than its size", chunked + "3\r\nhello\r\n0\r\n\r\n", 400},
		{"LF-only chunk lines", chunked + "5\nhello\n0\n\n", 400},
	})
}

// checkSmuggling runs cases, each on a listener and backend of its own.
func checkSmuggling(t *testing.T, cases []smuggleCase) {
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBackend(t, "b")
			l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, b)})
			status, closed := rawRequest(t, addr(l), tc.raw+smuggled)
			seen := b.seen()
			assert.Equal(t, tc.want, status, "status")
			assert.True(t, closed, "connection closed after the refusal")
			assert.Empty(t, seen, "paths the backend saw")
			reliability.Record(t, fmt.Sprintf("raw %q then a second request on one connection", tc.raw),
				"status %d, connection closed %v, backend saw %d requests %q", status, closed, len(seen), seen)
		})
	}
}
