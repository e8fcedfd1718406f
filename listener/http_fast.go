package listener

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lbkit/lbkit/balancer"
)

// Every connection of an HTTP or HTTPS listener comes in through its
// front door, the fastLane: it accepts, does the TLS handshake on HTTPS,
// gives HTTP/2 connections to the listener's net/http server, and serves
// HTTP/1.1 itself when the listener allows (the fast lane), handing the
// rest to net/http through a requestGuard (http_guard.go), so that every
// HTTP/1 request head is read by lbkit's code before net/http acts on it.
//
// The fast lane serves keep-alive traffic without net/http's server:
// each connection's goroutine reads a request head into its own buffer,
// parses it in place (http_h1.go), writes it to a pooled backend
// connection nearly byte for byte, parses the response head the same way
// and sends head and body back with one write where it fits. There is no
// background read, no per-request goroutine, header map or Request value,
// and nothing is allocated for a GET or HEAD whose request and response
// heads are of the common shape.
//
// Anything else — other methods, bodies, upgrades, HTTP/1.0, clients
// accepting gzip while gzip is on, a request refused by the ACL, a head
// that is unusual, oversized or malformed in any way — is handed, before
// a byte of it is consumed, with its connection to net/http, which
// serves that connection from then on with every check and feature it
// has. Responses the lane does not parse (chunked or unframed bodies,
// long heads) are read with http.ReadResponse. The lane is off for
// listeners with a middleware, a redirect, sticky sessions or client
// certificate headers.

// noFastLane turns the fast lane off, so tests can compare the lanes.
var noFastLane = false

// Connection states of the front door.
const (
	connIdle int32 = iota // handshaking or waiting for a request: a stop closes it
	connActive
	connClosed
)

type fastLane struct {
	s          *httpServer
	ln         net.Listener
	tls        *tls.Config // nil on HTTP
	lane       bool        // the fast lane is on
	opts       h1Options
	handoff    *handoffListener
	acceptDone chan struct{}
	conns      sync.WaitGroup // connection goroutines
	draining   atomic.Bool
	served     atomic.Uint64 // requests answered in the lane
	handedOff  atomic.Uint64 // connections given to net/http

	mu   sync.Mutex
	open map[*fastConn]struct{}
}

// newFastLane returns the listener's front door.
func newFastLane(s *httpServer, ln net.Listener) *fastLane {
	o := &s.o
	f := &fastLane{
		s:    s,
		ln:   ln,
		lane: o.Middleware == nil && o.RedirectToPort == 0 && s.st.sticky == nil && !o.ClientCertHeaders && !noFastLane,
		opts: h1Options{
			maxHead: min(o.MaxHeaderBytes, len(fastConn{}.in)),
			maxURI:  o.MaxURIBytes,
			gzip:    s.gz != nil,
			xff:     !o.NoXForwardedFor,
			slbID:   o.SLBID, slbIP: o.SLBIP, proto: o.XForwardedProto, port: o.XForwardedPort,
			srcPort: o.XForwardedClientSrcPort,
		},
		handoff:    &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})},
		acceptDone: make(chan struct{}),
		open:       map[*fastConn]struct{}{},
	}
	if s.https {
		f.tls = s.st.tls.serverConfig()
	}
	return f
}

// accept runs the lane's accept loop until its listener is closed.
func (f *fastLane) accept() {
	defer close(f.acceptDone)
	var backoff time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http
			// does, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			f.s.l.cfg.Logger.Debug("http accept failed", "err", err, "retry in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		fc := &fastConn{f: f, c: c, raw: c, hc: newHTTPConn(c)}
		f.mu.Lock()
		f.open[fc] = struct{}{}
		f.mu.Unlock()
		f.conns.Add(1)
		go fc.start()
	}
}

// shutdown stops accepting, closes idle connections, lets requests in
// flight finish until ctx is done, then cuts the rest.
func (f *fastLane) shutdown(ctx context.Context) error {
	f.ln.Close()
	<-f.acceptDone
	f.draining.Store(true)
	f.mu.Lock()
	for fc := range f.open {
		if fc.state.CompareAndSwap(connIdle, connClosed) {
			fc.raw.Close()
		}
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		f.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for fc := range f.open {
		fc.state.Store(connClosed)
		fc.raw.Close()
		if b := fc.back.Load(); b != nil {
			b.c.Close()
		}
	}
	f.mu.Unlock()
	<-done
	return ctx.Err()
}

// fastConn is one client connection at the front door. Only its own
// goroutine touches its fields; a stop uses state, back and raw.
type fastConn struct {
	f     *fastLane
	c     net.Conn // raw, or the TLS connection over it
	raw   net.Conn
	hc    *httpConn
	state atomic.Int32
	back  atomic.Pointer[backendConn] // in use, for a forced stop to cut

	counted bool // in the listener's connection counts

	req     h1Request
	resp    h1Response
	generic *http.Response // a response head parseResponse declined
	dateSec int64
	date    []byte
	in      [4 << 10]byte
}

// start does the TLS handshake on HTTPS, then gives the connection to
// net/http (HTTP/2, or HTTP/1 when the fast lane is off) or serves it.
func (fc *fastConn) start() {
	f := fc.f
	defer f.conns.Done()
	if f.tls != nil {
		tc := tls.Server(fc.c, f.tls)
		tc.SetDeadline(time.Now().Add(f.s.o.HeaderTimeout))
		if err := tc.HandshakeContext(f.s.ctx); err != nil {
			f.s.l.cfg.Logger.Debug("TLS handshake failed", "client", fc.hc.src, "err", err)
			fc.c.Close()
			fc.forget()
			return
		}
		tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		fc.c, fc.hc.tls = tc, &cs
		if cs.NegotiatedProtocol == "h2" {
			fc.forget()
			if !f.handoff.push(tc) {
				tc.Close()
			}
			return
		}
	}
	f.s.l.c.active.Add(1)
	f.s.l.c.new.Add(1)
	fc.counted = true
	if !f.lane {
		fc.handOff(nil)
		return
	}
	fc.serve()
}

// serve reads and answers requests until the connection ends or leaves
// for net/http.
func (fc *fastConn) serve() {
	f := fc.f
	o := &f.s.o
	buf := fc.in[:]
	r, w := 0, 0
	wait := o.HeaderTimeout // for the first request, as net/http
	for {
		if r == w {
			r, w = 0, 0
			fc.c.SetReadDeadline(time.Now().Add(wait))
			n, _ := fc.c.Read(buf)
			if n == 0 {
				fc.close()
				return
			}
			w = n
		}
		if !fc.state.CompareAndSwap(connIdle, connActive) {
			fc.close()
			return
		}
		v := parseRequest(buf[r:w], &f.opts, &fc.req)
		for deadline := false; v == h1More; v = parseRequest(buf[r:w], &f.opts, &fc.req) {
			if w == len(buf) {
				w = copy(buf, buf[r:w]) // r > 0: parseRequest declines a full buffer
				r = 0
			}
			if !deadline {
				fc.c.SetReadDeadline(time.Now().Add(o.HeaderTimeout))
				deadline = true
			}
			n, _ := fc.c.Read(buf[w:])
			if n == 0 {
				fc.close()
				return
			}
			w += n
		}
		if v == h1Decline || !f.s.l.acl.allow(fc.hc.src.Addr()) {
			fc.handOff(buf[r:w])
			return
		}
		fc.req.raw = buf[r : r+fc.req.len]
		f.served.Add(1)
		keep := fc.serveRequest()
		r += fc.req.len
		if !keep || !fc.state.CompareAndSwap(connActive, connIdle) || f.draining.Load() {
			fc.close()
			return
		}
		wait = o.IdleTimeout
	}
}

func (fc *fastConn) close() {
	fc.c.Close()
	fc.forget()
	if fc.counted {
		fc.f.s.l.c.active.Add(-1)
	}
}

func (fc *fastConn) forget() {
	fc.f.mu.Lock()
	delete(fc.f.open, fc)
	fc.f.mu.Unlock()
}

// handOff gives the connection, with the bytes read and not yet
// served, to the listener's net/http server, which reads it through a
// requestGuard.
func (fc *fastConn) handOff(pending []byte) {
	fc.forget() // still counted active, now by net/http's ConnState
	fc.f.handedOff.Add(1)
	fc.c.SetDeadline(time.Time{})
	var src io.Reader = fc.c
	if len(pending) > 0 {
		src = io.MultiReader(bytes.NewReader(append([]byte(nil), pending...)), fc.c)
	}
	hc := &handoffConn{Conn: fc.c, guard: newRequestGuard(src), hc: fc.hc}
	if !fc.f.handoff.push(hc) {
		fc.close()
	}
}

// serveRequest proxies the parsed request and reports whether the
// connection may carry another.
func (fc *fastConn) serveRequest() bool {
	s := fc.f.s
	l := s.l
	q := &fc.req
	start := time.Now()
	keep := !q.close && fc.hc.reqs.Add(1) <= int64(s.o.MaxKeepAliveRequests)
	g := s.st.routes.group(unsafeString(q.host), unsafeString(q.path), l.cfg.Group)
	k := balancer.Key{Src: fc.hc.src, Dst: fc.hc.dst}
	var (
		triedBuf [maxConnectAttempts]*balancer.Member
		tried    = triedBuf[:0]
		lastErr  error
	)
	for range maxConnectAttempts {
		var (
			m   *balancer.Member
			err error
		)
		if len(tried) > 0 {
			m, err = g.PickNext(k, tried)
		} else {
			m, err = g.Pick(k)
		}
		if err != nil {
			break
		}
		bc := s.backend(m.ID())
		m.Begin()
		bc.active.Add(1)
		bc.new.Add(1)
		sent := time.Now()
		bk, err := fc.exchange(m.Addr())
		if err == nil {
			l.reportConnect(g, m.ID(), nil)
			keep = fc.respond(bk, m.ID(), bc, sent, start, keep)
			bc.active.Add(-1)
			m.End()
			return keep
		}
		bc.active.Add(-1)
		m.End()
		lastErr = err
		tried = append(tried, m)
		if s.ctx.Err() != nil {
			return false
		}
		dial := isDialErr(err)
		if dial {
			l.reportConnect(g, m.ID(), err)
			l.c.connectFailures.Add(1)
			bc.connectFailures.Add(1)
		}
		l.cfg.Logger.Debug("backend request failed", "backend", m.ID(), "err", err)
		if !dial && isTimeout(err) {
			break
		}
	}
	switch {
	case lastErr == nil:
		l.c.noBackend.Add(1)
		return fc.fail(http.StatusServiceUnavailable, "503 Service Unavailable: no backend available\n", keep, start)
	case isTimeout(lastErr):
		return fc.fail(http.StatusGatewayTimeout, "504 Gateway Timeout: the backend did not answer in time\n", keep, start)
	default:
		return fc.fail(http.StatusBadGateway, "502 Bad Gateway: the backend refused or reset the connection\n", keep, start)
	}
}

// exchange sends the request to addr on a pooled connection (or a new
// one) and reads the response head. A pooled connection the backend had
// closed is replaced by a new one; GET and HEAD may be sent again.
func (fc *fastConn) exchange(addr string) (*backendConn, error) {
	p := fc.f.s.pool
	list := p.list(addr)
	bk := p.get(list)
	for {
		reused := bk != nil
		if !reused {
			var err error
			if bk, err = p.dial(fc.f.s.ctx, addr, list); err != nil {
				return nil, err
			}
		}
		fc.back.Store(bk)
		err := fc.send(bk)
		if err == nil {
			return bk, nil
		}
		fc.back.Store(nil)
		bk.c.Close()
		if !reused || isTimeout(err) || fc.f.s.ctx.Err() != nil {
			return nil, err
		}
		bk = nil
	}
}

var errInformational = errors.New("listener: unexpected informational response from backend")

// send writes the request head to bk and reads the response head into
// fc.resp, or into fc.generic if parseResponse declines it.
func (fc *fastConn) send(bk *backendConn) error {
	s := fc.f.s
	q := &fc.req
	bk.c.SetDeadline(time.Now().Add(s.o.RequestTimeout))
	w := bk.bw
	if q.head {
		w.WriteString("HEAD ")
	} else {
		w.WriteString("GET ")
	}
	w.Write(q.target)
	w.WriteString(" HTTP/1.1\r\n")
	for _, ln := range q.keep[:q.nkeep] {
		w.Write(q.raw[ln.start:ln.end])
	}
	o := &fc.f.opts
	if o.xff {
		w.WriteString("X-Forwarded-For: ")
		for _, v := range q.xff[:q.nxff] {
			w.Write(q.raw[v.start:v.end])
			w.WriteString(", ")
		}
		w.WriteString(fc.hc.ip[0])
		w.WriteString("\r\n")
	}
	header := func(k string, v []string) {
		w.WriteString(k)
		w.WriteString(": ")
		w.WriteString(v[0])
		w.WriteString("\r\n")
	}
	if o.slbID {
		header(hdrSLBID, s.slbID)
	}
	if o.slbIP {
		header(hdrSLBIP, s.slbIP)
	}
	if o.proto {
		header("X-Forwarded-Proto", s.proto)
	}
	if o.port {
		header("X-Forwarded-Port", s.port)
	}
	if o.srcPort {
		header(hdrSrcPort, fc.hc.port)
	}
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		return err
	}

	fc.generic = nil
	br := bk.br
	for want := 1; ; want = br.Buffered() + 1 {
		if _, err := br.Peek(want); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		b, _ := br.Peek(br.Buffered())
		switch parseResponse(b, &fc.resp) {
		case h1Complete:
			if fc.resp.length >= 0 || fc.resp.bodiless(q.head) {
				return nil
			}
		case h1More:
			if br.Buffered() < br.Size() {
				continue
			}
		}
		break
	}
	method := http.MethodGet
	if q.head {
		method = http.MethodHead
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 {
		resp.Body.Close()
		return errInformational
	}
	fc.generic = resp
	return nil
}

// respond sends the response read by send to the client and reports
// whether the client connection may carry another request.
func (fc *fastConn) respond(bk *backendConn, id string, bc *backendCounters, sent, start time.Time, keep bool) bool {
	s := fc.f.s
	l := s.l
	keep = keep && !fc.f.draining.Load() // a stopping listener closes after the response
	up := time.Since(sent)
	l.c.upstreamN.Add(1)
	l.c.upstreamNS.Add(int64(up))
	bc.upstreamN.Add(1)
	bc.upstreamNS.Add(int64(up))
	if fc.generic != nil {
		return fc.respondGeneric(bk, id, bc, up, start, keep)
	}
	p := &fc.resp
	s.countStatus(p.status)
	bc.countStatus(p.status)
	br := bk.br
	head, _ := br.Peek(p.len)

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := append((*bp)[:0], "HTTP/1.1"...)
	out = append(out, p.line...)
	out = append(out, "\r\n"...)
	for _, ln := range p.keep[:p.nkeep] {
		out = append(out, head[ln.start:ln.end]...)
	}
	if !p.hasDate {
		out = fc.appendDate(out, start)
	}
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	br.Discard(p.len)

	// The body: what is buffered goes out with the head, the rest as it
	// comes.
	left := p.length
	if p.bodiless(fc.req.head) {
		left = 0
	}
	inline := min(left, int64(br.Buffered()), int64(cap(out)-len(out)))
	body, _ := br.Peek(int(inline))
	out = append(out, body...)
	br.Discard(int(inline))
	left -= inline
	// Counters, the access log and the backend connection's return to
	// the pool come before the write that ends the response, so a
	// client that has it finds them done.
	sentBody := inline
	if left == 0 {
		fc.log(p.status, sentBody, id, up, start)
		fc.release(bk, true)
	}
	err := fc.write(out, int(inline), bc)
	for err == nil && left > 0 {
		bk.c.SetReadDeadline(time.Now().Add(s.o.RequestTimeout))
		n, rerr := br.Read((*bp)[:min(int64(cap(*bp)), left)])
		left -= int64(n)
		sentBody += int64(n)
		if rerr != nil && left > 0 {
			err = rerr
		}
		if left == 0 || err != nil {
			fc.log(p.status, sentBody, id, up, start)
		}
		if left == 0 {
			fc.release(bk, rerr == nil)
		}
		if werr := fc.write((*bp)[:n], n, bc); err == nil {
			err = werr
		}
	}
	if left > 0 {
		fc.release(bk, false) // the backend or the client failed
	}
	return keep && err == nil
}

// release ends the use of a backend connection whose response has been
// read: back to the pool if reuse is true and the backend allows, else
// closed.
func (fc *fastConn) release(bk *backendConn, reuse bool) {
	fc.back.Store(nil)
	if reuse && !fc.resp.close && bk.br.Buffered() == 0 {
		fc.f.s.pool.put(bk)
	} else {
		bk.c.Close()
	}
}

// write sends out, whose last n bytes are body, to the client, counting
// the body first and pacing it after.
func (fc *fastConn) write(out []byte, n int, bc *backendCounters) error {
	l := fc.f.s.l
	l.c.bytesOut.Add(uint64(n))
	bc.bytesOut.Add(uint64(n))
	_, err := fc.c.Write(out)
	if lims := l.lim.load(); lims != nil && n > 0 {
		pay(fc.f.s.ctx, lims.out, n)
	}
	return err
}

// respondGeneric sends a response that http.ReadResponse read: chunked
// (re-chunked to the client, trailers included), unframed (sent until
// the backend closes, then the client connection closes too) or with a
// head parseResponse declined.
func (fc *fastConn) respondGeneric(bk *backendConn, id string, bc *backendCounters, up time.Duration, start time.Time, keep bool) bool {
	s := fc.f.s
	resp := fc.generic
	fc.generic = nil
	s.countStatus(resp.StatusCode)
	bc.countStatus(resp.StatusCode)
	h := make(http.Header, len(resp.Header)+1)
	copyResponseHeader(h, resp.Header)
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{start.UTC().Format(http.TimeFormat)}
	}
	cw := bufio.NewWriterSize(fc.c, 4<<10)
	body := &genericBody{fc: fc, bk: bk, bc: bc, rc: resp.Body, cw: cw}
	unframed := resp.ContentLength < 0 && !(len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked") &&
		!(fc.req.head || resp.StatusCode == 204 || resp.StatusCode == 304)
	keep = keep && !unframed
	backendCloses := resp.Close
	resp.Header, resp.Body, resp.Close = h, body, !keep
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	// Write through a plain io.Writer: bufio.Writer.ReadFrom would read
	// the body into the buffer that genericBody.Read flushes.
	err := resp.Write(struct{ io.Writer }{cw})
	// The log and the backend connection before the last of the
	// response goes out, as in respond.
	fc.log(resp.StatusCode, body.n, id, up, start)
	fc.back.Store(nil)
	if err == nil && body.eof && !backendCloses && bk.br.Buffered() == 0 {
		s.pool.put(bk)
	} else {
		bk.c.Close() // first, so that closing the body does not drain it
	}
	body.rc.Close()
	if err == nil {
		err = cw.Flush()
	}
	return keep && err == nil
}

// genericBody is a backend response body on its way to the client: each
// read first flushes what was written before it, so a streamed response
// stays streamed, and waits at most the request timeout.
type genericBody struct {
	fc  *fastConn
	bk  *backendConn
	bc  *backendCounters
	rc  io.ReadCloser
	cw  *bufio.Writer
	n   int64
	eof bool
}

func (b *genericBody) Read(p []byte) (int, error) {
	if b.cw.Buffered() > 0 {
		if err := b.cw.Flush(); err != nil {
			return 0, err
		}
	}
	b.bk.c.SetReadDeadline(time.Now().Add(b.fc.f.s.o.RequestTimeout))
	n, err := b.rc.Read(p)
	b.n += int64(n)
	l := b.fc.f.s.l
	l.c.bytesOut.Add(uint64(n))
	b.bc.bytesOut.Add(uint64(n))
	if lims := l.lim.load(); lims != nil && n > 0 {
		pay(b.fc.f.s.ctx, lims.out, n)
	}
	b.eof = err == io.EOF
	return n, err
}

func (b *genericBody) Close() error { return nil }

// fail answers with the listener's own small plain-text error.
func (fc *fastConn) fail(code int, msg string, keep bool, start time.Time) bool {
	keep = keep && !fc.f.draining.Load()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := append((*bp)[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(code)...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n"...)
	out = fc.appendDate(out, start)
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if !fc.req.head {
		out = append(out, msg...)
	}
	fc.f.s.countStatus(code) // before the client can see it
	fc.log(code, int64(len(msg)), "", 0, start)
	_, err := fc.c.Write(out)
	return keep && err == nil
}

// appendDate appends a Date field for t, formatted once a second.
func (fc *fastConn) appendDate(out []byte, t time.Time) []byte {
	if sec := t.Unix(); sec != fc.dateSec || fc.date == nil {
		fc.dateSec = sec
		fc.date = t.UTC().AppendFormat(append(fc.date[:0], "Date: "...), http.TimeFormat)
		fc.date = append(fc.date, "\r\n"...)
	}
	return append(out, fc.date...)
}

// log writes the access-log record of a request, if the log is on.
func (fc *fastConn) log(status int, n int64, backend string, up time.Duration, start time.Time) {
	s := fc.f.s
	if s.o.AccessLog == nil {
		return
	}
	method := http.MethodGet
	if fc.req.head {
		method = http.MethodHead
	}
	s.logRequest(s.ctx, accessEntry{
		client: fc.hc.src, method: method, host: string(fc.req.host), path: string(fc.req.path), proto: "HTTP/1.1",
	}, status, n, backend, up, start)
}

// unsafeString returns b as a string without copying, for lookups that
// do not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// handoffListener is how the fast lane gives connections to the
// listener's net/http server.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// push hands c to the server; false if it has stopped.
func (h *handoffListener) push(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// handoffConn is an HTTP/1 connection the front door handed over: net/http
// reads it through its guard, starting with the bytes the fast lane had
// read and not served.
type handoffConn struct {
	net.Conn
	guard *requestGuard
	hc    *httpConn
}

func (c *handoffConn) Read(p []byte) (int, error) { return c.guard.Read(p) }

// CloseWrite lets net/http half-close the connection, as it does a
// *net.TCPConn's.
func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// newHTTPConn describes a client connection.
func newHTTPConn(c net.Conn) *httpConn {
	hc := &httpConn{}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		hc.src = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		hc.dst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	hc.ip = []string{hc.src.Addr().String()}
	hc.port = []string{strconv.Itoa(int(hc.src.Port()))}
	return hc
}
