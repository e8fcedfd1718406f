package httpproxy

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// This file is the proxy's one set of gzip rules, written once on strings
// so that both lanes apply them: the general lane through
// gzipResponseWriter over an http.Header, the fast lane by feeding the
// header lines it parsed (views into its buffers) to gzipAccept and
// gzipHead and copying its response head through a gzipEdit. The rules
// are those of github.com/klauspost/compress/gzhttp with the options the
// proxy used (the nine types, 1024 bytes, no zstd), so that replacing it
// changes nothing a client sees, except where a comment says otherwise.

// gzipTypes are the only media types compressed (docs/model.md §8),
// lower case and without parameters, so that any parameters match.
var gzipTypes = []string{
	"text/xml", "text/plain", "text/css", "application/javascript",
	"application/x-javascript", "application/rss+xml", "application/atom+xml",
	"application/xml", "application/json",
}

// gzipPolicy is which responses are gzip-compressed: those of its media
// types, of at least minSize bytes. It is built once (gzipCLB) and read by
// every request of both lanes; its methods allocate nothing on the
// headers real clients and backends send.
//
// The zero value compresses nothing. A gzipPolicy is safe for concurrent
// use and must not be modified once in use.
type gzipPolicy struct {
	types   []string // media types, lower case, without parameters
	minSize int      // bytes below which a body is sent as it is
}

// gzipCLB is the CLB's policy: its nine types from 1 KiB, as gzhttp's
// default minimum (a smaller body fits one packet compressed or not).
var gzipCLB = &gzipPolicy{types: gzipTypes, minSize: 1024}

// gzipAccept reads a request's Accept-Encoding field values, in order,
// as the one comma list they are (RFC 9110 §5.3): the first entry naming
// gzip decides, accepting it if its q-value is above zero. A "*" entry
// does not select gzip, nor does "x-gzip": gzhttp's default, because
// clients sending "*" often expect raw bytes.
//
// The zero value has seen no field and accepts nothing. Call add for each
// field value, then accepts. It keeps none of the strings it is given.
type gzipAccept struct {
	found  bool // an entry named gzip
	accept bool // and its q-value is above zero
}

// add reads one Accept-Encoding field value.
func (a *gzipAccept) add(v string) {
	for !a.found && v != "" {
		var entry string
		entry, v, _ = strings.Cut(v, ",")
		coding, params, _ := strings.Cut(entry, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		a.found, a.accept = true, true
		for params != "" {
			var p string
			p, params, _ = strings.Cut(params, ";")
			if p = strings.TrimSpace(p); len(p) >= 2 && strings.EqualFold(p[:2], "q=") {
				a.accept = qPositive(p[2:]) // the last q wins, as in gzhttp
			}
		}
	}
}

// accepts reports whether a request of this method with the fields added
// may get a gzip-coded response. A HEAD never does, as in gzhttp (nginx
// answered HEAD with a gzip header over an empty body: golang.org/issue/5522).
func (a *gzipAccept) accepts(method string) bool {
	return a.accept && method != http.MethodHead
}

// acceptsGzip is gzipAccept over a request's header.
func acceptsGzip(r *http.Request) bool {
	var a gzipAccept
	for _, v := range r.Header["Accept-Encoding"] {
		a.add(v)
	}
	return a.accepts(r.Method)
}

// qPositive reports whether the q-value q is above zero, reading it as
// gzhttp does (strconv.ParseFloat, a malformed value being 0) but
// without allocating on the digits and dot real clients send.
func qPositive(q string) bool {
	digits, dots, nonzero := 0, 0, false
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '.':
			dots++
		case '0' <= c && c <= '9':
			digits++
			nonzero = nonzero || c != '0'
		default:
			dots = 2 // not plain decimal
		}
	}
	if digits > 0 && dots <= 1 {
		return nonzero
	}
	if q == "" {
		return false
	}
	f, _ := strconv.ParseFloat(q, 64) // exponents, signs, "inf", garbage: rare
	return f > 0                      // NaN is not
}

// gzipVerdict is what the rules say of a response body.
type gzipVerdict uint8

const (
	gzipWait     gzipVerdict = iota // undecided until more body bytes (or its end) are seen
	gzipPlain                       // send the body as it is
	gzipCompress                    // send it gzip-coded
)

// gzipStage is how much of the body the caller has seen when it asks.
type gzipStage uint8

const (
	gzipMore  gzipStage = iota // more body may follow
	gzipFlush                  // the caller flushes now: decide with what there is
	gzipEnd                    // the body is complete
)

// gzipHead is what the rules read of a response head. Fill it with
// headOf (an http.Header) or by calling line for each header line (the
// fast lane); status and length are the caller's.
//
// The zero value is a 0-status response of known length 0: set status
// and length (-1 when unknown) first. It keeps the Content-Type string it
// is given until decide returns, nothing after.
type gzipHead struct {
	status      int
	length      int64  // Content-Length, -1 when unknown
	contentType string // the first non-empty Content-Type value
	encoded     bool   // a Content-Encoding with a value, identity included
	ranged      bool   // a Content-Range: a part is not the representation
	noTransform bool   // Cache-Control: no-transform (RFC 9110 §7.7)
	varied      bool   // Vary lists Accept-Encoding or "*" already
	sniffed     bool   // decide sniffed contentType from the body
}

// line reads one response header line: name as sent (any case), value
// with its surrounding space trimmed.
func (h *gzipHead) line(name, value string) {
	switch {
	case strings.EqualFold(name, "Content-Type"):
		if h.contentType == "" {
			h.contentType = value
		}
	case strings.EqualFold(name, "Content-Encoding"):
		h.encoded = h.encoded || value != ""
	case strings.EqualFold(name, "Content-Length"):
		if n, ok := parseLength(value); ok {
			h.length = n
		} else {
			h.length = -1
		}
	case strings.EqualFold(name, "Content-Range"):
		h.ranged = h.ranged || value != ""
	case strings.EqualFold(name, "Cache-Control"):
		h.noTransform = h.noTransform || hasNoTransform(value)
	case strings.EqualFold(name, "Vary"):
		h.varied = h.varied || varyListsAcceptEncoding(value)
	}
}

// headOf reads the head of a response of this status from its header.
func headOf(status int, hdr http.Header) gzipHead {
	h := gzipHead{status: status, length: -1}
	for _, name := range gzipReadFields {
		for _, v := range hdr[name] {
			h.line(name, v)
		}
	}
	return h
}

// gzipReadFields are the fields gzipHead.line reads, canonical.
var gzipReadFields = [...]string{"Content-Type", "Content-Encoding", "Content-Length", "Content-Range", "Cache-Control", "Vary"}

// hasNoTransform reports whether a Cache-Control value holds the
// no-transform directive. Commas inside quoted arguments do not split.
func hasNoTransform(v string) bool {
	for v != "" {
		end, quoted := 0, false
		for ; end < len(v) && (quoted || v[end] != ','); end++ {
			switch {
			case v[end] == '\\' && quoted:
				end++
			case v[end] == '"':
				quoted = !quoted
			}
		}
		name, _, _ := strings.Cut(v[:min(end, len(v))], "=")
		if strings.EqualFold(strings.TrimSpace(name), "no-transform") {
			return true
		}
		v = v[min(end+1, len(v)):]
	}
	return false
}

// varyListsAcceptEncoding reports whether a Vary value lists
// Accept-Encoding, or "*" (every request field: nothing to add).
func varyListsAcceptEncoding(v string) bool {
	for v != "" {
		var f string
		f, v, _ = strings.Cut(v, ",")
		if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
			return true
		}
	}
	return false
}

// decide applies the rules to a response for a request that accepts gzip
// (gzipAccept): body is its first bytes seen so far, stage says whether
// more may follow. It answers gzipWait only before gzipEnd: when a body
// of unknown length is shorter than minSize so far, when nothing has been
// seen at a flush, or when a response without Content-Type has shown no
// byte to sniff. With a known length and type it answers from the head
// alone (body nil), which the fast lane wants and the general lane only
// acts on once a byte comes, so that an empty body goes plain. A head
// that says plain answers at once where gzhttp held the body first: the
// answer is the same, only sent sooner.
//
// The rules, in gzhttp's terms: a response is sent as it is when its
// status has no body (1xx, 204, 304), when it is already encoded (any
// Content-Encoding value, identity too) or a range (Content-Range), when
// it says Cache-Control: no-transform (which gzhttp ignored), when it is
// shorter than minSize (by Content-Length, or by its complete body), when
// its body is empty, or when its Content-Type, parameters aside and case
// ignored, is not one of the policy's types or does not parse. Without a
// Content-Type, the type is sniffed (http.DetectContentType) from the
// bytes seen, and h.contentType and h.sniffed say so. A flush of a body of
// unknown length decides as if minSize bytes had been seen, as gzhttp's
// Flush does.
func (p *gzipPolicy) decide(h *gzipHead, body []byte, stage gzipStage) gzipVerdict {
	if !bodyAllowed(h.status) || h.encoded || h.ranged || h.noTransform ||
		h.length >= 0 && h.length < int64(p.minSize) ||
		h.contentType != "" && !p.compressible(h.contentType) {
		return gzipPlain
	}
	if len(body) == 0 {
		switch {
		case stage == gzipEnd:
			return gzipPlain
		case stage == gzipMore && h.length >= 0 && h.contentType != "":
			return gzipCompress // length and type known: the bytes change nothing
		}
		return gzipWait // a flush with nothing seen decides nothing, as in gzhttp
	}
	if h.length < 0 && len(body) < p.minSize {
		switch stage {
		case gzipEnd:
			return gzipPlain
		case gzipMore:
			return gzipWait
		}
	}
	if h.contentType == "" {
		h.contentType, h.sniffed = http.DetectContentType(body), true
		if !p.compressible(h.contentType) {
			return gzipPlain
		}
	}
	return gzipCompress
}

// bodyAllowed reports whether a response of this status may have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// compressible reports whether the Content-Type value ct is one of the
// policy's types, as gzhttp's ContentTypes filter does: the media type
// from mime.ParseMediaType, whose error (a malformed parameter included)
// means no. Values of plain ASCII with at most one parameter are read
// here without allocating; others are left to mime.
func (p *gzipPolicy) compressible(ct string) bool {
	for i := 0; i < len(ct); i++ {
		if ct[i] >= 0x80 {
			return p.compressibleMIME(ct) // Unicode case and space rules
		}
	}
	base, _, _ := strings.Cut(ct, ";")
	if !p.listed(strings.TrimSpace(base)) {
		return false
	}
	valid, sure := oneMediaParam(ct[len(base):])
	if !sure {
		return p.compressibleMIME(ct)
	}
	return valid
}

func (p *gzipPolicy) compressibleMIME(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && p.listed(mt)
}

// listed reports whether the media type mt is one of the policy's.
func (p *gzipPolicy) listed(mt string) bool {
	for _, t := range p.types {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

// oneMediaParam reports whether mime.ParseMediaType accepts the
// parameters s of an ASCII media type (s is empty or starts with ';'),
// sure being false when it cannot tell without mime: more than one
// parameter (duplicates are an error) or a backslash in a quoted value.
func oneMediaParam(s string) (valid, sure bool) {
	if s = trimLeftASCII(s); s == "" {
		return true, true
	}
	if s = trimLeftASCII(s[1:]); s == "" {
		return true, true // a trailing ';' is allowed
	}
	key, s := mediaToken(s)
	if key == "" {
		return false, true
	}
	s = trimLeftASCII(s)
	if s == "" || s[0] != '=' {
		return false, true
	}
	s = trimLeftASCII(s[1:])
	if s != "" && s[0] == '"' {
		end := strings.IndexAny(s[1:], "\"\\\r\n")
		if end < 0 || s[1+end] == '\r' || s[1+end] == '\n' {
			return false, true
		}
		if s[1+end] == '\\' {
			return false, false
		}
		s = s[2+end:]
	} else {
		var value string
		if value, s = mediaToken(s); value == "" {
			return false, true
		}
	}
	if trimLeftASCII(s) == "" {
		return true, true
	}
	return false, false
}

// mediaToken splits s after its leading MIME token (RFC 2045).
func mediaToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && s[i] > ' ' && s[i] < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(s[i])) {
		i++
	}
	return s[:i], s[i:]
}

func trimLeftASCII(s string) string {
	return strings.TrimLeft(s, " \t\n\v\f\r")
}

// gzipEdit is how a response head changes on its way to the client: when
// compress, the fields gzipDropped go and Content-Encoding: gzip comes;
// when vary, Vary: Accept-Encoding comes. The general lane applies it to
// an http.Header (apply), the fast lane to the header lines of a raw head
// (drops for each line, then appendLines), both without allocating.
//
// The zero value changes nothing.
type gzipEdit struct {
	compress bool
	vary     bool
}

// edit is the change for a response of head h, compressed or not. Every
// response gets Vary: Accept-Encoding unless its Vary lists it or "*":
// gzhttp added it to every response it saw, compressed or not, since
// another request's Accept-Encoding might be answered differently; unlike
// gzhttp it is not added a second time.
func (h *gzipHead) edit(compress bool) gzipEdit {
	return gzipEdit{compress: compress, vary: !h.varied}
}

// gzipDropped are the fields a compressed response loses: its length
// changes; ranges of the coded body are not served (gzhttp's default);
// an empty Content-Encoding is replaced. ETag stays, as gzhttp keeps it.
var gzipDropped = [...]string{"Content-Length", "Accept-Ranges", "Content-Encoding"}

// drops reports whether the header line named name (any case) is left out.
func (e gzipEdit) drops(name string) bool {
	if !e.compress {
		return false
	}
	for _, d := range gzipDropped {
		if strings.EqualFold(name, d) {
			return true
		}
	}
	return false
}

// gzipLine is a header line the edit adds.
type gzipLine struct{ name, value string }

var (
	lineEncoding = gzipLine{"Content-Encoding", "gzip"}
	lineVary     = gzipLine{"Vary", "Accept-Encoding"}
)

// lines calls f for each line the edit adds, in order.
func (e gzipEdit) lines(f func(gzipLine)) {
	if e.compress {
		f(lineEncoding)
	}
	if e.vary {
		f(lineVary)
	}
}

// appendLines appends the lines the edit adds, each ending in CRLF.
func (e gzipEdit) appendLines(dst []byte) []byte {
	e.lines(func(l gzipLine) {
		dst = append(append(append(append(dst, l.name...), ": "...), l.value...), "\r\n"...)
	})
	return dst
}

// apply makes the edit on an http.Header.
func (e gzipEdit) apply(h http.Header) {
	if e.compress {
		for _, d := range gzipDropped {
			delete(h, d)
		}
	}
	e.lines(func(l gzipLine) { h[l.name] = append(h[l.name], l.value) })
}

// gzipCodec is a pooled gzip writer at level 1 (gzip.BestSpeed), nginx's
// default gzip_comp_level: a proxy compresses on every request, where
// level 1 codes text at about three times the speed of gzhttp's default
// (level 5) for a body some 10% larger. It has what the three ways of
// using it need:
// onto any io.Writer (the general lane), into a buffer (gzipAppend), and
// in HTTP/1.1 chunks (gzipChunked). Take one with getGzip, reset z onto
// the destination, and give it back with putGzip.
type gzipCodec struct {
	z   *gzip.Writer
	out sliceWriter // gzipAppend's destination
	cw  chunkWriter // gzipChunked's framing
}

var gzipCodecs = sync.Pool{New: func() any {
	z, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return &gzipCodec{z: z}
}}

func getGzip() *gzipCodec { return gzipCodecs.Get().(*gzipCodec) }

// putGzip returns c to the pool, keeping no reference to what it wrote to.
func putGzip(c *gzipCodec) {
	c.z.Reset(nil)
	c.out.b = nil
	c.cw.w = nil
	gzipCodecs.Put(c)
}

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// gzipAppend appends the gzip coding of body to dst, allocating nothing
// once pooled codecs are warm and dst has room: for a body the fast lane
// sends in one write with a Content-Length.
func gzipAppend(dst, body []byte) []byte {
	c := getGzip()
	c.out.b = dst
	c.z.Reset(&c.out)
	c.z.Write(body) // a sliceWriter does not fail
	c.z.Close()
	dst = c.out.b
	putGzip(c)
	return dst
}

// gzipChunked is a gzip coding streamed onto w as an HTTP/1.1 chunked
// body (RFC 9112 §7.1), for a body too long to code in one buffer or of
// unknown length: Write codes, Flush sends what is coded so far, Close
// ends the coding and the body in one write and gives the codec back
// (the gzipChunked must not be used after). It allocates nothing once
// pooled codecs are warm.
type gzipChunked struct{ c *gzipCodec }

// newGzipChunked starts a chunked gzip body on w.
func newGzipChunked(w io.Writer) gzipChunked {
	c := getGzip()
	c.cw.reset(w)
	c.z.Reset(&c.cw)
	return gzipChunked{c}
}

func (g gzipChunked) Write(p []byte) (int, error) { return g.c.z.Write(p) }

// Flush sends what has been coded so far as a chunk.
func (g gzipChunked) Flush() error {
	if err := g.c.z.Flush(); err != nil {
		return err
	}
	return g.c.cw.flush(false)
}

// Close ends the body; the codec goes back to the pool even on error.
func (g gzipChunked) Close() error {
	err := g.c.z.Close()
	if err == nil {
		err = g.c.cw.flush(true)
	}
	putGzip(g.c)
	return err
}

// Abort gives the codec back without ending the body: the caller cuts
// the connection, so the client sees the body incomplete rather than a
// clean end.
func (g gzipChunked) Abort() { putGzip(g.c) }

// gzipReader is the gzip coding of src, read as it is coded: each read
// of src is coded and flushed, so a streamed body stays streamed, for
// a writer (http.Response.Write) that frames the body itself. Close
// gives the codec back.
type gzipReader struct {
	src     io.Reader
	c       *gzipCodec
	scratch [4 << 10]byte
	pending []byte // coded, not yet read
	done    bool
}

func newGzipReader(src io.Reader) *gzipReader {
	r := &gzipReader{src: src, c: getGzip()}
	r.c.z.Reset(&r.c.out)
	return r
}

func (r *gzipReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.done {
			return 0, io.EOF
		}
		r.c.out.b = r.c.out.b[:0]
		n, err := r.src.Read(r.scratch[:])
		if n > 0 {
			r.c.z.Write(r.scratch[:n]) // a sliceWriter does not fail
		}
		switch {
		case err == io.EOF:
			r.c.z.Close()
			r.done = true
		case err != nil:
			return 0, err
		case n > 0:
			r.c.z.Flush()
		}
		r.pending = r.c.out.b
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// Close gives the codec back; the reader must not be used after.
func (r *gzipReader) Close() error {
	if r.c != nil {
		putGzip(r.c)
		r.c = nil
	}
	return nil
}

// chunkWriter frames what is written to it as HTTP/1.1 chunks on w, up
// to gzipChunkSize bytes each: the gzip writer emits a few hundred bytes
// at a time, each worth a chunk header otherwise. A chunk goes out, head
// and data in one write, when full and on flush.
type chunkWriter struct {
	w   io.Writer
	buf []byte // chunkHead bytes of room for the size line, then the data
}

const (
	gzipChunkSize = 8 << 10
	chunkHead     = 6 // "2000\r\n": gzipChunkSize in hex and CRLF
)

func (c *chunkWriter) reset(w io.Writer) {
	if c.buf == nil {
		c.buf = make([]byte, chunkHead, chunkHead+gzipChunkSize+len("\r\n0\r\n\r\n"))
	}
	c.w, c.buf = w, c.buf[:chunkHead]
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunkHead+gzipChunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(c.buf) == chunkHead+gzipChunkSize {
			if err := c.flush(false); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends the pending data as a chunk, and when last the last chunk
// and the empty trailer section after it.
func (c *chunkWriter) flush(last bool) error {
	start := chunkHead
	if n := len(c.buf) - chunkHead; n > 0 {
		var size [chunkHead]byte
		h := append(strconv.AppendUint(size[:0], uint64(n), 16), '\r', '\n')
		start -= len(h)
		copy(c.buf[start:], h)
		c.buf = append(c.buf, "\r\n"...)
	}
	if last {
		c.buf = append(c.buf, "0\r\n\r\n"...)
	}
	var err error
	if len(c.buf) > chunkHead {
		_, err = c.w.Write(c.buf[start:])
	}
	c.buf = c.buf[:chunkHead]
	return err
}

// gzipResponseWriter is the general lane's http.ResponseWriter: it
// applies the policy to what a handler writes, as gzhttp's wrapper did.
// A body of unknown length is held until minSize bytes (or its end, or a
// flush) decide; a plain answer passes through unheld; 1xx responses pass
// at once; Header is the underlying one, so trailers pass too; Unwrap
// lets http.ResponseController find Hijack and deadlines underneath.
//
// Get one from gzipPolicy.wrap, which most callers want through
// gzipPolicy.handler. It serves one response from one goroutine.
type gzipResponseWriter struct {
	rw      http.ResponseWriter
	p       *gzipPolicy
	accept  bool        // the request accepts gzip
	code    int         // the status written, 0 before WriteHeader
	verdict gzipVerdict // gzipWait until the head is sent
	buf     []byte      // body held while gzipWait
	z       *gzipCodec  // when gzipCompress
}

var gzipWriters = sync.Pool{New: func() any { return new(gzipResponseWriter) }}

// wrap returns the writer a handler serving r writes its response to,
// and the function that ends the response once the handler has returned
// (sending what is held, ending the coding); neither may be used after.
func (p *gzipPolicy) wrap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, func()) {
	g := gzipWriters.Get().(*gzipResponseWriter)
	*g = gzipResponseWriter{rw: w, p: p, accept: acceptsGzip(r), buf: g.buf[:0]}
	return g, g.finish
}

// handler is h with its responses under the policy: the stand-in for
// gzhttp.NewWrapper.
func (p *gzipPolicy) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw, finish := p.wrap(w, r)
		defer finish()
		h.ServeHTTP(gw, r)
	})
}

func (g *gzipResponseWriter) Header() http.Header { return g.rw.Header() }

// Unwrap returns the underlying writer, for http.ResponseController.
func (g *gzipResponseWriter) Unwrap() http.ResponseWriter { return g.rw }

// WriteHeader sends an informational status at once and keeps the final
// one until the body decides, unless the head alone already says plain.
func (g *gzipResponseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		g.rw.WriteHeader(code)
		return
	}
	if g.code != 0 || g.verdict != gzipWait {
		return // superfluous, as gzhttp ignores it
	}
	g.code = code
	g.settle(gzipMore)
}

func (g *gzipResponseWriter) Write(p []byte) (int, error) {
	if g.verdict == gzipWait && len(g.buf) == 0 && len(p) > 0 {
		if err := g.settle(gzipMore); err != nil {
			return 0, err
		}
	}
	switch g.verdict {
	case gzipCompress:
		return g.z.z.Write(p)
	case gzipPlain:
		return g.rw.Write(p)
	}
	// Held: up to minSize bytes, and 512 for sniffing as net/http does.
	k := min(len(p), max(g.p.minSize, 512)-len(g.buf))
	g.buf = append(g.buf, p[:k]...)
	if err := g.settle(gzipMore); err != nil {
		return 0, err
	}
	if g.verdict == gzipWait {
		g.buf = append(g.buf, p[k:]...) // nothing: a full buffer decides
		return len(p), nil
	}
	if k == len(p) {
		return k, nil
	}
	n, err := g.Write(p[k:])
	return k + n, err
}

// Flush decides with what is held, as gzhttp: nothing held, nothing sent.
func (g *gzipResponseWriter) Flush() { _ = g.FlushError() }

// FlushError is Flush with its error, which http.ResponseController prefers.
func (g *gzipResponseWriter) FlushError() error {
	if g.verdict == gzipWait {
		if len(g.buf) == 0 {
			return nil
		}
		if err := g.settle(gzipFlush); err != nil {
			return err
		}
	}
	if g.z != nil {
		if err := g.z.z.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(g.rw).Flush()
}

// finish ends the response and returns g to the pool.
func (g *gzipResponseWriter) finish() {
	if g.verdict == gzipWait {
		g.settle(gzipEnd)
	}
	if g.z != nil {
		g.z.z.Close()
		putGzip(g.z)
	}
	*g = gzipResponseWriter{buf: g.buf[:0]}
	gzipWriters.Put(g)
}

// settle applies the rules to the head and what is held; once they
// decide, it edits the head, sends it and what is held.
func (g *gzipResponseWriter) settle(stage gzipStage) error {
	hdr := g.rw.Header()
	status := g.code
	if status == 0 {
		status = http.StatusOK
	}
	h := headOf(status, hdr)
	v := gzipPlain
	if g.accept {
		v = g.p.decide(&h, g.buf, stage)
	}
	if v == gzipWait || v == gzipCompress && len(g.buf) == 0 {
		return nil // compress nothing yet: an empty body is sent plain
	}
	if _, ok := hdr["Content-Type"]; h.sniffed && !ok {
		hdr["Content-Type"] = []string{h.contentType} // as net/http would sniff it
	}
	h.edit(v == gzipCompress).apply(hdr)
	g.verdict = v
	if g.code != 0 {
		g.rw.WriteHeader(g.code)
	}
	var dst io.Writer = g.rw
	if v == gzipCompress {
		g.z = getGzip()
		g.z.z.Reset(g.rw)
		dst = g.z.z
	}
	if len(g.buf) == 0 {
		return nil
	}
	_, err := dst.Write(g.buf)
	g.buf = g.buf[:0]
	return err
}
