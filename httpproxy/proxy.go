package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/session"
)

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
func (s *server) bufferBody(r *http.Request) (io.ReadCloser, error) {
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
	s   *server
	rc  io.ReadCloser
	bad error // the client's body was malformed or cut short
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.bad = err
	}
	if n > 0 {
		b.s.count(nil, false, n)
		b.s.host.Pay(b.s.ctx, false, n)
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

// proxy forwards r to a backend of its group and streams the response
// back.
func (s *server) proxy(w http.ResponseWriter, r *http.Request) {
	hc := connOf(r)
	r, client, cut := s.withClient(r, hc)
	g, k := s.route(client, hc, r.Host, r.URL.Path, (*stdRequest)(r)) // before the session and the plan edit the header
	sess := s.sticky(r.Header)
	upgrade := isUpgrade(r.Header)
	http10 := r.ProtoMajor == 1 && r.ProtoMinor == 0 || r.ProtoMajor == 0
	keepAlive10 := http10 && listed(r.Header["Connection"], "keep-alive")
	s.c.plan.apply(r, hc, &s.who, upgrade, cut)
	if keepAlive10 {
		// net/http keeps an HTTP/1.0 client's connection open only if
		// it asked; roundTrip10 does not forward the field.
		r.Header["Connection"] = []string{"keep-alive"}
	}
	if rw := s.c.o.Rewrite; rw != nil {
		rw(r)
		r.RequestURI = "" // the target is the URL's now
	}
	x := &stdExchange{s: s, r: r, http10: http10, replay: replayable(r)}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		rc, err := s.bufferBody(r)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, msgBadBody)
			return
		}
		x.br = &bodyReader{s: s, rc: rc}
		x.body = x.br
	}
	x.fast = !http10 && !upgrade && fastPath(r)
	f, ok, stopped, err := s.forward(r.Context(), g, k, sess.ID, x)
	switch {
	case stopped:
		return // the client left, or the listener is stopping
	case !ok && x.br != nil && x.br.bad != nil:
		s.fail(w, r, http.StatusBadRequest, msgBadBody)
		return
	case !ok:
		s.failWith(w, r, err)
		return
	}
	resp := x.resp
	if mr := s.c.o.ModifyResponse; mr != nil {
		if err := mr(resp); err != nil {
			resp.Body.Close()
			f.done()
			s.failWith(w, r, fmt.Errorf("httpproxy: ModifyResponse: %w", err))
			return
		}
	}
	s.respond(w, r, resp, f.m, f.bc, sess, f.at.Start())
	f.done()
}

// stdExchange is the general lane's exchanger: one request net/http
// read, sent over the transport its kind calls for.
type stdExchange struct {
	s      *server
	r      *http.Request
	body   io.ReadCloser // the request body to send, nil without
	br     *bodyReader   // body, to learn whether the client's was bad
	fast   bool          // GET or HEAD without a body: the pool
	http10 bool
	replay bool
	resp   *http.Response // try's
}

func (x *stdExchange) try(m *balancer.Member) error {
	s, r := x.s, x.r
	var err error
	switch {
	case s.own == nil: // Options.Transport
		x.resp, err = s.tr.RoundTrip(newOut(r, m.Addr(), x.body))
	case x.fast:
		x.resp, err = s.pool.roundTrip(r, m.Addr())
	case x.http10:
		x.resp, err = s.roundTrip10(newOut(r, m.Addr(), x.body))
	case !x.replay:
		// On a kept-alive connection the backend may be closing as the
		// request goes out, and then the request cannot be sent again:
		// it gets a connection of its own, which the backend closes
		// after answering.
		x.resp, err = s.once.RoundTrip(newOut(r, m.Addr(), x.body))
	default:
		x.resp, err = s.tr.RoundTrip(newOut(r, m.Addr(), x.body))
	}
	return err
}

func (x *stdExchange) failure(err error) attempt.Failure { return requestFailure(err, x.replay) }

func (x *stdExchange) drop() { x.resp.Body.Close() }

// respond sends a backend's response to the client.
func (s *server) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, m *balancer.Member, bc *stats.Backend, sess session.Session, start time.Time) {
	up := time.Since(start)
	s.m.UpstreamN.Add(1)
	s.m.UpstreamNS.Add(int64(up))
	bc.UpstreamN.Add(1)
	bc.UpstreamNS.Add(int64(up))
	s.m.CountStatus(resp.StatusCode)
	bc.CountStatus(resp.StatusCode)
	markCounted(w)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.tunnel(w, r, resp, bc)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	copyResponseHeader(h, resp.Header)
	s.advertiseH3(h, r.ProtoMajor)
	if st := s.c.sticky; st != nil {
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
func (s *server) copyBody(w http.ResponseWriter, body io.Reader, flush bool, bc *stats.Backend) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			s.count(bc, true, m)
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
			s.host.Pay(s.ctx, true, m)
		}
		if rerr != nil {
			return total
		}
	}
}

// tunnel joins the client and the backend after a 101 Switching
// Protocols (WebSocket), copying both ways until either side ends.
func (s *server) tunnel(w http.ResponseWriter, r *http.Request, resp *http.Response, bc *stats.Backend) {
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
	s.m.Active.Add(1) // the hijacked connection left net/http's count
	defer s.m.Active.Add(-1)
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
func (s *server) pump(dst io.Writer, src io.Reader, in bool, bc *stats.Backend) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
			s.count(bc, !in, n)
			s.host.Pay(s.ctx, !in, n)
		}
		if rerr != nil {
			return
		}
	}
}

// roundTrip10 sends an HTTP/1.0 client's request to the backend in
// HTTP/1.0 on a connection of its own, closed with the response body.
func (s *server) roundTrip10(req *http.Request) (*http.Response, error) {
	d := net.Dialer{Timeout: s.c.o.ConnectTimeout}
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
	c.SetDeadline(time.Now().Add(s.c.o.RequestTimeout))
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
