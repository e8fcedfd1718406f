package listener

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// Header values shared by every request and response; never modified.
var (
	emptyValue   = []string{""}
	upgradeValue = []string{"Upgrade"}
	closeValue   = []string{"close"}
)

// Headers the listener sets, in the spelling the CLB documents; the
// canonical forms are what a client may have sent.
const (
	hdrSLBID   = "SLB-ID"
	hdrSLBIP   = "SLB-IP"
	hdrSrcPort = "X-Forwarded-Client-srcport"
)

// Client-certificate headers under mutual TLS.
const (
	hdrCertSubject     = "X-Client-Cert-Subject-Dn"
	hdrCertIssuer      = "X-Client-Cert-Issuer-Dn"
	hdrCertFingerprint = "X-Client-Cert-Fingerprint"
	hdrCertVerify      = "X-Client-Cert-Verify"
)

// ServeHTTP is the listener's front door: the ACL, the keep-alive limit
// and the counters, then the middleware and the proxy.
func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	l := s.l
	hc := connOf(r)
	if r.TLS == nil {
		r.TLS = hc.tls // net/http sees HTTPS connections after the handshake, as plain ones
	}
	if hc.lastRequest(&s.o, r.ProtoMajor) {
		// Before any answer, refusals included: every request counts.
		w.Header()["Connection"] = closeValue
	}
	if !l.acl.allow(hc.src.Addr()) {
		l.c.refusedACL.Add(1)
		s.fail(w, r, http.StatusForbidden, "403 Forbidden: client address refused by the access control list\n")
		return
	}
	if r.Method == "PRI" || r.ProtoMajor == 1 && (r.RequestURI == "*" && r.Method != http.MethodOptions ||
		r.URL.IsAbs() && r.URL.Host == "") {
		// The HTTP/2 preface on an HTTP/1 connection, an asterisk
		// target other than OPTIONS', or an absolute target without a
		// host: nothing a backend should see (RFC 9112 §3.2), and
		// nothing after it on the connection is trusted.
		w.Header()["Connection"] = closeValue
		s.fail(w, r, http.StatusBadRequest, "400 Bad Request: malformed request target\n")
		return
	}
	if len(r.RequestURI) > s.o.MaxURIBytes {
		s.fail(w, r, http.StatusRequestURITooLong, "414 URI Too Long\n")
		return
	}
	if s.o.Middleware != nil {
		// The middleware may answer by itself: learn the status.
		sw := &statusWriter{ResponseWriter: w}
		s.chain.ServeHTTP(sw, r)
		if sw.status != 0 && !sw.counted {
			s.countStatus(sw.status)
		}
		return
	}
	s.chain.ServeHTTP(w, r)
}

// statusWriter records the status a middleware writes, unless the proxy
// counted it already.
type statusWriter struct {
	http.ResponseWriter
	status  int
	counted bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes the underlying writer, so streamed responses stay
// streamed behind a middleware.
func (w *statusWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (s *httpServer) countStatus(code int) {
	if c := code/100 - 1; c >= 0 && c < len(s.l.c.status) {
		s.l.c.status[c].Add(1)
	}
}

// markCounted tells an enclosing statusWriter that the proxy counted the
// response.
func markCounted(w http.ResponseWriter) {
	for {
		switch x := w.(type) {
		case *statusWriter:
			x.counted = true
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// fail answers with the listener's own small plain-text error.
func (s *httpServer) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(msg))}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(code)
	io.WriteString(w, msg)
	s.countStatus(code)
	markCounted(w)
	s.accessLog(r, code, int64(len(msg)), "", 0, time.Time{})
}

// redirect answers every request with a redirect to the HTTPS listener.
func (s *httpServer) redirect(w http.ResponseWriter, r *http.Request) {
	host := sni.StripPort(r.Host)
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	var loc string
	if p := s.o.RedirectToPort; p == 443 {
		loc = "https://" + host + uri
	} else {
		loc = "https://" + host + ":" + strconv.Itoa(p) + uri
	}
	code := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	w.Header()["Location"] = []string{loc}
	w.Header()["Content-Length"] = []string{"0"}
	w.WriteHeader(code)
	s.countStatus(code)
	markCounted(w)
	s.accessLog(r, code, 0, "", 0, time.Time{})
}

// maybeGzip sends requests from clients that accept gzip through the
// compressor, and the rest (and upgrades) straight to the proxy.
func (s *httpServer) maybeGzip(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r.Header) && acceptsGzip(r.Header) {
		s.gz.ServeHTTP(w, r)
		return
	}
	s.proxy(w, r)
}

func acceptsGzip(h http.Header) bool {
	for _, v := range h["Accept-Encoding"] {
		if strings.Contains(v, "gzip") {
			return true
		}
	}
	return false
}

func isUpgrade(h http.Header) bool {
	if len(h["Upgrade"]) == 0 {
		return false
	}
	for _, v := range h["Connection"] {
		if hasToken(v, "upgrade") {
			return true
		}
	}
	return false
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case.
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(textproto.TrimString(t), token) {
			return true
		}
	}
	return false
}

// isHop reports whether the canonical header key k is hop-by-hop (RFC 9110
// §7.6.1, and the fields net/http/httputil also removes).
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// removeHops deletes h's hop-by-hop fields, those its Connection field
// names included.
func removeHops(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if t = textproto.TrimString(t); t != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
	for _, k := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, k)
	}
}

// copyResponseHeader copies src's end-to-end fields to dst, sharing the
// value slices (src is the backend response, ours to give away).
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHop(k) || (conn != nil && listed(conn, k)) {
			continue
		}
		if old := dst[k]; old != nil {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
	if _, ok := src["Content-Type"]; !ok {
		dst["Content-Type"] = nil // no sniffing: pass the response as it is
	}
}

func listed(conn []string, k string) bool {
	for _, v := range conn {
		if hasToken(v, k) {
			return true
		}
	}
	return false
}

// prepare turns the client's request header into the backend's, in place.
func (s *httpServer) prepare(r *http.Request, hc *httpConn, upgrade bool) {
	h := r.Header
	var up []string
	if upgrade {
		up = h["Upgrade"]
	}
	removeHops(h)
	if upgrade {
		h["Connection"] = upgradeValue
		h["Upgrade"] = up
	}
	o := &s.o
	if !o.NoXForwardedFor {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + hc.ip[0]}
		} else {
			h["X-Forwarded-For"] = hc.ip
		}
	}
	if o.SLBID {
		delete(h, "Slb-Id")
		h[hdrSLBID] = s.slbID
	}
	if o.SLBIP {
		delete(h, "Slb-Ip")
		h[hdrSLBIP] = s.slbIP
	}
	if o.XForwardedProto {
		h["X-Forwarded-Proto"] = s.proto
	}
	if o.XForwardedPort {
		h["X-Forwarded-Port"] = s.port
	}
	if o.XForwardedClientSrcPort {
		delete(h, "X-Forwarded-Client-Srcport")
		h[hdrSrcPort] = hc.port
	}
	if o.ClientCertHeaders {
		delete(h, hdrCertSubject)
		delete(h, hdrCertIssuer)
		delete(h, hdrCertFingerprint)
		delete(h, hdrCertVerify)
		if r.TLS != nil {
			cc := hc.cert.Load()
			if cc == nil {
				d := tlspolicy.DescribeClientCert(*r.TLS)
				cc = &d
				hc.cert.Store(cc)
			}
			if cc.Subject != "" {
				h[hdrCertSubject] = []string{cc.Subject}
				h[hdrCertIssuer] = []string{cc.Issuer}
				h[hdrCertFingerprint] = []string{cc.Fingerprint}
			}
			h[hdrCertVerify] = []string{cc.Verify}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue // not Go's default
	}
}

// outRequest is the request sent to a backend, with its URL, in one
// allocation.
type outRequest struct {
	req http.Request
	url url.URL
}

// newOut makes the backend request for r: a shallow copy sharing r's
// header, body and context.
func newOut(r *http.Request, addr string, body io.ReadCloser) *http.Request {
	o := new(outRequest)
	o.req = *r
	o.url = *r.URL
	o.url.Scheme, o.url.Host = "http", addr
	o.req.URL = &o.url
	o.req.RequestURI = ""
	o.req.Close = false
	o.req.Body = body
	o.req.GetBody = nil
	o.req.TLS = nil
	if r.ContentLength == 0 {
		o.req.Body = nil
	}
	return &o.req
}

// bodyBuffer is how much of a request body is read before a backend is
// chosen, as nginx's client_body_buffer_size.
const bodyBuffer = 64 << 10

var bodyScratch = sync.Pool{New: func() any { b := make([]byte, bodyBuffer); return &b }}

// bufferBody reads the first 64 KiB of r's body before any backend is
// contacted, as nginx does: a body that is malformed or cut short within
// them is the client's error and reaches no backend, and one that ends
// within them goes with a Content-Length. It returns the body to send.
func (s *httpServer) bufferBody(r *http.Request) (io.ReadCloser, error) {
	sp := bodyScratch.Get().(*[]byte)
	defer bodyScratch.Put(sp)
	buf := *sp
	n := 0
	for n < len(buf) {
		m, err := r.Body.Read(buf[n:])
		n += m
		if err == io.EOF {
			r.ContentLength, r.TransferEncoding = int64(n), nil
			return io.NopCloser(bytes.NewReader(bytes.Clone(buf[:n]))), nil
		}
		if err != nil {
			return nil, err
		}
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(bytes.Clone(buf)), r.Body), r.Body}, nil
}

// bodyReader counts and paces a request body, and keeps the transport from
// closing the client's body, so that a connect failure can be retried.
type bodyReader struct {
	s   *httpServer
	rc  io.ReadCloser
	bad error // the client's body was malformed or cut short
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.bad = err
	}
	if n > 0 {
		b.s.l.c.bytesIn.Add(uint64(n))
		if lims := b.s.l.lim.load(); lims != nil {
			pay(b.s.ctx, lims.in, n)
		}
	}
	return n, err
}

func (b *bodyReader) Close() error { return nil }

// replayable reports whether r may be sent to another backend after it
// may have reached one: an idempotent method without a body.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	}
	return false
}

func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// requestFailure classifies a failed attempt to get a response head, for
// both HTTP lanes: a backend that could not be dialed is unreachable; one
// that was silent for the request timeout would only be repeated by
// another; a request that may have reached the backend goes elsewhere
// only if replay says it may.
func requestFailure(err error, replay bool) attempt.Failure {
	switch {
	case isDialErr(err):
		return attempt.Unreachable
	case isTimeout(err) || !replay:
		return attempt.Final
	}
	return attempt.Retry
}

// proxy forwards r to a backend of its group and streams the response
// back.
func (s *httpServer) proxy(w http.ResponseWriter, r *http.Request) {
	l := s.l
	hc := connOf(r)
	g := s.st.routes.group(r.Host, r.URL.Path, l.cfg.Group)
	k := s.st.hash.key(hc.src, hc.dst, (*stdRequest)(r)) // before the session and prepare edit the header
	var sess session.Session
	if st := s.st.sticky; st != nil {
		sess = st.Request(r.Header)
	}
	upgrade := isUpgrade(r.Header)
	http10 := r.ProtoMajor == 1 && r.ProtoMinor == 0 || r.ProtoMajor == 0
	keepAlive10 := http10 && listed(r.Header["Connection"], "keep-alive")
	s.prepare(r, hc, upgrade)
	if keepAlive10 {
		// net/http keeps an HTTP/1.0 client's connection open only if
		// it asked; roundTrip10 does not forward the field.
		r.Header["Connection"] = []string{"keep-alive"}
	}
	var (
		body io.ReadCloser
		br   *bodyReader
	)
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		rc, err := s.bufferBody(r)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, msgBadBody)
			return
		}
		br = &bodyReader{s: s, rc: rc}
		body = br
	}
	fast := !http10 && !upgrade && fastPath(r)
	a := attempt.Loop{Group: g, Key: k, Sticky: sess.ID, Stop: r.Context(), Env: l.env()}
	replay := replayable(r)
	for a.Next() {
		m := a.Member()
		bc := s.backend(m.ID())
		bc.active.Add(1)
		bc.new.Add(1)
		var (
			resp *http.Response
			err  error
		)
		switch {
		case fast:
			resp, err = s.pool.roundTrip(r, m.Addr())
		case http10:
			resp, err = s.roundTrip10(newOut(r, m.Addr(), body))
		case !replay:
			// On a kept-alive connection the backend may be closing
			// as the request goes out, and then the request cannot be
			// sent again: it gets a connection of its own, which the
			// backend closes after answering.
			resp, err = s.once.RoundTrip(newOut(r, m.Addr(), body))
		default:
			resp, err = s.tr.RoundTrip(newOut(r, m.Addr(), body))
		}
		if err != nil {
			bc.active.Add(-1)
			a.Fail(err, requestFailure(err, replay))
			continue
		}
		at, ok := a.Connected()
		if !ok { // the client left, or the listener is stopping
			resp.Body.Close()
			bc.active.Add(-1)
			return
		}
		head := at.Succeeded()
		s.respond(w, r, resp, m, bc, sess, at.Start())
		bc.active.Add(-1)
		at.Done(balancer.DoneInfo{Latency: head})
		return
	}
	if a.Stopped() {
		return // the client left, or the listener is stopping
	}
	if br != nil && br.bad != nil {
		s.fail(w, r, http.StatusBadRequest, msgBadBody)
		return
	}
	code, msg := s.failure(a.Err())
	s.fail(w, r, code, msg)
}

const msgBadBody = "400 Bad Request: the request body is malformed or cut short\n"

// failure is the answer to a request no backend served, err being the
// attempt loop's: 503 if no backend was available, 504 if one was silent
// for the request timeout, 502 otherwise.
func (s *httpServer) failure(err error) (code int, msg string) {
	switch {
	case err == nil || errors.Is(err, balancer.ErrNoBackend):
		return http.StatusServiceUnavailable, "503 Service Unavailable: no backend available\n"
	case isTimeout(err):
		return http.StatusGatewayTimeout, "504 Gateway Timeout: the backend did not answer in time\n"
	default:
		return http.StatusBadGateway, "502 Bad Gateway: the backend refused or reset the connection\n"
	}
}

// respond sends a backend's response to the client.
func (s *httpServer) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, m *balancer.Member, bc *backendCounters, sess session.Session, start time.Time) {
	l := s.l
	up := time.Since(start)
	l.c.upstreamN.Add(1)
	l.c.upstreamNS.Add(int64(up))
	bc.upstreamN.Add(1)
	bc.upstreamNS.Add(int64(up))
	s.countStatus(resp.StatusCode)
	bc.countStatus(resp.StatusCode)
	markCounted(w)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.tunnel(w, r, resp, bc)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	copyResponseHeader(h, resp.Header)
	if st := s.st.sticky; st != nil {
		st.Response(h, sess, m.ID(), s.https)
	}
	if len(resp.Trailer) > 0 {
		for k := range resp.Trailer {
			h.Add("Trailer", k)
		}
	}
	w.WriteHeader(resp.StatusCode)
	n := s.copyBody(w, resp.Body, resp.ContentLength < 0, bc)
	for k, vv := range resp.Trailer {
		h[k] = vv
	}
	s.accessLog(r, resp.StatusCode, n, m.ID(), up, start)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams a response body to the client, counting it, paying the
// bandwidth cap and flushing each chunk of a body of unknown length.
func (s *httpServer) copyBody(w http.ResponseWriter, body io.Reader, flush bool, bc *backendCounters) int64 {
	l := s.l
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			l.c.bytesOut.Add(uint64(m))
			bc.bytesOut.Add(uint64(m))
			if werr != nil {
				return total
			}
			if flush {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				} else {
					http.NewResponseController(w).Flush()
				}
			}
			if lims := l.lim.load(); lims != nil {
				pay(s.ctx, lims.out, m)
			}
		}
		if rerr != nil {
			return total
		}
	}
}

// tunnel joins the client and the backend after a 101 Switching
// Protocols (WebSocket), copying both ways until either side ends.
func (s *httpServer) tunnel(w http.ResponseWriter, r *http.Request, resp *http.Response, bc *backendCounters) {
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		s.fail(w, r, http.StatusBadGateway, "502 Bad Gateway: the backend switched protocols without a connection\n")
		return
	}
	defer back.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "500 Internal Server Error: cannot switch protocols on this connection\n")
		return
	}
	defer conn.Close()
	s.track(conn, true)
	defer s.track(conn, false)
	if s.ctx.Err() != nil {
		return
	}
	h := make(http.Header, len(resp.Header))
	copyResponseHeader(h, resp.Header)
	delete(h, "Content-Type")
	h["Connection"] = upgradeValue
	h["Upgrade"] = resp.Header["Upgrade"]
	resp.Header, resp.Body = h, nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	s.l.c.active.Add(1) // the hijacked connection left net/http's count
	defer s.l.c.active.Add(-1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pump(back, brw.Reader, true, bc)
		back.Close()
		conn.Close()
	}()
	s.pump(conn, back, false, bc)
	back.Close()
	conn.Close()
	<-done
	s.accessLog(r, http.StatusSwitchingProtocols, 0, "", 0, time.Time{})
}

// pump copies a tunnel's bytes one way, counting and pacing them.
func (s *httpServer) pump(dst io.Writer, src io.Reader, in bool, bc *backendCounters) {
	l := s.l
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
			lims := l.lim.load()
			if in {
				l.c.bytesIn.Add(uint64(n))
				bc.bytesIn.Add(uint64(n))
				if lims != nil {
					pay(s.ctx, lims.in, n)
				}
			} else {
				l.c.bytesOut.Add(uint64(n))
				bc.bytesOut.Add(uint64(n))
				if lims != nil {
					pay(s.ctx, lims.out, n)
				}
			}
		}
		if rerr != nil {
			return
		}
	}
}

// roundTrip10 sends an HTTP/1.0 client's request to the backend in
// HTTP/1.0 on a connection of its own, closed with the response body.
func (s *httpServer) roundTrip10(req *http.Request) (*http.Response, error) {
	l := s.l
	d := net.Dialer{Timeout: l.cfg.ConnectTimeout}
	c, err := d.DialContext(req.Context(), "tcp", req.URL.Host)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(req.Context(), func() { c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Now().Add(s.o.RequestTimeout))
	bw := bufio.NewWriter(c)
	fmt.Fprintf(bw, "%s %s HTTP/1.0\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), req.Host)
	if req.ContentLength > 0 {
		fmt.Fprintf(bw, "Content-Length: %d\r\n", req.ContentLength)
	}
	req.Header.WriteSubset(bw, map[string]bool{"Host": true, "Content-Length": true, "Connection": true})
	bw.WriteString("\r\n")
	if req.Body != nil {
		if _, err := io.Copy(bw, req.Body); err != nil {
			return fail(err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return fail(err)
	}
	c.SetDeadline(time.Time{})
	resp.Body = &connBody{ReadCloser: resp.Body, c: c, stop: stop}
	return resp, nil
}

// connBody closes its connection with the body.
type connBody struct {
	io.ReadCloser
	c    net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	b.stop()
	b.ReadCloser.Close()
	return b.c.Close()
}

// accessEntry is what the access log says of a request.
type accessEntry struct {
	client                    netip.AddrPort
	method, host, path, proto string
}

// accessLog writes one access-log record, if the access log is on.
func (s *httpServer) accessLog(r *http.Request, status int, n int64, backend string, up time.Duration, start time.Time) {
	if s.o.AccessLog == nil {
		return
	}
	s.logRequest(r.Context(), accessEntry{
		client: connOf(r).src, method: r.Method, host: r.Host, path: r.URL.Path, proto: r.Proto,
	}, status, n, backend, up, start)
}

// logRequest writes one access-log record; the access log is on.
func (s *httpServer) logRequest(ctx context.Context, e accessEntry, status int, n int64, backend string, up time.Duration, start time.Time) {
	attrs := []slog.Attr{
		slog.String("client", e.client.String()),
		slog.String("method", e.method),
		slog.String("host", e.host),
		slog.String("path", e.path),
		slog.String("proto", e.proto),
		slog.Int("status", status),
		slog.Int64("bytes", n),
	}
	if backend != "" {
		attrs = append(attrs, slog.String("backend", backend), slog.Duration("upstream", up), slog.Duration("duration", time.Since(start)))
	}
	s.o.AccessLog.LogAttrs(ctx, slog.LevelInfo, "http request", attrs...)
}
