package httpproxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/proxyin"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/quic-go/quic-go"
)

// Defaults of ServerConfig, used for zero fields.
const (
	DefaultIdleTimeout          = 15 * time.Second
	DefaultHeaderTimeout        = 10 * time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultMaxURIBytes          = 8 << 10
	DefaultMaxKeepAliveRequests = 100
	// DefaultHTTP2MaxRequestsPerConnection is nginx's keepalive_requests
	// default: browsers multiplex hundreds of requests over one HTTP/2
	// connection, so it is far above the HTTP/1.x limit.
	DefaultHTTP2MaxRequestsPerConnection = 1000
)

// ServerConfig configures the listener tier: what only the owner of the
// client connections decides. Zero fields take the defaults above.
// NewServer refuses a bad AcceptProxy; the other values are the caller's
// to validate (package listener's Config does).
type ServerConfig struct {
	IdleTimeout                   time.Duration // closes an idle keep-alive connection
	HeaderTimeout                 time.Duration // bounds reading a request head and the TLS handshake
	MaxHeaderBytes                int           // a larger request head is answered 431
	MaxURIBytes                   int           // a longer request target is answered 414
	MaxKeepAliveRequests          int           // requests per HTTP/1.x connection
	HTTP2MaxRequestsPerConnection int           // requests (streams) per HTTP/2 connection
	// RedirectToPort, if not 0, answers every request with a redirect to
	// https on that port, contacting no backend.
	RedirectToPort int
	// Middleware, if set, wraps the proxy: every request that passed the
	// ACL goes through it. It takes requests off the fast lane.
	Middleware func(http.Handler) http.Handler
	// TLS, if set, makes the server HTTPS: its handshakes use this
	// config, whose NextProtos decide whether HTTP/2 is offered.
	TLS *tls.Config
	// Identity, if set, replaces Options.Identity: package listener
	// names its instance here.
	Identity Identity
	// ServiceAddr, if set, is the destination the hash key carries
	// instead of the connection's local address (Config.ServiceAddr of
	// package listener).
	ServiceAddr netip.AddrPort
	// NoFastLane serves every request through net/http, for comparisons
	// and as a way out should the fast lane ever misbehave.
	NoFastLane bool
	// AcceptProxy reads the PROXY header of the trusted balancers in
	// front before the TLS handshake: the connection then stands for the
	// client the header names, for every request it carries (see
	// AcceptProxy). If its From is empty, no header is read.
	AcceptProxy AcceptProxy
	// QUIC, if set with TLS, is a UDP socket the server also serves
	// HTTP/3 on, through the same handler as HTTP/2: TLS is used as is
	// (certificates, client CAs), forced to TLS 1.3 and ALPN h3. The ACL
	// is checked at the client's first packet: a refused client gets a
	// CONNECTION_CLOSE and no stream. AcceptProxy does not apply to it.
	// The server owns the socket: Shutdown and Retire close it.
	QUIC net.PacketConn
	// QUICConnIDs, if set, issues the connection IDs of QUIC's
	// connections: a *quiclb.Generator, so that several front ends
	// behind a QUIC-LB-aware router (a UDP listener of package listener
	// with qch and a quiclb.Router) keep a migrating client on the
	// front end that holds its connection. If nil, quic-go's random
	// IDs, which such a router cannot route. Only with QUIC.
	QUICConnIDs quic.ConnectionIDGenerator
	// QUICKeys are QUIC's token secrets (see QUICKeys): set the same on
	// every replica of a fleet. If zero, no stateless resets and a
	// random token key. Only with QUIC.
	QUICKeys QUICKeys
	// AltSvcMaxAge is the max-age of the Alt-Svc field that advertises
	// HTTP/3 on QUIC's port in every HTTP/1.1 and HTTP/2 response. If
	// zero, DefaultAltSvcMaxAge is used. Without QUIC, nothing is
	// advertised.
	AltSvcMaxAge time.Duration
	// MaxQUICHandshakes bounds the QUIC handshakes in progress on QUIC,
	// from a client's first Initial until its connection is served: one
	// beyond it is refused with CONNECTION_REFUSED. From half of it on,
	// a client must first prove its address by answering a Retry, so a
	// flood from spoofed sources holds no handshake state at all (RFC
	// 9000 §8.1.2); a real client pays one round trip more. If zero,
	// DefaultMaxQUICHandshakes is used.
	MaxQUICHandshakes int
}

func (c *ServerConfig) defaults() {
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, DefaultHeaderTimeout)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.MaxURIBytes = cmp.Or(c.MaxURIBytes, min(DefaultMaxURIBytes, c.MaxHeaderBytes))
	c.MaxKeepAliveRequests = cmp.Or(c.MaxKeepAliveRequests, DefaultMaxKeepAliveRequests)
	c.HTTP2MaxRequestsPerConnection = cmp.Or(c.HTTP2MaxRequestsPerConnection, DefaultHTTP2MaxRequestsPerConnection)
	c.AltSvcMaxAge = cmp.Or(c.AltSvcMaxAge, DefaultAltSvcMaxAge)
	c.MaxQUICHandshakes = cmp.Or(c.MaxQUICHandshakes, DefaultMaxQUICHandshakes)
}

// Host is what a Server asks of, and reports to, the one that runs it:
// package listener's Listener, which hands it this narrow view rather
// than itself. Every method must be safe for concurrent use.
type Host interface {
	// Allow reports whether the access control list lets src in.
	Allow(src netip.Addr) bool
	// Pay waits until the bandwidth cap lets n more bytes through,
	// towards the client (out) or the backend; it returns at once when
	// there is no cap or ctx is done.
	Pay(ctx context.Context, out bool, n int)
	// Logger receives the server's own records.
	Logger() *slog.Logger
	// Counters are where requests, bytes and statuses are counted.
	Counters() *stats.Counters
	// Attempts is where the attempt loop reports (connect failures,
	// passive health).
	Attempts() attempt.Env
}

// server runs a proxy: its backend transports, counters and goroutines.
// The handler tier (Proxy) has one without a front door; the listener
// tier (Server) adds the front door, the fast lane and net/http's server.
type server struct {
	c       *compiled
	host    Host
	log     *slog.Logger
	m       *stats.Counters
	env     attempt.Env
	sc      ServerConfig
	who     identity // SLB-ID and SLB-IP
	https   bool
	tr      http.RoundTripper // the general lane's: Options.Transport, or ours
	own     *http.Transport   // ours, nil with Options.Transport
	once    *http.Transport   // ours without keep-alive, for requests that cannot be replayed
	pool    *backendPool      // GET and HEAD without a body
	bcs     sync.Map          // backend ID -> *stats.Backend, read without a lock
	chain   http.Handler      // middleware, then redirect or proxy
	front   *frontDoor        // the listener tier's front door; nil in the handler tier
	proxyIn *proxyin.Policy   // ServerConfig.AcceptProxy's; nil when off
	h1      *http.Server      // the listener tier's net/http server of HTTP/1
	h2      *http.Server      // and of HTTP/2, apart so a retire can send GOAWAYs at once; nil on HTTP
	h3      *h3Server         // HTTP/3 on ServerConfig.QUIC; nil without
	altSvc  []string          // the Alt-Svc value advertising h3; nil without
	altLine []byte            // and the fast lane's "Alt-Svc: …\r\n" line
	ln      net.Listener

	ctx      context.Context // cancelled when requests must be cut
	cancel   context.CancelFunc
	handlers sync.WaitGroup // requests in flight, tunnels included
	serving  sync.WaitGroup // the net/http servers' Serve calls
	halted   sync.Once      // Shutdown or Retire
	h1conns  sync.WaitGroup // connections handed to h1, until closed or hijacked
	stop     chan struct{}  // ends the group watchers
	watchers sync.WaitGroup

	mu      sync.Mutex
	tunnels map[net.Conn]struct{} // hijacked client connections
}

// newServer makes the parts both tiers share and starts the group
// watchers that prune the pool.
func newServer(c *compiled, h Host, https bool) *server {
	s := &server{
		c:       c,
		host:    h,
		log:     h.Logger(),
		m:       h.Counters(),
		env:     h.Attempts(),
		https:   https,
		who:     newIdentity(c.o.Identity),
		stop:    make(chan struct{}),
		tunnels: map[net.Conn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	o := &c.o
	if o.Transport != nil {
		s.tr = o.Transport
	} else {
		dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
		s.own = &http.Transport{
			DialContext:           dialer.DialContext,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: o.RequestTimeout,
			ExpectContinueTimeout: time.Second,
			// The client's Accept-Encoding goes to the backend as is; the
			// transport must neither add its own nor decompress.
			DisableCompression: true,
		}
		s.once = s.own.Clone()
		s.once.DisableKeepAlives = true
		s.tr = s.own
	}
	s.pool = newBackendPool(o.ConnectTimeout, o.RequestTimeout)
	s.groupChanged()
	for _, g := range c.groups() {
		s.watchers.Go(func() {
			for {
				changed := g.Changed()
				s.groupChanged()
				select {
				case <-changed:
				case <-s.stop:
					return
				}
			}
		})
	}
	return s
}

// backend returns backend id's counters, cached here to keep the
// counters' map lock off the request path.
func (s *server) backend(id string) *stats.Backend {
	if v, ok := s.bcs.Load(id); ok {
		return v.(*stats.Backend)
	}
	bc := s.m.Backend(id)
	s.bcs.Store(id, bc)
	return bc
}

// groupChanged closes the pooled connections of backends that left any
// of the proxy's groups. (The sticky session follows the groups itself.)
func (s *server) groupChanged() {
	addrs := map[string]bool{}
	for _, g := range s.c.groups() {
		for _, m := range g.Members() {
			addrs[m.Addr()] = true
		}
	}
	s.pool.prune(addrs)
}

// count counts n body bytes proxied towards the client (out) or the
// backend, for the listener and for backend bc (nil: the listener only).
// Pacing them (Host.Pay) is the caller's, before or after its write.
func (s *server) count(bc *stats.Backend, out bool, n int) {
	if out {
		s.m.BytesOut.Add(uint64(n))
		if bc != nil {
			bc.BytesOut.Add(uint64(n))
		}
		return
	}
	s.m.BytesIn.Add(uint64(n))
	if bc != nil {
		bc.BytesIn.Add(uint64(n))
	}
}

// lastRequest counts one more request on the connection and reports
// whether it is the last the connection may carry, so its response must
// say "Connection: close": the MaxKeepAliveRequests-th of an HTTP/1.x
// connection, the HTTP2MaxRequestsPerConnection-th of an HTTP/2 one.
// On HTTP/2 net/http turns that header into a graceful GOAWAY: streams
// the server has seen (later requests too, which also answer true)
// finish, and the client opens a new connection for its next ones. Both
// lanes call it, so a connection's count spans the lanes it passes.
func (s *server) lastRequest(hc *connInfo, protoMajor int) bool {
	limit := s.sc.MaxKeepAliveRequests
	if protoMajor >= 2 {
		limit = s.sc.HTTP2MaxRequestsPerConnection
	}
	return hc.reqs.Add(1) >= int64(limit)
}

// close ends what both tiers have: the watchers, the idle backend
// connections. Requests still in flight finish on their connections.
func (s *server) close() {
	close(s.stop)
	s.watchers.Wait()
	s.cancel()
	if s.own != nil {
		s.own.CloseIdleConnections()
		s.once.CloseIdleConnections()
	}
	s.pool.closeIdle()
}

// A Server is the listener tier of a proxy: it accepts client
// connections itself, does the TLS handshake, serves HTTP/1.1 GET and
// HEAD in its fast lane and the rest through net/http's server (HTTP/2
// included), applying the ACL, keep-alive limits and timeouts of its
// ServerConfig. Package listener runs one per HTTP or HTTPS listener;
// most embedders use that, or the handler tier (New).
type Server struct{ s *server }

// NewServer starts serving ln with proxy p: the listener tier. It
// returns at once; Shutdown stops it. ln is required. h, if nil, lets
// every client in, caps nothing, logs nothing and keeps its counts
// nowhere: a Host names internal types, so outside lbkit nil is the one
// to pass.
func (p *Proxy) NewServer(ln net.Listener, sc ServerConfig, h Host) (*Server, error) {
	var errs []error
	if ln == nil {
		errs = append(errs, configErr("NewServer", "nil", "a net.Listener is required"))
	}
	if sc.QUIC != nil && sc.TLS == nil {
		errs = append(errs, configErr("QUIC", sc.QUIC.LocalAddr().String(), "HTTP/3 needs TLS"))
	}
	if sc.QUICConnIDs != nil && sc.QUIC == nil {
		errs = append(errs, configErr("QUICConnIDs", fmt.Sprintf("%T", sc.QUICConnIDs), "needs QUIC (HTTP/3)"))
	}
	if sc.QUICKeys != (QUICKeys{}) && sc.QUIC == nil {
		errs = append(errs, configErr("QUICKeys", "set", "needs QUIC (HTTP/3)"))
	}
	if h == nil {
		h = nopHost{log: slog.New(slog.DiscardHandler)}
	}
	a := sc.AcceptProxy
	pin, err := proxyin.New("httpproxy", a.From, a.Required, a.Timeout, DefaultProxyHeaderTimeout, a.Now)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sc.defaults()
	s := newServer(p.c, h, sc.TLS != nil)
	s.sc, s.proxyIn = sc, pin
	if sc.Identity != (Identity{}) {
		s.who = newIdentity(sc.Identity)
	}
	s.ln = ln
	s.chain = s.handler()
	s.h1 = s.httpServer(false)
	if sc.TLS != nil {
		s.h2 = s.httpServer(true)
	}
	if sc.QUIC != nil {
		// Before HTTP/3 serves: its responses read it too (advertiseH3).
		s.altSvc, s.altLine = altSvcHeader(int(addrPortOf(sc.QUIC.LocalAddr()).Port()), sc.AltSvcMaxAge)
		if s.h3, err = s.startH3(sc.QUIC); err != nil {
			s.close()
			return nil, err
		}
	}
	s.front = newFrontDoor(s, ln)
	go s.front.accept()
	s.serve(s.h1, s.front.h1)
	s.serve(s.h2, s.front.h2)
	return &Server{s}, nil
}

// httpServer returns the listener tier's net/http server of HTTP/1
// connections, or of HTTP/2 ones (which the front door hands over after
// a handshake whose ALPN chose "h2").
func (s *server) httpServer(h2 bool) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(!h2)
	protos.SetHTTP2(h2)
	return &http.Server{
		Handler:           http.HandlerFunc(s.serveFront),
		ReadHeaderTimeout: s.sc.HeaderTimeout,
		IdleTimeout:       s.sc.IdleTimeout,
		MaxHeaderBytes:    s.sc.MaxHeaderBytes,
		Protocols:         &protos,
		ConnState:         s.connState,
		ConnContext:       s.connContext,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// serve runs srv on the connections ln hands it, if srv is not nil.
func (s *server) serve(srv *http.Server, ln net.Listener) {
	if srv == nil {
		return
	}
	s.serving.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	})
}

// Addr returns the address the server accepts on.
func (s *Server) Addr() net.Addr { return s.s.ln.Addr() }

// Lanes reports how many requests the fast lane answered and how many
// connections it handed to net/http.
func (s *Server) Lanes() (fast, handedOff uint64) {
	return s.s.front.served.Load(), s.s.front.handedOff.Load()
}

// Parked reports how many idle client connections wait in the server's
// poller, without a goroutine each (plain HTTP on Linux; see parkAfter).
func (s *Server) Parked() int {
	if p := s.s.front.poller; p != nil {
		return p.Len()
	}
	return 0
}

// Shutdown stops accepting, closes idle keep-alive connections, lets
// requests in flight (and WebSocket tunnels) finish until ctx is done,
// then cuts the rest and waits for every goroutine of the server. It is
// the stop for when nothing will serve the clients' next requests; see
// Retire for when another server takes over the socket. Only the first
// Shutdown or Retire stops the server; later calls return nil once it
// has stopped.
func (s *Server) Shutdown(ctx context.Context) error { return s.s.halt(ctx, false) }

// Retire is Shutdown for when another server takes over the socket (a
// successor process, a listener that replaces this one): it stops
// accepting, but retires keep-alive connections instead of closing them
// while idle, so that a client sending its next request at that moment
// finds it served, as HAProxy's idle-close-on-response and Envoy's drain
// do. An HTTP/1.x connection serves its next request with
// "Connection: close" and closes after the response, or closes at its
// IdleTimeout if none comes; an HTTP/2 connection gets a GOAWAY at once
// (once the handshakes in progress have ended) and closes when its
// streams have. A TCP connection that has carried no request yet gets
// 5 seconds to send its first, as with Shutdown. An HTTP/3 connection
// gets a GOAWAY and closes when the client closes it, its requests done,
// or at its IdleTimeout; a stream that raced the GOAWAY is reset
// unprocessed, for the client to retry on a new connection. (A
// successor sharing the UDP socket loses to this server the datagrams
// it reads until it stops, unless the socket sorts them by connection
// ID, as a quichandoff.Conn does.) When ctx is done, the
// rest is cut and Retire returns ctx's error; else it returns once every
// connection and goroutine of the server has ended.
func (s *Server) Retire(ctx context.Context) error { return s.s.halt(ctx, true) }

// halt is Shutdown, or Retire if retire is set; the first call stops
// the server, later ones return nil once it has stopped.
func (s *server) halt(ctx context.Context, retire bool) (err error) {
	s.halted.Do(func() { err = s.shutdown(ctx, retire) })
	return err
}

func (s *server) shutdown(ctx context.Context, retire bool) error {
	f := s.front
	f.stopAccepting(retire)
	h2 := make(chan error, 1)
	go func() {
		// An HTTP/2 connection still in its handshake reaches h2 before
		// its Shutdown, which sends the GOAWAYs.
		f.handshakes.Wait()
		h2 <- shutdownHTTP(ctx, s.h2)
	}()
	h3 := make(chan error, 1)
	go func() { h3 <- s.h3.shutdown(ctx, retire) }()
	err := f.drain(ctx, retire)
	if retire {
		err = cmp.Or(err, s.retireH1(ctx))
	}
	err = cmp.Or(err, shutdownHTTP(ctx, s.h1), <-h2, <-h3)
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		s.closeTunnels()
		<-done
	}
	s.serving.Wait()
	s.close()
	return err
}

// retireH1 waits until the HTTP/1 connections net/http serves have
// closed, each after a response saying "Connection: close" (serveFront)
// or at its idle timeout: net/http's Shutdown would close the idle ones
// at once. It returns ctx's error if ctx is done first.
func (s *server) retireH1(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.h1conns.Wait() // the front door hands over no more
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel() // the handlers' requests too: what is left is cut
		s.h1.Close()
		<-done
		return ctx.Err()
	}
}

// shutdownHTTP shuts srv down under ctx, closing what is left when ctx
// is done. A nil srv has nothing to shut down.
func shutdownHTTP(ctx context.Context, srv *http.Server) error {
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return err
	}
	return nil
}

func (s *server) connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*handoffConn); ok {
		return withConn(ctx, hc.hc)
	}
	return withConn(ctx, connInfoOf(c, s.https))
}

func (s *server) connState(c net.Conn, st http.ConnState) {
	_, handedOff := c.(*handoffConn) // counted by the front door
	switch st {
	case http.StateNew:
		if handedOff {
			return
		}
		s.m.Active.Add(1)
		s.m.New.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.m.Active.Add(-1)
		if handedOff {
			s.h1conns.Done()
		}
	}
}

func (s *server) closeTunnels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.tunnels {
		c.Close()
	}
}

func (s *server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.tunnels[c] = struct{}{}
	} else {
		delete(s.tunnels, c)
	}
}
