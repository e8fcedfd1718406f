package httpproxy

import (
	"bufio"
	"bytes"
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

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/netpoll"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/proxyin"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/session"
)

// The fast lane serves keep-alive traffic without net/http's server:
// each connection's goroutine reads a request head into its own buffer,
// parses it in place (h1.go), writes it to a pooled backend connection
// nearly byte for byte with the header plan applied (plan.go), parses
// the response head the same way and sends head and body back with one
// write where it fits, gzip-coding it by the package's one set of rules
// (gzip.go) for a client that accepts gzip. There is no background read,
// no per-request goroutine, header map or Request value, and nothing is
// allocated for a GET or HEAD whose request and response heads are of
// the common shape, compressed or not.
//
// Anything else — other methods, bodies, upgrades, HTTP/1.0, a request
// refused by the ACL, a head that is unusual, oversized or malformed in
// any way — is handed, before
// a byte of it is consumed, with its connection to net/http, which
// serves that connection from then on with every check and feature it
// has. Responses the lane does not parse (chunked or unframed bodies,
// long heads) are read with http.ReadResponse. The lane is off for
// listeners with a middleware, a redirect or client certificate
// headers. With sticky sessions it reads and rewrites the session
// cookie as net/http's lane does (package session).

// clientConn is one client connection at the front door. Only its own
// goroutine touches its fields; a stop uses state, back and raw.
type clientConn struct {
	f     *frontDoor
	c     net.Conn // raw, or the TLS connection over it
	raw   net.Conn
	hc    *connInfo
	state atomic.Int32
	back  atomic.Pointer[backendConn] // in use, for a forced stop to cut

	pending []byte      // the client's first bytes, read with its PROXY header
	counted bool        // in the listener's connection counts
	idle    *idleReader // plain HTTP: reads without a buffer while idle
	dateSec int64
	date    []byte

	// The exchange in progress, nil while the connection waits for a
	// request with nothing buffered: an idle connection holds no buffer.
	*reqState
}

// reqState is what a fast-lane connection needs only while it reads and
// answers requests: its read buffer and the parse of a request and of
// its response. Pooled, and dropped by a connection while it idles.
type reqState struct {
	sess    session.Session // the request's, with sticky sessions
	cookies []string        // its Cookie fields for the backend
	req     h1Request
	resp    h1Response
	generic *http.Response // a response head parseResponse declined
	bk      *backendConn   // the backend connection of the response
	gz      gzipHead       // the response head as the gzip rules read it (req.gzip)
	client  netip.AddrPort // the request's client (headerPlan.client)
	cut     xffCut         // where its X-Forwarded-For ends
	in      [4 << 10]byte
}

var reqStatePool = sync.Pool{New: func() any { return new(reqState) }}

// start does the TLS handshake on HTTPS, then gives the connection to
// net/http (HTTP/2, or HTTP/1 when the fast lane is off) or serves it.
func (cc *clientConn) start() {
	f := cc.f
	parked := false
	defer func() {
		if !parked { // else the poller's Wake carries the connection on
			f.conns.Done()
		}
	}()
	ok := f.s.proxyIn == nil || cc.readProxy(f.s.proxyIn)
	if f.tls != nil {
		ok = ok && cc.handshake()
		f.handshakes.Done()
	}
	if !ok {
		return
	}
	f.s.m.Active.Add(1)
	f.s.m.New.Add(1)
	cc.counted = true
	if !f.lane {
		cc.handOff(cc.pending)
		return
	}
	parked = cc.serve()
}

// handshake does the TLS handshake and reports whether the connection
// is the front door's to serve: false if the handshake failed (the
// connection is closed) or chose HTTP/2 (it went to net/http).
func (cc *clientConn) handshake() bool {
	f := cc.f
	var raw net.Conn = cc.c
	if f.s.proxyIn != nil {
		// HTTP/2 goes to net/http as a *tls.Conn, whose addresses
		// must be the client's.
		raw = &proxiedConn{Conn: cc.c, pending: cc.pending, hc: cc.hc}
		cc.pending = nil
	}
	tc := tls.Server(raw, f.tls)
	tc.SetDeadline(time.Now().Add(f.s.sc.HeaderTimeout))
	if err := tc.HandshakeContext(f.s.ctx); err != nil {
		f.s.log.Debug("TLS handshake failed", "client", cc.hc.src, "err", err)
		cc.c.Close()
		cc.forget()
		return false
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	cc.c, cc.hc.tls = tc, &cs
	if cs.NegotiatedProtocol == "h2" {
		cc.forget()
		if !f.h2.push(tc) {
			tc.Close()
		}
		return false
	}
	return true
}

// readProxy reads the PROXY header of a trusted balancer in front
// (ServerConfig.AcceptProxy), on the connection's goroutine, before the
// TLS handshake: the connection then stands for the client it names. It
// reports false, having closed the connection, when the header is
// refused.
func (cc *clientConn) readProxy(p *proxyin.Policy) bool {
	f := cc.f
	in, err := p.Read(f.s.ctx, cc.raw, cc.hc.src, cc.hc.dst)
	if err != nil {
		f.s.m.ProxyRefused.Add(1)
		f.s.log.Debug("PROXY header refused", "peer", cc.hc.src, "err", err)
		if tc, ok := cc.raw.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as a TCP listener's
		}
		cc.raw.Close()
		cc.forget()
		return false
	}
	if in.Proxied {
		cc.hc = newConnInfo(in.Src, in.Dst, f.tls != nil)
	}
	cc.pending = in.Pending
	return true
}

// proxiedConn is a connection that came with a PROXY header, under TLS:
// the handshake first reads the bytes that came with the header, and its
// addresses are the ones the header named.
type proxiedConn struct {
	net.Conn
	pending []byte
	hc      *connInfo
}

func (c *proxiedConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.hc.src) }
func (c *proxiedConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.hc.dst) }

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (cc *clientConn) close() {
	cc.c.Close()
	cc.forget()
	if cc.counted {
		cc.f.s.m.Active.Add(-1)
	}
}

func (cc *clientConn) forget() {
	cc.f.mu.Lock()
	delete(cc.f.open, cc)
	cc.f.mu.Unlock()
}

// handOff gives the connection, with the bytes read and not yet
// served, to the listener's net/http server, which reads it through a
// requestGuard.
func (cc *clientConn) handOff(pending []byte) {
	cc.forget() // still counted active, now by net/http's ConnState
	cc.f.handedOff.Add(1)
	cc.c.SetDeadline(time.Time{})
	var src io.Reader = cc.c
	if len(pending) > 0 {
		src = io.MultiReader(bytes.NewReader(append([]byte(nil), pending...)), cc.c)
	}
	hc := &handoffConn{Conn: cc.c, guard: newRequestGuard(src), hc: cc.hc}
	cc.f.s.h1conns.Add(1) // done when net/http closes it (connState)
	if !cc.f.h1.push(hc) {
		cc.f.s.h1conns.Done()
		cc.close()
	}
}

// serve reads and answers requests until the connection ends, leaves
// for net/http, or is parked: then it reports true, its goroutine ends,
// and the poller's Wake serves the connection on when its next request
// comes.
func (cc *clientConn) serve() (parked bool) {
	f := cc.f
	o := &f.s.sc
	cc.reqState = reqStatePool.Get().(*reqState)
	defer func() {
		if !parked { // a parked connection gave its state back first
			reqStatePool.Put(cc.reqState)
			cc.reqState = nil
		}
	}()
	buf := cc.in[:]
	r, w := 0, copy(buf, cc.pending) // bytes that came with a PROXY header
	cc.pending = nil
	wait := o.HeaderTimeout // for the first request, as net/http
	for {
		if r == w {
			r, w = 0, 0
			var n int
			if cc.c == cc.raw {
				// Plain HTTP: idle without a buffer, and past parkAfter
				// without a goroutine where the front door has a poller.
				n = cc.readOrPark(wait)
				if n < 0 {
					return true
				}
			} else {
				cc.c.SetReadDeadline(time.Now().Add(wait))
				n, _ = cc.readPlain() // a TLS record may already be buffered
			}
			buf = cc.in[:]
			if n == 0 {
				cc.close()
				return false
			}
			w = n
		}
		if !cc.state.CompareAndSwap(connIdle, connActive) {
			cc.close()
			return
		}
		v := parseRequest(buf[r:w], &f.opts, &cc.req)
		for deadline := false; v == h1More; v = parseRequest(buf[r:w], &f.opts, &cc.req) {
			if w == len(buf) {
				w = copy(buf, buf[r:w]) // r > 0: parseRequest declines a full buffer
				r = 0
			}
			if !deadline {
				cc.c.SetReadDeadline(time.Now().Add(o.HeaderTimeout))
				deadline = true
			}
			n, _ := cc.c.Read(buf[w:])
			if n == 0 {
				cc.close()
				return
			}
			w += n
		}
		if v == h1Complete {
			cc.req.raw = buf[r : r+cc.req.len]
			cc.client, cc.cut = f.s.c.plan.client(cc.hc.src, &cc.req)
		}
		if v == h1Decline || !f.s.host.Allow(cc.client.Addr()) {
			cc.handOff(buf[r:w])
			return false
		}
		f.served.Add(1)
		keep := cc.serveRequest()
		r += cc.req.len
		// A response that went out keep-alive before a stop began leaves
		// the connection idle under Retire — its next request is answered
		// with "Connection: close" — and closes it under Shutdown, whose
		// closeIdle may have run before it was idle.
		if !keep || !cc.state.CompareAndSwap(connActive, connIdle) || f.draining.Load() && !f.retiring.Load() {
			cc.close()
			return false
		}
		wait = o.IdleTimeout
	}
}

// parkAfter is how long a new plain-HTTP connection, or one that has
// carried one request, waits for its next with a goroutine before it is
// parked without one; a connection that has carried more waits
// parkAfterMax. A connection in use (a benchmark's, a page's burst of
// requests) sends its next request within that and costs no parking,
// whose cycle costs some tens of microseconds; one that idles (a browser
// between pages, an IoT device) costs a few hundred bytes instead of a
// goroutine's stack. The first waits are short because memory follows
// the peak: connections opened together each hold a goroutine until they
// park, and the runtime keeps the memory of the peak (bench/run.sh idle,
// one GET per connection: waiting 100 ms gave 5–6 KiB per idle
// connection, 20 ms 2.7 KiB, 5 ms 1.9–2.1 KiB). The later waits are long
// because a loaded proxy's clients may send their next request
// milliseconds late, and parking them between requests costs more CPU
// than it saves memory (a fixed 5 ms, or 5 ms per request carried, cost
// the l7 suites a third of their rate, each new keep-alive connection
// starting over).
const (
	parkAfter    = 5 * time.Millisecond
	parkAfterMax = 100 * time.Millisecond
)

// readOrPark reads the start of a plain-HTTP connection's next request,
// waiting at most wait: a grace (parkAfter, or parkAfterMax once it has
// carried two requests) with Go's poller, the rest parked in the front door's poller,
// if it has one. It returns the bytes read (0 at EOF, on an error or when
// wait passes), or -1 when the connection was parked: Wake carries it on.
func (cc *clientConn) readOrPark(wait time.Duration) int {
	now := time.Now()
	grace := parkAfterMax
	if cc.hc.reqs.Load() <= 1 {
		grace = parkAfter
	}
	if cc.f.poller == nil || wait <= grace {
		cc.c.SetReadDeadline(now.Add(wait))
		n, _ := cc.readIdle()
		return n
	}
	cc.c.SetReadDeadline(now.Add(grace))
	n, timedOut := cc.readIdle()
	if !timedOut {
		return n
	}
	if cc.park(wait - grace) {
		return -1
	}
	cc.c.SetReadDeadline(now.Add(wait))
	n, _ = cc.readIdle()
	return n
}

// park hands the idle connection, which holds no unread bytes, to the
// front door's poller until its next request comes or wait passes, and
// reports whether it did. Its request state goes back to the pool first:
// from Park on, Wake may run on another goroutine.
func (cc *clientConn) park(wait time.Duration) bool {
	if cc.idle == nil || cc.idle.fd < 0 || !cc.state.CompareAndSwap(connIdle, connParked) {
		return false // a stop is closing it
	}
	reqStatePool.Put(cc.reqState)
	cc.reqState = nil
	if _, err := cc.f.poller.Park(cc.idle.fd, time.Now().Add(wait), cc); err != nil {
		cc.reqState = reqStatePool.Get().(*reqState)
		cc.state.CompareAndSwap(connParked, connIdle)
		return false
	}
	return true
}

// Wake carries a parked connection on (netpoll.Waker): its next request
// has come, or the peer hung up, and serve reads it; else the idle
// timeout passed or the front door is stopping, and it closes — but for
// a connection that has carried no request yet, which a stop gives
// freshGrace to send its first: it waits on a goroutine of its own, as
// the poller's Close waits for every Wake.
func (cc *clientConn) Wake(r netpoll.Reason) {
	f := cc.f
	serve := func() {
		if !cc.serve() {
			f.conns.Done()
		}
	}
	switch {
	case (r == netpoll.Readable || r == netpoll.Hangup) && cc.state.CompareAndSwap(connParked, connIdle):
		serve()
		return
	case r == netpoll.Closed && cc.hc.reqs.Load() == 0 && cc.state.CompareAndSwap(connParked, connIdle):
		go serve()
		return
	}
	cc.state.Store(connClosed)
	cc.close()
	f.conns.Done()
}

// readPlain reads the start of the next request into the connection's
// buffer: n is 0 at EOF, on an error or when the read deadline passes,
// which timedOut reports.
func (cc *clientConn) readPlain() (n int, timedOut bool) {
	n, err := cc.c.Read(cc.in[:])
	return n, err != nil && n == 0 && netx.IsTimeout(err)
}

// serveRequest proxies the parsed request and reports whether the
// connection may carry another.
func (cc *clientConn) serveRequest() bool {
	s := cc.f.s
	q := &cc.req
	start := time.Now()
	keep := !s.lastRequest(cc.hc, 1) && !q.close
	g, k := s.route(cc.client, cc.hc, unsafeString(q.host), unsafeString(q.path), (*h1View)(q))
	cc.sess, cc.cookies = session.Session{}, nil
	if s.c.sticky != nil {
		// The session package works on header maps: only the Cookie
		// fields go into one, and what it leaves is forwarded.
		h := http.Header{}
		for _, v := range q.cookie[:q.ncookie] {
			h["Cookie"] = append(h["Cookie"], string(q.raw[v.start:v.end]))
		}
		cc.sess = s.sticky(h)
		cc.cookies = h["Cookie"]
	}
	f, ok, stopped, err := s.forward(s.ctx, g, k, cc.sess.ID, cc)
	if !ok {
		if stopped {
			return false
		}
		code, msg := s.failure(err)
		return cc.fail(code, msg, keep, start)
	}
	keep = cc.respond(cc.bk, f.m.ID(), f.bc, f.at.Start(), start, keep)
	cc.bk, cc.gz = nil, gzipHead{} // no view into the backend's buffer stays
	f.done()
	return keep
}

// try sends the request to m and reads the response head (exchanger).
func (cc *clientConn) try(m *balancer.Member) error {
	var err error
	cc.bk, err = cc.exchange(m.Addr())
	return err
}

// failure classifies a failed try: the fast lane's requests (GET and
// HEAD without a body) may be sent again.
func (cc *clientConn) failure(err error) attempt.Failure { return requestFailure(err, true) }

// drop closes the backend connection of a response the loop could not
// use.
func (cc *clientConn) drop() {
	cc.back.Store(nil)
	cc.bk.c.Close()
}

// exchange sends the request to addr on a pooled connection (or a new
// one) and reads the response head. A pooled connection the backend had
// closed is replaced by a new one; GET and HEAD may be sent again.
func (cc *clientConn) exchange(addr string) (*backendConn, error) {
	p := cc.f.s.pool
	list := p.list(addr)
	bk := p.get(list)
	for {
		reused := bk != nil
		if !reused {
			var err error
			if bk, err = p.dial(cc.f.s.ctx, addr, list); err != nil {
				return nil, err
			}
		}
		cc.back.Store(bk)
		err := cc.send(bk)
		if err == nil {
			return bk, nil
		}
		cc.back.Store(nil)
		bk.c.Close()
		if !reused || netx.IsTimeout(err) || cc.f.s.ctx.Err() != nil {
			return nil, err
		}
		bk = nil
	}
}

var errInformational = errors.New("listener: unexpected informational response from backend")

// send writes the request head to bk and reads the response head into
// cc.resp, or into cc.generic if parseResponse declines it.
func (cc *clientConn) send(bk *backendConn) error {
	s := cc.f.s
	q := &cc.req
	bk.c.SetDeadline(time.Now().Add(s.c.o.RequestTimeout))
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
	for _, v := range cc.cookies {
		w.WriteString("Cookie: ")
		w.WriteString(v)
		w.WriteString("\r\n")
	}
	p := &s.c.plan
	if p.xff {
		w.WriteString("X-Forwarded-For: ")
		if c := cc.cut; c != noCut {
			for _, v := range q.xff[:c.line] {
				w.Write(q.raw[v.start:v.end])
				w.WriteString(", ")
			}
			w.WriteString(q.xffField(c.line)[:c.end])
		} else {
			for _, v := range q.xff[:q.nxff] {
				w.Write(q.raw[v.start:v.end])
				w.WriteString(", ")
			}
			w.WriteString(cc.hc.ip[0])
		}
		w.WriteString("\r\n")
	}
	for i := range p.set {
		f := &p.set[i]
		w.WriteString(f.name)
		w.WriteString(": ")
		w.WriteString(p.value(f, cc.hc, &s.who)[0])
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if err := w.Flush(); err != nil {
		return err
	}

	cc.generic = nil
	br := bk.br
	for want := 1; ; want = br.Buffered() + 1 {
		if _, err := br.Peek(want); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		b, _ := br.Peek(br.Buffered())
		switch parseResponse(b, &cc.resp, cc.gzipHead(), s.dropsBackendAltSvc()) {
		case h1Complete:
			if cc.resp.length >= 0 || cc.resp.bodiless(q.head) {
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
	cc.generic = resp
	return nil
}

// respond sends the response read by send to the client and reports
// whether the client connection may carry another request.
func (cc *clientConn) respond(bk *backendConn, id string, bc *stats.Backend, sent, start time.Time, keep bool) bool {
	s := cc.f.s
	keep = keep && !cc.f.draining.Load() // a stopping listener closes after the response
	up := time.Since(sent)
	s.m.UpstreamN.Add(1)
	s.m.UpstreamNS.Add(int64(up))
	bc.UpstreamN.Add(1)
	bc.UpstreamNS.Add(int64(up))
	if cc.generic != nil {
		return cc.respondGeneric(bk, id, bc, up, start, keep)
	}
	p := &cc.resp
	s.m.CountStatus(p.status)
	bc.CountStatus(p.status)
	br := bk.br
	head, _ := br.Peek(p.len)

	var edit gzipEdit // with gzip: the head's change, and whether to compress
	if cc.req.gzip {
		edit = cc.gzipEdit(br)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := append((*bp)[:0], "HTTP/1.1"...)
	out = append(out, p.line...)
	out = append(out, "\r\n"...)
	st := s.c.sticky
	var setCookies []string // with sticky sessions, the Set-Cookie fields
	for _, ln := range p.keep[:p.nkeep] {
		line := head[ln.start:ln.end]
		if edit.compress && edit.drops(unsafeString(line[:bytes.IndexByte(line, ':')])) {
			continue
		}
		if st != nil && len(line) > len("set-cookie:") && equalFold(line[:len("set-cookie:")], "set-cookie:") {
			v, _, _ := fieldValue(line[len("set-cookie:") : len(line)-2])
			setCookies = append(setCookies, string(v))
			continue
		}
		out = append(out, line...)
	}
	if st != nil {
		h := http.Header{}
		if setCookies != nil {
			h["Set-Cookie"] = setCookies
		}
		st.Response(h, cc.sess, id, s.https)
		for _, v := range h["Set-Cookie"] {
			out = append(out, "Set-Cookie: "...)
			out = append(out, v...)
			out = append(out, "\r\n"...)
		}
	}
	if !p.hasDate {
		out = cc.appendDate(out, start)
	}
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, s.altLine...)
	out = edit.appendLines(out)
	br.Discard(p.len)
	if edit.compress {
		return cc.respondGzip(bk, id, bc, up, start, keep, out) && keep
	}
	out = append(out, "\r\n"...)

	// The body: what is buffered goes out with the head, the rest as it
	// comes.
	left := p.length
	if p.bodiless(cc.req.head) {
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
		cc.log(p.status, sentBody, id, up, start)
		cc.release(bk, true)
	}
	err := cc.write(out, int(inline), bc)
	for err == nil && left > 0 {
		bk.c.SetReadDeadline(time.Now().Add(s.c.o.RequestTimeout))
		n, rerr := br.Read((*bp)[:min(int64(cap(*bp)), left)])
		left -= int64(n)
		sentBody += int64(n)
		if rerr != nil && left > 0 {
			err = rerr
		}
		if left == 0 || err != nil {
			cc.log(p.status, sentBody, id, up, start)
		}
		if left == 0 {
			cc.release(bk, rerr == nil)
		}
		if werr := cc.write((*bp)[:n], n, bc); err == nil {
			err = werr
		}
	}
	if left > 0 {
		cc.release(bk, false) // the backend or the client failed
	}
	return keep && err == nil
}

// gzipHead is where parseResponse puts what the gzip rules read of the
// response head: the request's state, or nil when the client does not
// accept gzip.
func (cc *clientConn) gzipHead() *gzipHead {
	if cc.req.gzip {
		return &cc.gz
	}
	return nil
}

// gzipEdit applies the gzip rules (gzip.go) to the response head cc.resp
// for a client that accepts gzip: the change to make to the head, and
// whether to compress. A head without Content-Type is decided on its
// first bytes, as the general lane decides it.
func (cc *clientConn) gzipEdit(br *bufio.Reader) gzipEdit {
	p := &cc.resp
	h := &cc.gz // filled by parseResponse
	v := gzipCLB.decide(h, nil, gzipMore)
	if v == gzipWait { // no Content-Type: sniff the first bytes
		k := int(min(p.length, 512))
		body, _ := br.Peek(p.len + k)
		stage := gzipMore
		if int64(k) == p.length {
			stage = gzipEnd
		}
		v = gzipCLB.decide(h, body[min(p.len, len(body)):], stage)
	}
	return h.edit(v == gzipCompress)
}

// respondGzip sends the body of cc.resp, of known length, gzip-coded
// after out, its head less the framing and the blank line: a body that
// fits a buffer goes in one write with its coded length, a longer one
// chunked as it is coded. It reports whether the whole response went
// out. Counters and the access log count the body as the backend sent
// it, as in the general lane.
func (cc *clientConn) respondGzip(bk *backendConn, id string, bc *stats.Backend, up time.Duration, start time.Time, keep bool, out []byte) bool {
	p := &cc.resp
	rp := bufPool.Get().(*[]byte)
	defer bufPool.Put(rp)
	raw := *rp
	left := p.length
	if left <= int64(len(raw)) {
		if err := cc.readBody(bk, raw[:left]); err != nil {
			cc.log(p.status, 0, id, up, start)
			cc.release(bk, false)
			return false
		}
		cc.log(p.status, left, id, up, start)
		cc.release(bk, true)
		zp := bufPool.Get().(*[]byte)
		defer bufPool.Put(zp)
		z := gzipAppend((*zp)[:0], raw[:left])
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(z)), 10)
		out = append(out, "\r\n\r\n"...)
		if len(out)+len(z) <= cap(out) {
			return cc.write(append(out, z...), int(left), bc) == nil
		}
		return cc.write(out, 0, bc) == nil && cc.write(z, int(left), bc) == nil
	}
	out = append(out, "Transfer-Encoding: chunked\r\n\r\n"...)
	if cc.write(out, 0, bc) != nil {
		cc.release(bk, false)
		return false
	}
	g := newGzipChunked(cc.c)
	sent := int64(0)
	for left > 0 {
		chunk := raw[:min(int64(len(raw)), left)]
		if err := cc.readBody(bk, chunk); err != nil {
			break
		}
		left -= int64(len(chunk))
		sent += int64(len(chunk))
		if left == 0 {
			cc.log(p.status, sent, id, up, start)
			cc.release(bk, true)
		}
		if _, err := g.Write(chunk); err != nil {
			break
		}
		cc.count(len(chunk), bc)
	}
	if left > 0 { // the backend or the client failed: cut the response
		cc.log(p.status, sent, id, up, start)
		cc.release(bk, false)
		g.Abort()
		return false
	}
	return g.Close() == nil
}

// readBody fills dst from the backend's response body, waiting at most
// the request timeout for each read.
func (cc *clientConn) readBody(bk *backendConn, dst []byte) error {
	for len(dst) > 0 {
		bk.c.SetReadDeadline(time.Now().Add(cc.f.s.c.o.RequestTimeout))
		n, err := bk.br.Read(dst)
		dst = dst[n:]
		if err != nil && len(dst) > 0 {
			return err
		}
	}
	return nil
}

// release ends the use of a backend connection whose response has been
// read: back to the pool if reuse is true and the backend allows, else
// closed.
func (cc *clientConn) release(bk *backendConn, reuse bool) {
	cc.back.Store(nil)
	if reuse && !cc.resp.close && bk.br.Buffered() == 0 {
		cc.f.s.pool.put(bk)
	} else {
		bk.c.Close()
	}
}

// write sends out, whose last n bytes are body, to the client, counting
// the body first and pacing it after.
func (cc *clientConn) write(out []byte, n int, bc *stats.Backend) error {
	s := cc.f.s
	s.count(bc, true, n)
	_, err := cc.c.Write(out)
	s.host.Pay(s.ctx, true, n)
	return err
}

// count counts n body bytes sent and pays the bandwidth cap for them.
func (cc *clientConn) count(n int, bc *stats.Backend) {
	s := cc.f.s
	s.count(bc, true, n)
	s.host.Pay(s.ctx, true, n)
}

// respondGeneric sends a response that http.ReadResponse read: chunked
// (re-chunked to the client, trailers included), unframed (sent until
// the backend closes, then the client connection closes too) or with a
// head parseResponse declined.
func (cc *clientConn) respondGeneric(bk *backendConn, id string, bc *stats.Backend, up time.Duration, start time.Time, keep bool) bool {
	s := cc.f.s
	resp := cc.generic
	cc.generic = nil
	s.m.CountStatus(resp.StatusCode)
	bc.CountStatus(resp.StatusCode)
	h := make(http.Header, len(resp.Header)+1)
	copyResponseHeader(h, resp.Header)
	s.advertiseH3(h, 1)
	if st := s.c.sticky; st != nil {
		st.Response(h, cc.sess, id, s.https)
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{start.UTC().Format(http.TimeFormat)}
	}
	cw := bufio.NewWriterSize(cc.c, 4<<10)
	body := &genericBody{cc: cc, bk: bk, bc: bc, rc: resp.Body, cw: cw}
	unframed := resp.ContentLength < 0 && !(len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked") &&
		!(cc.req.head || resp.StatusCode == 204 || resp.StatusCode == 304)
	var out io.ReadCloser = body
	if cc.req.gzip {
		compress, err := cc.gzipGeneric(resp, h, body)
		if err != nil {
			cc.log(resp.StatusCode, body.n, id, up, start)
			cc.back.Store(nil)
			bk.c.Close()
			resp.Body.Close()
			return false
		}
		if compress {
			// Coded and chunked to the client: an unframed body ends
			// with the last chunk, the connection may stay.
			out, unframed = newGzipReader(body), false
			resp.ContentLength, resp.TransferEncoding = -1, []string{"chunked"}
		}
	}
	keep = keep && !unframed
	backendCloses := resp.Close
	resp.Header, resp.Body, resp.Close = h, out, !keep
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	// Write through a plain io.Writer: bufio.Writer.ReadFrom would read
	// the body into the buffer that genericBody.Read flushes.
	err := resp.Write(struct{ io.Writer }{cw})
	// The log and the backend connection before the last of the
	// response goes out, as in respond.
	cc.log(resp.StatusCode, body.n, id, up, start)
	cc.back.Store(nil)
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

// gzipGeneric applies the gzip rules to a response http.ReadResponse
// read, whose client header is h: it edits h and reports whether to
// compress. A response of unknown length or without Content-Type is
// decided on its first bytes, read ahead through body and given back to
// it, as the general lane decides it.
func (cc *clientConn) gzipGeneric(resp *http.Response, h http.Header, body *genericBody) (bool, error) {
	gh := headOf(resp.StatusCode, h)
	v := gzipCLB.decide(&gh, nil, gzipMore)
	if v == gzipWait {
		buf := make([]byte, max(gzipCLB.minSize, 512))
		n, err := io.ReadFull(body, buf)
		stage := gzipMore
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			stage = gzipEnd
		case err != nil:
			return false, err
		}
		body.ahead = buf[:n]
		v = gzipCLB.decide(&gh, body.ahead, stage)
	}
	e := gh.edit(v == gzipCompress)
	e.apply(h)
	return e.compress, nil
}

// genericBody is a backend response body on its way to the client: each
// read first flushes what was written before it, so a streamed response
// stays streamed, and waits at most the request timeout.
type genericBody struct {
	ahead []byte // read ahead to decide on gzip, given out first
	cc    *clientConn
	bk    *backendConn
	bc    *stats.Backend
	rc    io.ReadCloser
	cw    *bufio.Writer
	n     int64
	eof   bool
}

func (b *genericBody) Read(p []byte) (int, error) {
	if len(b.ahead) > 0 {
		n := copy(p, b.ahead)
		b.ahead = b.ahead[n:]
		return n, nil
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.cw.Buffered() > 0 {
		if err := b.cw.Flush(); err != nil {
			return 0, err
		}
	}
	b.bk.c.SetReadDeadline(time.Now().Add(b.cc.f.s.c.o.RequestTimeout))
	n, err := b.rc.Read(p)
	b.n += int64(n)
	s := b.cc.f.s
	s.count(b.bc, true, n)
	s.host.Pay(s.ctx, true, n)
	b.eof = err == io.EOF
	return n, err
}

func (b *genericBody) Close() error { return nil }

// fail answers with the listener's own small plain-text error.
func (cc *clientConn) fail(code int, msg string, keep bool, start time.Time) bool {
	keep = keep && !cc.f.draining.Load()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := append((*bp)[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(code)...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n"...)
	out = cc.appendDate(out, start)
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, cc.f.s.altLine...)
	out = append(out, "\r\n"...)
	if !cc.req.head {
		out = append(out, msg...)
	}
	cc.f.s.m.CountStatus(code) // before the client can see it
	cc.log(code, int64(len(msg)), "", 0, start)
	_, err := cc.c.Write(out)
	return keep && err == nil
}

// appendDate appends a Date field for t, formatted once a second.
func (cc *clientConn) appendDate(out []byte, t time.Time) []byte {
	if sec := t.Unix(); sec != cc.dateSec || cc.date == nil {
		cc.dateSec = sec
		cc.date = t.UTC().AppendFormat(append(cc.date[:0], "Date: "...), http.TimeFormat)
		cc.date = append(cc.date, "\r\n"...)
	}
	return append(out, cc.date...)
}

// log writes the access-log record of a request, if the log is on.
func (cc *clientConn) log(status int, n int64, backend string, up time.Duration, start time.Time) {
	s := cc.f.s
	if s.c.o.AccessLog == nil {
		return
	}
	method := http.MethodGet
	if cc.req.head {
		method = http.MethodHead
	}
	s.logRequest(s.ctx, accessEntry{
		client: cc.client, method: method, host: string(cc.req.host), path: string(cc.req.path), proto: "HTTP/1.1",
	}, status, n, backend, up, start)
}
