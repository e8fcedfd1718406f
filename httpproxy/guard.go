package httpproxy

import (
	"bytes"
	"io"

	"github.com/lbkit/lbkit/internal/netx"
)

// requestGuard stands between an HTTP/1 client connection and net/http's
// server, which reads the connection through it. net/http accepts, as
// RFC 9112 allows, request heads a proxy should refuse because another
// server on the path may frame them differently: a Content-Length beside
// Transfer-Encoding (net/http drops the former and serves what follows),
// Content-Length given twice (net/http keeps one if they agree), and
// obs-fold continuation lines (net/http joins them). The guard follows
// the byte stream — each head line by line, then the body as its framing
// says — and when a head has one of these, it holds the offending line
// back and gives net/http a malformed line instead, which net/http
// answers with 400 Bad Request before closing the connection: the
// request never reaches a backend, nor does anything sent after it.
//
// Where the guard could lose track of the framing (HTTP/1.0, unparsable
// lengths, chunk syntax net/http refuses anyway, upgrades, CONNECT, lines
// beyond its limits), it stops looking and passes the rest through:
// net/http then answers or closes by its own rules. It never alters a
// byte of a body.
type requestGuard struct {
	src   io.Reader
	state guardState
	line  []byte // the head or chunk line being gathered
	out   []byte // checked bytes for net/http
	in    []byte // read buffer
	err   error  // from src, returned once out is drained
	left  int64  // body or chunk bytes to pass

	// The head so far.
	lengths, codings int
	chunked, upgrade bool
	connUpgrade      bool
	length           int64
	lengthOK         bool
}

type guardState uint8

const (
	guardRequestLine guardState = iota
	guardHeader
	guardBody
	guardChunkSize
	guardChunkData
	guardChunkEnd
	guardTrailer
	guardPass    // no longer looking
	guardRefused // told net/http to refuse; nothing more is read
)

// maxGuardLine bounds a line the guard holds; a longer head line is
// beyond any MaxHeaderBytes net/http would accept (and net/http's chunk
// lines are shorter).
const maxGuardLine = 1<<20 + 4<<10

// refusal is the line net/http receives in place of an offending one: it
// has no colon, so net/http refuses the request with 400.
var refusal = []byte("lbkit-refused-request\r\n")

func newRequestGuard(src io.Reader) *requestGuard {
	return &requestGuard{src: src}
}

func (g *requestGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		switch {
		case g.err != nil:
			return 0, g.err
		case g.state == guardRefused:
			return 0, io.EOF
		case g.state == guardPass && len(g.line) == 0:
			return g.src.Read(p)
		}
		if g.in == nil {
			g.in = make([]byte, 4<<10)
		}
		n, err := g.src.Read(g.in)
		g.feed(g.in[:n])
		switch {
		case err == nil:
		case netx.IsTimeout(err):
			// A deadline (net/http's own, or its way of interrupting a
			// read): nothing is lost, net/http may read again.
			if len(g.out) == 0 {
				return 0, err
			}
		default:
			// What is left of a line goes to net/http, which reports
			// the incomplete request itself.
			g.out = append(g.out, g.line...)
			g.line = g.line[:0]
			g.err = err
		}
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	if len(g.out) == 0 {
		g.out = g.out[:0:0]
	}
	return n, nil
}

// feed checks b and moves what it may pass to g.out.
func (g *requestGuard) feed(b []byte) {
	for len(b) > 0 {
		switch g.state {
		case guardBody, guardChunkData:
			n := int(min(int64(len(b)), g.left))
			g.out = append(g.out, b[:n]...)
			b, g.left = b[n:], g.left-int64(n)
			if g.left == 0 {
				if g.state == guardBody {
					g.state = guardRequestLine
				} else {
					g.state = guardChunkEnd
				}
			}
		case guardPass:
			g.out = append(g.out, g.line...)
			g.out = append(g.out, b...)
			g.line = g.line[:0]
			return
		case guardRefused:
			return
		default: // a line at a time
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				g.line = append(g.line, b...)
				if len(g.line) > maxGuardLine {
					g.state = guardPass
				}
				return
			}
			g.line = append(g.line, b[:i+1]...)
			b = b[i+1:]
			line := g.line
			g.line = g.line[:0]
			g.onLine(line)
		}
	}
}

// onLine handles one complete line, its line break included.
func (g *requestGuard) onLine(line []byte) {
	text := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	pass := func() { g.out = append(g.out, line...) }
	switch g.state {
	case guardRequestLine:
		pass()
		if len(text) == 0 {
			return // net/http skips blank lines before a request
		}
		g.lengths, g.codings, g.chunked, g.upgrade, g.connUpgrade, g.lengthOK = 0, 0, false, false, false, false
		g.state = guardHeader
		if !bytes.HasSuffix(text, []byte(" HTTP/1.1")) || bytes.HasPrefix(text, []byte("CONNECT ")) {
			g.state = guardPass
		}
	case guardHeader:
		if len(text) == 0 {
			g.endHead(line)
			return
		}
		if text[0] == ' ' || text[0] == '\t' {
			g.refuse() // obs-fold
			return
		}
		pass()
		name, value, ok := bytes.Cut(text, []byte(":"))
		if !ok {
			return // net/http refuses it
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFold(name, "content-length"):
			g.lengths++
			g.length, g.lengthOK = parseLength(value)
		case equalFold(name, "transfer-encoding"):
			g.codings++
			g.chunked = equalFold(value, "chunked")
		case equalFold(name, "upgrade"):
			g.upgrade = true
		case equalFold(name, "connection"):
			g.connUpgrade = g.connUpgrade || hasToken(string(value), "upgrade")
		}
	case guardChunkSize:
		pass()
		size, _, _ := bytes.Cut(text, []byte(";"))
		n, ok := parseHex(bytes.TrimRight(size, " \t"))
		switch {
		case !ok:
			g.state = guardPass // net/http refuses the body
		case n == 0:
			g.state = guardTrailer
		default:
			g.state, g.left = guardChunkData, n
		}
	case guardChunkEnd:
		pass()
		g.state = guardChunkSize
		if len(text) != 0 {
			g.state = guardPass
		}
	case guardTrailer:
		pass()
		if len(text) == 0 {
			g.state = guardRequestLine
		}
	}
}

// endHead decides on a complete head and the framing of its body.
func (g *requestGuard) endHead(blank []byte) {
	if g.lengths > 1 || g.lengths > 0 && g.codings > 0 {
		g.refuse()
		return
	}
	g.out = append(g.out, blank...)
	switch {
	case g.upgrade && g.connUpgrade:
		g.state = guardPass // the connection may become a tunnel
	case g.codings > 0:
		g.state = guardChunkSize
		if g.codings > 1 || !g.chunked {
			g.state = guardPass // net/http refuses it
		}
	case g.lengths == 1 && !g.lengthOK:
		g.state = guardPass // net/http refuses it
	case g.lengths == 1 && g.length > 0:
		g.state, g.left = guardBody, g.length
	default:
		g.state = guardRequestLine
	}
}

func (g *requestGuard) refuse() {
	g.out = append(g.out, refusal...)
	g.state = guardRefused
}

// parseHex parses a chunk size: 1 to 16 hex digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
