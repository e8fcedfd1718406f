package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/cfgerr"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/quic-go/quic-go"
)

// Defaults of HTTPOptions, from the CLB's HTTP listener, used for zero
// fields.
const (
	DefaultHTTPIdleTimeout               = httpproxy.DefaultIdleTimeout
	DefaultRequestTimeout                = httpproxy.DefaultRequestTimeout
	DefaultHeaderTimeout                 = httpproxy.DefaultHeaderTimeout
	DefaultMaxHeaderBytes                = httpproxy.DefaultMaxHeaderBytes
	DefaultMaxURIBytes                   = httpproxy.DefaultMaxURIBytes
	DefaultMaxKeepAliveRequests          = httpproxy.DefaultMaxKeepAliveRequests
	DefaultHTTP2MaxRequestsPerConnection = httpproxy.DefaultHTTP2MaxRequestsPerConnection

	// minHeaderBytes holds "GET / HTTP/1.1", a Host header of a short
	// name and the blank line; below it no request could pass.
	minHeaderBytes = 64
)

// A Rule is a forwarding rule of an HTTP or HTTPS listener (see
// httpproxy.Rule).
type Rule = httpproxy.Rule

// HashPolicy chooses what of an HTTP request the hash scheduler hashes
// (see httpproxy.HashPolicy).
type HashPolicy = httpproxy.HashPolicy

// QUICKeys are the QUIC token secrets of an HTTPS listener with HTTP3
// (see httpproxy.QUICKeys).
type QUICKeys = httpproxy.QUICKeys

// HTTPOptions configures HTTP and HTTPS listeners (Config.HTTP): the
// proxy (httpproxy.Options: headers, compression, rules, hashing,
// stickiness, hooks, access log) and what the listener does with client
// connections (timeouts, limits, redirect, middleware, TLS). The zero
// value of every field is its default: a reverse proxy with
// X-Forwarded-For and gzip on, the other headers off, no rules, no
// stickiness and, on HTTPS, the tls_cipher_policy_1_0 policy with HTTP/2.
type HTTPOptions struct {
	// Options configure the proxy. RequestTimeout: the clb example
	// enforces the CLB's 1–180 s. ConnectTimeout is ignored: the
	// listener uses Config.ConnectTimeout.
	httpproxy.Options

	// IdleTimeout closes a client's keep-alive connection after this long
	// without a request. An HTTP/3 connection counts as idle while no
	// request is being answered, even with streams open that never sent
	// a request head, so such streams cannot hold it. If zero, 15 s is
	// used; negative is refused. The clb example enforces the CLB's 1–60 s.
	IdleTimeout time.Duration
	// HeaderTimeout bounds reading a client's request header, so a slow
	// client cannot hold a connection open by trickling it. If zero, 10 s
	// is used; negative is refused.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request header (request line included);
	// larger ones are answered 431. If zero, 64 KiB is used. At least
	// 64 bytes, room for a request line and a Host header.
	MaxHeaderBytes int
	// MaxURIBytes bounds a request's target (path and query, as sent);
	// longer ones are answered 414 URI Too Long without reaching a
	// backend, as nginx does beyond its 8 KiB header buffers. If zero,
	// 8 KiB (or MaxHeaderBytes, if smaller) is used. Range
	// 1–MaxHeaderBytes.
	MaxURIBytes int
	// MaxKeepAliveRequests is how many requests an HTTP/1.x client
	// connection carries: the response to request MaxKeepAliveRequests
	// carries "Connection: close" and the connection closes after it
	// (the CLB's 100). If zero, 100 is used; negative is refused; a
	// large value is effectively unlimited.
	MaxKeepAliveRequests int
	// HTTP2MaxRequestsPerConnection is how many requests (streams) an
	// HTTP/2 client connection carries: with the response to that
	// request the listener sends GOAWAY, lets the streams in flight
	// finish (those the client opened while that request was being
	// answered, too) and closes the connection when it is idle; streams
	// the client opened after the GOAWAY are not processed, which RFC
	// 9113 §6.8 makes safe for the client to retry on a new connection.
	// HTTP/3 connections (HTTP3) have the same limit and GOAWAY; a
	// stream that raced the GOAWAY is reset with H3_REQUEST_REJECTED,
	// which clients retry on a new connection too. If zero,
	// DefaultHTTP2MaxRequestsPerConnection (1000, as nginx) is used; a
	// large value is effectively unlimited. Must not be negative.
	HTTP2MaxRequestsPerConnection int

	// RedirectToPort, on an HTTP listener, answers every request with a
	// redirect to https://<same host>:<RedirectToPort><same path and
	// query> (301 for GET and HEAD, 308 otherwise, which keeps the
	// method and body): set it to the port of the instance's HTTPS
	// listener. No backend is contacted. Range 1–65535; 0 is off.
	RedirectToPort int

	// Middleware, if set, wraps the proxy: every request that passed the
	// ACL goes through it, so a WAF or request filter can answer it
	// itself or pass it on. If nil, requests go straight to the proxy.
	Middleware func(http.Handler) http.Handler

	// Certificate is an HTTPS listener's default server certificate,
	// served when no extension domain matches the client's SNI name (see
	// tlspolicy.LoadCertificate). Required for HTTPS. Change it live with
	// Listener.Certificates().SetDefault.
	Certificate *tls.Certificate
	// Domains are an HTTPS listener's extension domains: domain pattern
	// (exact or wildcard) to the certificate served for it. Edit them
	// live with Listener.Certificates.
	Domains map[string]*tls.Certificate
	// TLSPolicy is an HTTPS listener's TLS security policy (see
	// tlspolicy.Lookup and tlspolicy.New). If nil,
	// tls_cipher_policy_1_0. Change it live with Listener.SetTLSPolicy.
	TLSPolicy *tlspolicy.Policy
	// ClientCAs turns on mutual TLS: clients must present a certificate
	// that chains to one of these CAs (tlspolicy.LoadCAPool) or the
	// handshake fails. If nil, client certificates are not asked for.
	ClientCAs *x509.CertPool
	// SessionTicketKeys are an HTTPS listener's TLS session-ticket keys:
	// the first encrypts new tickets, each decrypts
	// (tls.Config.SetSessionTicketKeys). Set the same keys on every
	// replica of a fleet, and a session resumes on whichever replica the
	// client reaches next; rotate by putting a new key first and keeping
	// the old one after it for a session lifetime. If nil, crypto/tls's
	// own keys, random per process and rotated by it. Change them live
	// with Listener.SetSessionTicketKeys.
	SessionTicketKeys [][32]byte
	// NoHTTP2 turns off HTTP/2 on an HTTPS listener (offered by ALPN by
	// default). Backends always get HTTP/1.1.
	NoHTTP2 bool
	// HTTP3 makes an HTTPS listener also serve HTTP/3 over QUIC: it
	// binds a UDP socket on its port beside the TCP one (on the same
	// Host), and its HTTP/1.1 and HTTP/2 responses advertise it with
	// Alt-Svc (max-age httpproxy.DefaultAltSvcMaxAge). HTTP/3 requests
	// go through the same pipeline as HTTP/2 ones: certificates by SNI,
	// mutual TLS, rules, headers, gzip, timeouts, counters (see
	// Stats.HTTP3Requests); the ACL refuses a client at its first QUIC
	// packet, with a CONNECTION_CLOSE. HTTP/3 needs TLS 1.3: TLSPolicy
	// must allow it (the default tls_cipher_policy_1_0 does not), and
	// SetTLSPolicy refuses a policy without it while HTTP3 is on. A UDP
	// listener of the same instance cannot share the port. 0-RTT is
	// off: early data could be replayed (see httpproxy's doc). Only for https.
	HTTP3 bool
	// QUICConnIDs, if set, issues the QUIC connection IDs of HTTP3:
	// e.g. a *quiclb.Generator with this replica's server ID, so that
	// several front ends behind a QUIC-LB-aware router (a UDP listener
	// with qch and a quiclb.Router) keep a migrating client on the
	// replica that holds its connection. If nil, quic-go's random IDs,
	// which such a router cannot route: a client that changes address
	// may land on another replica and lose its connection. One
	// generator may serve the listener across Stop and Start. Only with
	// HTTP3.
	QUICConnIDs quic.ConnectionIDGenerator
	// QUICKeys are HTTP3's QUIC token secrets: set the same on every
	// replica of a fleet, and a replica that receives a packet of a
	// connection it does not hold resets it with a token the client
	// accepts, and address-validation tokens one replica issued are good
	// at another. If zero, no stateless resets and a random token key
	// per start. Only with HTTP3.
	QUICKeys QUICKeys
	// MaxQUICHandshakes bounds the QUIC handshakes in progress with
	// HTTP3: one beyond it is refused (CONNECTION_REFUSED), and from
	// half of it on a client must first answer a Retry, so spoofed
	// sources hold nothing (httpproxy.ServerConfig.MaxQUICHandshakes;
	// Stats.QUICRetries, Stats.QUICHandshakesRefused). If zero,
	// httpproxy.DefaultMaxQUICHandshakes (1000) is used. Only with HTTP3.
	MaxQUICHandshakes int
	// QUICConn, if set, wraps the UDP socket HTTP3 serves — bound,
	// handed in Config.PacketConn or taken over from a listener this
	// one replaces — before quic-go reads it, at every start: e.g. a
	// *quichandoff.Conn, which keeps the QUIC connections of a process
	// that retires in a binary upgrade (give QUICConnIDs the same
	// quichandoff.Generator). The wrapper owns the socket: the listener
	// closes the wrapper when it stops, not the socket. If nil, quic-go
	// reads the socket itself. Only with HTTP3.
	QUICConn func(*net.UDPConn) net.PacketConn

	st *httpState // built by effective, shared by copies of the Config
}

// httpState is what an HTTP listener keeps across Stop and Start: its
// proxy (routes, cookie keys) and TLS material.
type httpState struct {
	proxy *httpproxy.Proxy
	tls   *tlsState // HTTPS only
}

func (o *HTTPOptions) effective(c *Config) error {
	if err := timeouts(
		timeout{"HTTP.IdleTimeout", &o.IdleTimeout, DefaultHTTPIdleTimeout},
		timeout{"HTTP.RequestTimeout", &o.RequestTimeout, DefaultRequestTimeout},
		timeout{"HTTP.HeaderTimeout", &o.HeaderTimeout, DefaultHeaderTimeout},
	); err != nil {
		return err
	}
	switch {
	case o.MaxHeaderBytes == 0:
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	case o.MaxHeaderBytes < minHeaderBytes:
		return configErr("HTTP.MaxHeaderBytes", o.MaxHeaderBytes, fmt.Sprintf("below %d bytes, too small for a request line and Host", minHeaderBytes))
	}
	switch {
	case o.MaxURIBytes == 0:
		o.MaxURIBytes = min(DefaultMaxURIBytes, o.MaxHeaderBytes)
	case o.MaxURIBytes < 1 || o.MaxURIBytes > o.MaxHeaderBytes:
		return configErr("HTTP.MaxURIBytes", o.MaxURIBytes, fmt.Sprintf("out of range 1–%d bytes (MaxHeaderBytes)", o.MaxHeaderBytes))
	}
	for _, n := range []struct {
		field string
		v     *int
		def   int
	}{
		{"HTTP.MaxKeepAliveRequests", &o.MaxKeepAliveRequests, DefaultMaxKeepAliveRequests},
		{"HTTP.HTTP2MaxRequestsPerConnection", &o.HTTP2MaxRequestsPerConnection, DefaultHTTP2MaxRequestsPerConnection},
	} {
		switch {
		case *n.v == 0:
			*n.v = n.def
		case *n.v < 0:
			return configErr(n.field, *n.v, "negative")
		}
	}
	if o.RedirectToPort != 0 {
		switch {
		case c.Protocol != HTTP:
			return configErr("HTTP.RedirectToPort", o.RedirectToPort, "redirects are for http listeners")
		case o.RedirectToPort < 1 || o.RedirectToPort > 65535:
			return configErr("HTTP.RedirectToPort", o.RedirectToPort, "out of range 1–65535")
		case o.RedirectToPort == c.Port:
			return configErr("HTTP.RedirectToPort", o.RedirectToPort, "is this listener's own port")
		}
	}
	for _, r := range o.Rules {
		if r.Group != nil {
			if err := schedulerFits(HTTP, r.Group.Scheduler().Name()); err != nil {
				return err
			}
		}
	}
	po := o.Options
	po.ConnectTimeout = c.ConnectTimeout
	p, err := httpproxy.New(c.Group, po)
	if err != nil {
		return asListenerErr(err)
	}
	st := &httpState{proxy: p}
	if o.HTTP3 && c.Protocol != HTTPS {
		return configErr("HTTP.HTTP3", string(c.Protocol), "HTTP/3 is for https listeners")
	}
	switch {
	case o.QUICConnIDs != nil && !o.HTTP3:
		return configErr("HTTP.QUICConnIDs", fmt.Sprintf("%T", o.QUICConnIDs), "needs HTTP3")
	case o.QUICKeys != (QUICKeys{}) && !o.HTTP3:
		return configErr("HTTP.QUICKeys", "set", "needs HTTP3")
	case o.MaxQUICHandshakes < 0:
		return configErr("HTTP.MaxQUICHandshakes", o.MaxQUICHandshakes, "negative")
	case o.MaxQUICHandshakes > 0 && !o.HTTP3:
		return configErr("HTTP.MaxQUICHandshakes", o.MaxQUICHandshakes, "needs HTTP3")
	case o.QUICConn != nil && !o.HTTP3:
		return configErr("HTTP.QUICConn", "set", "needs HTTP3")
	}
	if c.Protocol == HTTPS {
		if st.tls, err = newTLSState(o); err != nil {
			return err
		}
	} else if o.Certificate != nil || len(o.Domains) > 0 || o.TLSPolicy != nil || o.ClientCAs != nil || o.SessionTicketKeys != nil {
		return configErr("HTTP.Certificate", string(c.Protocol), "TLS settings are for https listeners")
	}
	if o.ClientCertHeaders && o.ClientCAs == nil {
		return configErr("HTTP.ClientCertHeaders", true, "needs ClientCAs (mutual TLS)")
	}
	o.st = st
	return nil
}

// asListenerErr turns httpproxy's refusals into the listener's: one
// prefix, the field as Config names it ("HTTP.Rules[0].Group").
func asListenerErr(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for i, e := range errs {
		if ce, ok := errors.AsType[*ConfigError](e); ok && ce.Pkg == "httpproxy" {
			errs[i] = &cfgerr.Error{Pkg: "listener", Field: "HTTP." + ce.Field, Value: ce.Value, Reason: ce.Reason, Err: ce.Err}
		}
	}
	return errors.Join(errs...)
}

// httpServer is a running HTTP or HTTPS listener: the proxy's listener
// tier, fed by the listener's socket, and by its UDP socket with
// HTTPOptions.HTTP3.
type httpServer struct {
	*httpproxy.Server
	ln *net.TCPListener
	pc *net.UDPConn // nil without HTTP3
}

func (s httpServer) shutdown(ctx context.Context) error { return s.Shutdown(ctx) }
func (s httpServer) retire(ctx context.Context) error   { return s.Retire(ctx) }

func (s httpServer) addrs() []net.Addr {
	if s.pc != nil {
		return []net.Addr{s.Addr(), s.pc.LocalAddr()}
	}
	return []net.Addr{s.Addr()}
}

func (s httpServer) socks() sockets {
	socks := sockets{tcp: []*net.TCPListener{s.ln}}
	if s.pc != nil {
		socks.udp = []*net.UDPConn{s.pc}
	}
	return socks
}

func startHTTP(l *Listener, socks sockets) (server, error) {
	o := &l.cfg.HTTP
	ln := socks.tcp[0]
	sc := httpproxy.ServerConfig{
		IdleTimeout:                   o.IdleTimeout,
		HeaderTimeout:                 o.HeaderTimeout,
		MaxHeaderBytes:                o.MaxHeaderBytes,
		MaxURIBytes:                   o.MaxURIBytes,
		MaxKeepAliveRequests:          o.MaxKeepAliveRequests,
		HTTP2MaxRequestsPerConnection: o.HTTP2MaxRequestsPerConnection,
		RedirectToPort:                o.RedirectToPort,
		Middleware:                    o.Middleware,
		NoFastLane:                    noFastLane,
		AcceptProxy:                   l.cfg.AcceptProxy,
		Identity:                      httpproxy.Identity{ID: l.inst.ID()},
		ServiceAddr:                   l.cfg.ServiceAddr,
	}
	if a := l.inst.Address(); a.IsValid() {
		sc.Identity.Addr = a.String()
	}
	if ts := o.st.tls; ts != nil {
		sc.TLS = ts.serverConfig()
	}
	var pc *net.UDPConn
	if o.HTTP3 {
		if len(socks.udp) > 0 {
			pc = socks.udp[0]
		} else {
			// A handed Listener comes without its UDP twin.
			var err error
			if pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())); err != nil {
				ln.Close()
				return nil, err
			}
		}
		sc.QUIC, sc.QUICConnIDs, sc.QUICKeys = pc, o.QUICConnIDs, o.QUICKeys
		sc.MaxQUICHandshakes = o.MaxQUICHandshakes
		if o.QUICConn != nil {
			sc.QUIC = o.QUICConn(pc)
		}
	}
	srv, err := o.st.proxy.NewServer(ln, sc, (*httpHost)(l))
	if err != nil {
		ln.Close()
		if sc.QUIC != nil {
			sc.QUIC.Close()
		}
		return nil, err
	}
	return httpServer{srv, ln, pc}, nil
}

// noFastLane turns the fast lane off, so tests can compare the lanes.
var noFastLane = false

// httpHost is the listener as its HTTP server sees it (httpproxy.Host):
// a pointer conversion, so handing it over allocates nothing.
type httpHost Listener

func (h *httpHost) Allow(src netip.Addr) bool { return h.acl.allow(src) }

func (h *httpHost) Pay(ctx context.Context, out bool, n int) {
	if lims := h.lim.load(); lims != nil && n > 0 {
		if out {
			pay(ctx, lims.out, n)
		} else {
			pay(ctx, lims.in, n)
		}
	}
}

func (h *httpHost) Logger() *slog.Logger      { return h.cfg.Logger }
func (h *httpHost) Counters() *stats.Counters { return &h.c }
func (h *httpHost) Attempts() attempt.Env     { return (*Listener)(h).env() }
