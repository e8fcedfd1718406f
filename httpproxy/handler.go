package httpproxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/sni"
)

// A Proxy forwards HTTP requests to the backends of a group: the
// handler tier, an http.Handler to mount in any net/http server, and the
// compiled options the listener tier (NewServer) runs. It routes by
// Options.Rules, keeps sticky sessions, balances each request with the
// group's scheduler through the shared attempt loop (up to three
// backends for a request that may be replayed), rewrites headers by one
// plan, compresses, and streams the response back.
//
// New returns it; ServeHTTP serves; Close ends the goroutines and idle
// backend connections the first ServeHTTP started. A Proxy is also what
// the listener tier runs (NewServer): it holds no goroutine until one of
// them is used. A Proxy is safe for concurrent use.
type Proxy struct {
	c         *compiled
	once      sync.Once
	s         *server // the handler tier's, made by the first ServeHTTP
	closeOnce sync.Once
}

// New returns a proxy to group g with options o, or an error naming every
// refused option.
func New(g *balancer.Group, o Options) (*Proxy, error) {
	c, err := compile(g, o)
	if err != nil {
		return nil, err
	}
	return &Proxy{c: c}, nil
}

// handler returns the handler tier's server, made on first use.
func (p *Proxy) handler() *server {
	p.once.Do(func() {
		p.s = newServer(p.c, nopHost{log: slog.New(slog.DiscardHandler)}, false)
		p.s.chain = p.s.proxyChain()
	})
	return p.s
}

// ServeHTTP proxies r to a backend and writes its response, or the
// proxy's error if none answered (see Options.ErrorHandler).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.handler()
	s.handlers.Add(1)
	defer s.handlers.Done()
	s.chain.ServeHTTP(w, r)
}

// Close closes the handler tier's idle backend connections and ends its
// goroutines; servers made by NewServer stop with their own Shutdown.
// Requests in flight finish; later requests are still served, their
// backend connections closed after each.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() { p.handler().close() })
	return nil
}

// Groups returns every group the proxy sends to: its own first, then
// each rule's, once each.
func (p *Proxy) Groups() []*balancer.Group { return p.c.groups() }

// nopHost is the handler tier's host, and the listener tier's without
// one: every client allowed, no cap, counters nobody reads.
type nopHost struct {
	log *slog.Logger
}

func (h nopHost) Allow(netip.Addr) bool          { return true }
func (h nopHost) Pay(context.Context, bool, int) {}
func (h nopHost) Logger() *slog.Logger           { return h.log }
func (h nopHost) Counters() *stats.Counters      { return new(stats.Counters) }
func (h nopHost) Attempts() attempt.Env          { return nopEnv{} }

type nopEnv struct{}

func (nopEnv) NoBackend()                              {}
func (nopEnv) Failed(*balancer.Member, error, bool)    {}
func (nopEnv) Health(*balancer.Group) attempt.Reporter { return nil }

// proxyChain is the proxy behind gzip: what both tiers serve once a
// request is admitted. Only requests that accept gzip go through the
// compressor, so the responses of other clients are sent as the backend
// made them (no Vary added), as in the fast lane.
func (s *server) proxyChain() http.Handler {
	proxy := http.HandlerFunc(s.proxy)
	if s.c.o.NoGzip {
		return proxy
	}
	gz := gzipCLB.handler(proxy)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgrade(r.Header) && acceptsGzip(r) {
			gz.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
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

// handler is the listener tier's chain: the middleware, then the
// redirect or the proxy.
func (s *server) handler() http.Handler {
	var h http.Handler
	if s.sc.RedirectToPort != 0 {
		h = http.HandlerFunc(s.redirect)
	} else {
		h = s.proxyChain()
	}
	if s.sc.Middleware != nil {
		h = s.sc.Middleware(h)
	}
	return h
}

// serveFront is the listener tier's net/http handler: the keep-alive
// limit, the ACL, checks of the request target and the counters, then
// the middleware and the proxy.
func (s *server) serveFront(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	hc := connOf(r)
	if r.TLS == nil {
		r.TLS = hc.tls // net/http sees HTTPS connections after the handshake, as plain ones
	}
	last := s.lastRequest(hc, r.ProtoMajor) // before any answer, refusals included: every request counts
	if r.ProtoMajor == 3 {
		hc.h3.begin()
		defer hc.h3.end()
		// Before the request counts as done: a stop closes a connection
		// with no request in the handler soon after, and what http3
		// still buffers would be lost with it.
		defer flushH3(w)
		s.m.HTTP3Requests.Add(1)
		if last {
			// As over HTTP/2, the streams accepted before the GOAWAY
			// are served; the http3 server resets later ones.
			hc.h3.limitReached()
		}
	} else {
		if last || s.front.draining.Load() {
			// A stopping server's response says it is the last, so that
			// a retired connection closes after it (Server.Retire). On
			// HTTP/3 the field is malformed (RFC 9114 §4.2): its stop
			// sends GOAWAY itself.
			w.Header()["Connection"] = closeValue
		}
		s.advertiseH3(w.Header(), r.ProtoMajor)
	}
	if client, _ := s.clientOf(r, hc); !s.host.Allow(client.Addr()) {
		s.m.RefusedACL.Add(1)
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
	if len(r.RequestURI) > s.sc.MaxURIBytes {
		s.fail(w, r, http.StatusRequestURITooLong, "414 URI Too Long\n")
		return
	}
	if s.sc.Middleware != nil {
		// The middleware may answer by itself: learn the status.
		sw := &statusWriter{ResponseWriter: w}
		s.chain.ServeHTTP(sw, r)
		if sw.status != 0 && !sw.counted {
			s.m.CountStatus(sw.status)
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

// redirect answers every request with a redirect to the HTTPS listener.
func (s *server) redirect(w http.ResponseWriter, r *http.Request) {
	host := sni.StripPort(r.Host)
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	var loc string
	if p := s.sc.RedirectToPort; p == 443 {
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
	s.m.CountStatus(code)
	markCounted(w)
	s.accessLog(r, code, 0, "", 0, time.Time{})
}
