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
// transport on ServerConfig.QUIC and net/http-style serving of its
// connections by quic-go's http3.Server, through the same handler as
// HTTP/2 (serveFront).
type h3Server struct {
	pc     net.PacketConn
	tr     *quic.Transport
	ln     *quic.Listener
	srv    *http3.Server
	served chan struct{} // closed when ServeListener has returned
	limit  *handshakeLimit

	mu    sync.Mutex
	conns map[*quic.Conn]*connInfo // open connections, for shutdown
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
	qc := &quic.Config{
		MaxIdleTimeout:       s.sc.IdleTimeout,
		HandshakeIdleTimeout: s.sc.HeaderTimeout,
	}
	h := &h3Server{pc: pc, tr: quicTransport(pc, &s.sc), served: make(chan struct{}), conns: map[*quic.Conn]*connInfo{}}
	h.limit = newHandshakeLimit(s.sc.MaxQUICHandshakes, s.m)
	h.limit.install(h.tr)
	ln, err := h.tr.Listen(tlsConf, qc)
	if err != nil {
		h.tr.Close()
		return nil, err
	}
	h.ln = ln
	h.srv = &http3.Server{
		Handler:        http.HandlerFunc(s.serveFront),
		MaxHeaderBytes: s.sc.MaxHeaderBytes,
		IdleTimeout:    s.sc.IdleTimeout,
		Logger:         s.log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			releaseHandshake(c)
			hc := newConnInfo(addrPortOf(c.RemoteAddr()), addrPortOf(c.LocalAddr()), true)
			cs := c.ConnectionState().TLS
			hc.tls = &cs
			s.m.Active.Add(1)
			s.m.New.Add(1)
			h.mu.Lock()
			h.conns[c] = hc
			h.mu.Unlock()
			context.AfterFunc(c.Context(), func() {
				s.m.Active.Add(-1)
				h.mu.Lock()
				delete(h.conns, c)
				h.mu.Unlock()
			})
			return withConn(ctx, hc)
		},
	}
	go func() {
		defer close(h.served)
		if err := h.srv.ServeListener(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http3 server stopped", "err", err)
		}
	}()
	return h, nil
}

// shutdown sends every connection a GOAWAY, lets its streams in flight
// finish until ctx is done, closes what is left, then the transport and
// the socket. It closes at once the connections with no request in
// the handler, retiring or not: a successor that took over the socket
// shares its datagrams with this transport for as long as it reads, so
// the sooner it stops the fewer of the successor's packets it swallows;
// and a QUIC client that finds its idle connection closed opens a new
// one for its next request. A nil h has nothing to stop.
func (h *h3Server) shutdown(ctx context.Context) error {
	if h == nil {
		return nil
	}
	// The QUIC listener first: until it closes, the transport completes
	// handshakes and queues connections no one will accept — a
	// successor's clients among them, on a shared socket.
	h.ln.Close()
	stopped := make(chan error, 1)
	go func() { stopped <- h.srv.Shutdown(ctx) }()
	h.mu.Lock()
	for c, hc := range h.conns {
		if hc.streams.Load() == 0 {
			c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "server stopping")
		}
	}
	h.mu.Unlock()
	err := <-stopped
	<-h.served
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

// rejectH3 resets the stream of an HTTP/3 request beyond its
// connection's HTTP2MaxRequestsPerConnection with H3_REQUEST_REJECTED:
// the request was not processed, so the client may retry it on a new
// connection (RFC 9114 §4.1.1; quic-go's client does at once). The old
// connection, which the client stops using, closes at its idle
// timeout. (The limit sends no GOAWAY: http3.Server keeps the control
// stream that would carry it to itself.)
func rejectH3(w http.ResponseWriter) {
	hs, ok := w.(http3.HTTPStreamer)
	if !ok {
		return
	}
	if str, err := hs.HTTPStream(); err == nil {
		str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
		str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
	}
}
