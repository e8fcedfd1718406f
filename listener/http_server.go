package listener

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"github.com/lbkit/lbkit/tlspolicy"
)

// gzipTypes are the only content types compressed (docs/model.md §8).
var gzipTypes = []string{
	"text/xml", "text/plain", "text/css", "application/javascript",
	"application/x-javascript", "application/rss+xml", "application/atom+xml",
	"application/xml", "application/json",
}

// httpServer is a running HTTP or HTTPS listener: lbkit's front door
// (http_front.go, http_fast.go), which serves HTTP/1.1 GET and HEAD
// itself, and a net/http server for the rest, whose handler proxies to
// the backends over the same connection pool or an http.Transport.
type httpServer struct {
	l     *Listener
	o     HTTPOptions // l.cfg.HTTP at start
	st    *httpState
	https bool
	ln    net.Listener
	srv   *http.Server
	tr    *http.Transport
	once  *http.Transport // tr without keep-alive, for requests that cannot be replayed
	pool  *backendPool    // GET and HEAD without a body
	front *frontDoor      // the front door: accepts, serves HTTP/1.1 or hands to srv
	bcs   sync.Map        // backend ID -> *backendCounters, read without a lock
	chain http.Handler    // middleware, then redirect or proxy
	gz    http.Handler    // the proxy behind gzip, nil when off

	// Header values shared by every request; never modified.
	slbID, slbIP, proto, port []string

	ctx      context.Context // cancelled when requests must be cut
	cancel   context.CancelFunc
	handlers sync.WaitGroup // requests in flight, tunnels included
	served   chan struct{}  // Serve returned
	stop     chan struct{}  // ends the rule-group watchers
	watchers sync.WaitGroup

	mu      sync.Mutex
	tunnels map[net.Conn]struct{} // hijacked client connections
}

// httpConn is what the listener knows about one client connection; it
// rides in the connection's context.
type httpConn struct {
	src, dst netip.AddrPort
	ip, port []string // for X-Forwarded-For and X-Forwarded-Client-srcport
	reqs     atomic.Int64
	cert     atomic.Pointer[tlspolicy.ClientCert]
	tls      *tls.ConnectionState // HTTPS: the handshake's outcome
}

// lastRequest counts one more request on the connection and reports
// whether it is the last the connection may carry, so its response must
// say "Connection: close": the MaxKeepAliveRequests-th of an HTTP/1.x
// connection, the HTTP2MaxRequestsPerConnection-th of an HTTP/2 one.
// On HTTP/2 net/http turns that header into a graceful GOAWAY: streams
// the server has seen (later requests too, which also answer true)
// finish, and the client opens a new connection for its next ones. Both
// lanes call it, so a connection's count spans the lanes it passes.
func (hc *httpConn) lastRequest(o *HTTPOptions, protoMajor int) bool {
	limit := o.MaxKeepAliveRequests
	if protoMajor == 2 {
		limit = o.HTTP2MaxRequestsPerConnection
	}
	return hc.reqs.Add(1) >= int64(limit)
}

type connKey struct{}

func connOf(r *http.Request) *httpConn {
	hc, _ := r.Context().Value(connKey{}).(*httpConn)
	return hc
}

func startHTTP(l *Listener) (server, error) {
	o := l.cfg.HTTP
	s := &httpServer{
		l:       l,
		o:       o,
		st:      o.st,
		https:   l.cfg.Protocol == HTTPS,
		served:  make(chan struct{}),
		stop:    make(chan struct{}),
		tunnels: map[net.Conn]struct{}{},
		slbID:   []string{l.inst.ID()},
		proto:   []string{"http"},
	}
	if a := l.inst.Address(); a.IsValid() {
		s.slbIP = []string{a.String()}
	} else {
		s.slbIP = []string{""}
	}
	if s.https {
		s.proto = []string{"https"}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: l.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	s.tr = &http.Transport{
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
	s.once = s.tr.Clone()
	s.once.DisableKeepAlives = true
	s.pool = newBackendPool(l.cfg.ConnectTimeout, o.RequestTimeout)
	var inner http.Handler = http.HandlerFunc(s.proxy)
	if o.RedirectToPort != 0 {
		inner = http.HandlerFunc(s.redirect)
	} else if !o.NoGzip {
		wrap, err := gzhttp.NewWrapper(gzhttp.ContentTypes(gzipTypes), gzhttp.EnableZstd(false), gzhttp.MinSize(1024))
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.gz = wrap(http.HandlerFunc(s.proxy))
		inner = http.HandlerFunc(s.maybeGzip)
	}
	if o.Middleware != nil {
		inner = o.Middleware(inner)
	}
	s.chain = inner

	ln, err := net.Listen("tcp", net.JoinHostPort(l.cfg.Host, strconv.Itoa(l.cfg.Port)))
	if err != nil {
		s.cancel()
		return nil, err
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if s.https {
		protos.SetHTTP2(s.st.tls.http2)
	}
	s.ln = ln
	// The bound port: Config.Port, or the one the system picked for 0.
	s.port = []string{strconv.Itoa(addrPort(ln.Addr()))}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.HeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Protocols:         &protos,
		ConnState:         s.connState,
		ConnContext:       s.connContext,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(l.cfg.Logger.Handler(), slog.LevelDebug),
	}
	s.front = newFrontDoor(s, ln)
	s.groupChanged()
	for _, g := range s.st.routes.groups[1:] {
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
	go s.front.accept()
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(s.front.handoff); !errors.Is(err, http.ErrServerClosed) {
			l.cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *httpServer) addrs() []net.Addr { return []net.Addr{s.ln.Addr()} }

// backend returns backend id's counters. They live as long as the
// listener, so caching them here keeps the listener-wide map's lock off
// the request path.
func (s *httpServer) backend(id string) *backendCounters {
	if v, ok := s.bcs.Load(id); ok {
		return v.(*backendCounters)
	}
	bc := s.l.c.backend(id)
	s.bcs.Store(id, bc)
	return bc
}

// groupChanged closes the pooled connections of backends that left. The
// listener's watcher calls it for the default group; the rule groups have
// watchers of their own. (The sticky session follows the groups itself.)
func (s *httpServer) groupChanged() {
	addrs := map[string]bool{}
	for _, g := range s.st.routes.groups {
		for _, m := range g.Members() {
			addrs[m.Addr()] = true
		}
	}
	s.pool.prune(addrs)
}

func (s *httpServer) connContext(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*handoffConn); ok {
		return context.WithValue(ctx, connKey{}, hc.hc)
	}
	return context.WithValue(ctx, connKey{}, newHTTPConn(c))
}

func (s *httpServer) connState(c net.Conn, st http.ConnState) {
	_, handedOff := c.(*handoffConn) // counted by the front door
	switch st {
	case http.StateNew:
		if handedOff {
			return
		}
		s.l.c.active.Add(1)
		s.l.c.new.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.l.c.active.Add(-1)
	}
}

// shutdown stops accepting, lets requests in flight (and WebSocket
// tunnels) finish until ctx is done, then cuts the rest and waits for
// every goroutine.
func (s *httpServer) shutdown(ctx context.Context) error {
	close(s.stop)
	s.watchers.Wait()
	err := s.front.shutdown(ctx)
	if e := s.srv.Shutdown(ctx); e != nil {
		s.srv.Close()
		err = cmp.Or(err, e)
	}
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
	s.cancel()
	<-s.served
	s.tr.CloseIdleConnections()
	s.pool.closeIdle()
	return err
}

func (s *httpServer) closeTunnels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.tunnels {
		c.Close()
	}
}

func (s *httpServer) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.tunnels[c] = struct{}{}
	} else {
		delete(s.tunnels, c)
	}
}
