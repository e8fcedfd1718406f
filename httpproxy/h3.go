package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// DefaultAltSvcMaxAge is how long a client may remember the Alt-Svc
// advertisement of HTTP/3 (ServerConfig.AltSvcMaxAge): a day, as
// Cloudflare and Google advertise. The advertisement is a hint — a
// client that finds the UDP port closed falls back to TCP at once — so
// a long age costs little when HTTP/3 is switched off, while a short
// one makes clients relearn it after every lapse; quic-go's 30 days is
// longer than an operator switching HTTP/3 off should have to wait.
const DefaultAltSvcMaxAge = 24 * time.Hour

// errACLRefused is how the QUIC handshake of a client the ACL refuses
// fails: quic-go answers it with a CONNECTION_CLOSE.
var errACLRefused = errors.New("httpproxy: client address refused by the access control list")

// h3Server is the HTTP/3 side of a listener-tier server: a QUIC
// transport on ServerConfig.QUIC whose connections it accepts itself
// and serves one by one (h3Conn), each by quic-go's http3.Server,
// through the same handler as HTTP/2 (serveFront).
type h3Server struct {
	s        *server
	pc       net.PacketConn
	tr       *quic.Transport
	ln       *quic.Listener
	limit    *handshakeLimit
	accepted chan struct{}  // closed when the accept loop has returned
	bg       sync.WaitGroup // connections' goroutines

	mu    sync.Mutex
	conns map[*h3Conn]struct{} // open connections, for shutdown
}

// quicTransport is the one place the QUIC transport of a front end is
// made: what decides connection IDs and source-address validation goes
// here.
func quicTransport(pc net.PacketConn, sc *ServerConfig) *quic.Transport {
	return &quic.Transport{Conn: pc, ConnectionIDGenerator: sc.QUICConnIDs,
		StatelessResetKey: sc.QUICKeys.StatelessReset, TokenGeneratorKey: sc.QUICKeys.Token}
}

// startH3 serves HTTP/3 on pc with the server's TLS config, forced to
// TLS 1.3 and ALPN h3. A client the ACL refuses fails its handshake at
// the ClientHello (quic-go sends the CONNECTION_CLOSE), before any
// stream; RefusedACL counts it once, as the TCP side counts a refused
// connection.
func (s *server) startH3(pc net.PacketConn) (*h3Server, error) {
	tlsConf := s.sc.TLS.Clone()
	inner := tlsConf.GetConfigForClient
	tlsConf.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		// quic-go sets Conn to one that knows the addresses.
		if hi.Conn != nil && !s.host.Allow(addrPortOf(hi.Conn.RemoteAddr()).Addr().Unmap()) {
			s.m.RefusedACL.Add(1)
			return nil, errACLRefused
		}
		if inner != nil {
			return inner(hi)
		}
		return nil, nil
	}
	tlsConf = http3.ConfigureTLSConfig(tlsConf) // NextProtos h3, on per-client configs too
	// QUIC's idle timeout says the client is gone; whether it still
	// sends requests is the connection's own timer (h3Conn). Our PINGs
	// keep a connection whose request waits on a slow backend alive:
	// QUIC would otherwise close it, silent both ways, under the
	// request; a client that has vanished leaves them unanswered.
	qc := &quic.Config{
		MaxIdleTimeout:       s.sc.IdleTimeout,
		KeepAlivePeriod:      s.sc.IdleTimeout / 2,
		HandshakeIdleTimeout: s.sc.HeaderTimeout,
	}
	h := &h3Server{s: s, pc: pc, tr: quicTransport(pc, &s.sc), accepted: make(chan struct{}), conns: map[*h3Conn]struct{}{}}
	h.limit = newHandshakeLimit(s.sc.MaxQUICHandshakes, s.m)
	h.limit.install(h.tr)
	ln, err := h.tr.Listen(tlsConf, qc)
	if err != nil {
		h.tr.Close()
		return nil, err
	}
	h.ln = ln
	go h.acceptLoop()
	return h, nil
}

// acceptLoop serves each QUIC connection the listener completes, until
// the listener closes.
func (h *h3Server) acceptLoop() {
	defer close(h.accepted)
	for {
		qc, err := h.ln.Accept(context.Background())
		if err != nil {
			return
		}
		h.serve(qc)
	}
}

// serve starts serving qc: its counters, its idle timer, its own
// http3.Server.
func (h *h3Server) serve(qc *quic.Conn) {
	s := h.s
	releaseHandshake(qc)
	s.m.Active.Add(1)
	s.m.New.Add(1)
	hc := newConnInfo(addrPortOf(qc.RemoteAddr()), addrPortOf(qc.LocalAddr()), true)
	cs := qc.ConnectionState().TLS
	hc.tls = &cs
	c := &h3Conn{qc: qc, bg: &h.bg}
	c.timeout.Store(int64(s.sc.IdleTimeout))
	hc.h3 = c
	c.srv = h.httpServer(hc)
	c.idle = time.AfterFunc(s.sc.IdleTimeout, c.idleExpired)
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	h.bg.Go(func() {
		if err := c.srv.ServeQUICConn(qc); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Debug("http3 connection ended", "err", err)
		}
		// A shutdown that came before the connection was served leaves
		// it open (ServeQUICConn returns at once); else this is a no-op.
		c.close("server stopping")
		c.idle.Stop()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		s.m.Active.Add(-1)
	})
}

// httpServer is the one place the http3.Server of a connection hc is
// made. Its own idle timeout is off: the connection's (h3Conn) is the
// stricter one.
func (h *h3Server) httpServer(hc *connInfo) *http3.Server {
	return &http3.Server{
		Handler:        http.HandlerFunc(h.s.serveFront),
		MaxHeaderBytes: h.s.sc.MaxHeaderBytes,
		Logger:         h.s.log,
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			return withConn(ctx, hc)
		},
	}
}

// shutdown sends every connection a GOAWAY, lets its streams in flight
// finish until ctx is done, closes what is left, then the transport and
// the socket. Stopping, it closes the connections with no request in
// the handler as soon as what they sent can have been acknowledged
// (h3Conn.closeSoon): nothing will serve them. Retiring, it does
// not: a request a client sends on an idle connection as it closes
// would fail, while one that races the GOAWAY is reset unprocessed
// (H3_REQUEST_REJECTED) and the client retries it on a new connection —
// the successor's. Clients close a connection once its GOAWAY came and
// its requests are done (RFC 9114 §5.2), the idle timer closes the
// others. (On a socket it shares with a successor, the server keeps
// reading the successor's datagrams as well as its own until then,
// unless its socket sorts them, as a quichandoff.Conn does.) A nil h
// has nothing to stop.
func (h *h3Server) shutdown(ctx context.Context, retire bool) error {
	if h == nil {
		return nil
	}
	// The QUIC listener first: until it closes, the transport completes
	// handshakes and queues connections no one will accept — a
	// successor's clients among them, on a shared socket.
	h.ln.Close()
	<-h.accepted // no connection joins h.conns from now on
	h.mu.Lock()
	conns := make([]*h3Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	errs := make(chan error, len(conns))
	for _, c := range conns {
		if !retire {
			c.closeSoon()
		}
		h.bg.Go(func() { errs <- c.shutdown(ctx) })
	}
	var err error
	for range conns {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	h.bg.Wait()
	h.tr.Close()
	h.pc.Close()
	return err
}

// altSvcHeader returns the Alt-Svc field advertising HTTP/3 on port
// for maxAge, as the value net/http's lane sets and as the line the
// fast lane appends.
func altSvcHeader(port int, maxAge time.Duration) (value []string, line []byte) {
	v := `h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return []string{v}[:1:1], []byte("Alt-Svc: " + v + "\r\n")
}

// advertiseH3 sets the Alt-Svc field of a response to a request of
// protocol version protoMajor, to be called once the backend's fields,
// if any, are in h. A server that serves HTTP/3 replaces the backend's
// own Alt-Svc: it names the backend's port, which clients cannot reach
// through us (HAProxy's documented setup replaces the field too). Its
// HTTP/1.1 and HTTP/2 responses carry our advertisement alone, its
// HTTP/3 ones none. Without HTTP/3 the backend's field passes as it is.
// The fast lane applies the same rule while it copies a response head
// (parseResponse's dropAltSvc).
func (s *server) advertiseH3(h http.Header, protoMajor int) {
	if !s.dropsBackendAltSvc() {
		return
	}
	if protoMajor == 3 {
		delete(h, "Alt-Svc")
		return
	}
	h["Alt-Svc"] = s.altSvc
}

// dropsBackendAltSvc reports whether a backend's Alt-Svc field is
// dropped from its responses (see advertiseH3).
func (s *server) dropsBackendAltSvc() bool { return s.altSvc != nil }

// flushH3 hands what the response writer w of an HTTP/3 request still
// buffers to QUIC.
func flushH3(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
