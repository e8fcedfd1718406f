package listener

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// Defaults of HTTPOptions, from the CLB's HTTP listener, used for zero
// fields.
const (
	DefaultHTTPIdleTimeout      = 15 * time.Second
	DefaultRequestTimeout       = 60 * time.Second
	DefaultHeaderTimeout        = 10 * time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultMaxURIBytes          = 8 << 10
	DefaultMaxKeepAliveRequests = 100
	// DefaultHTTP2MaxRequestsPerConnection is nginx's keepalive_requests
	// default: browsers multiplex hundreds of requests over one HTTP/2
	// connection, so it is far above the HTTP/1.x limit.
	DefaultHTTP2MaxRequestsPerConnection = 1000

	// minHeaderBytes holds "GET / HTTP/1.1", a Host header of a short
	// name and the blank line; below it no request could pass.
	minHeaderBytes = 64
)

// HTTPOptions configures HTTP and HTTPS listeners (Config.HTTP). The zero
// value of every field is its default: a reverse proxy with
// X-Forwarded-For and gzip on, the other headers off, no rules, no
// stickiness and, on HTTPS, the tls_cipher_policy_1_0 policy with HTTP/2.
type HTTPOptions struct {
	// IdleTimeout closes a client's keep-alive connection after this long
	// without a request. If zero, 15 s is used; negative is refused. The
	// clb example enforces the CLB's 1–60 s.
	IdleTimeout time.Duration
	// RequestTimeout bounds the wait for a backend's response header once
	// the request is sent; a backend silent that long gets the client a
	// 504. If zero, 60 s is used; negative is refused. The clb example
	// enforces the CLB's 1–180 s.
	RequestTimeout time.Duration
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
	// If zero, DefaultHTTP2MaxRequestsPerConnection (1000, as nginx) is
	// used; a large value is effectively unlimited. Must not be negative.
	HTTP2MaxRequestsPerConnection int

	// NoXForwardedFor turns off X-Forwarded-For, which is on by default:
	// the client's IP is appended to any X-Forwarded-For the request
	// came with ("a, b, client").
	NoXForwardedFor bool
	// SLBID sets the SLB-ID header to the instance's ID.
	SLBID bool
	// SLBIP sets the SLB-IP header to the instance's address.
	SLBIP bool
	// XForwardedProto sets X-Forwarded-Proto to "http" or "https".
	XForwardedProto bool
	// XForwardedPort sets X-Forwarded-Port to the listener's port.
	XForwardedPort bool
	// XForwardedClientSrcPort sets X-Forwarded-Client-srcport to the
	// client's source port.
	XForwardedClientSrcPort bool

	// NoGzip turns off response compression, which is on by default: a
	// response of type text/xml, text/plain, text/css,
	// application/javascript, application/x-javascript,
	// application/rss+xml, application/atom+xml, application/xml or
	// application/json of at least 1 KiB is gzip-compressed for a client
	// that accepts gzip, unless the backend already encoded it.
	NoGzip bool

	// RedirectToPort, on an HTTP listener, answers every request with a
	// redirect to https://<same host>:<RedirectToPort><same path and
	// query> (301 for GET and HEAD, 308 otherwise, which keeps the
	// method and body): set it to the port of the instance's HTTPS
	// listener. No backend is contacted. Range 1–65535; 0 is off.
	RedirectToPort int

	// Rules are forwarding rules: a request goes to the group of the rule
	// whose Host pattern matches its Host header best (exact, then the
	// narrowest wildcard, as for extension domains) and, among that
	// host's rules, whose Path is the longest prefix of its path; then
	// to the rules without a Host; else to Config.Group. Every group
	// must use an HTTP scheduler (wrr, rr, wlc, hash, ewma).
	Rules []Rule

	// HashBy chooses what of a request the hash scheduler hashes: a
	// header, a cookie, the path or a query parameter (see HashPolicy).
	// It matters to groups whose scheduler reads Key.Hash — hash, or
	// your own — and is ignored by the others; a request without the
	// value is placed by its source IP, and a valid sticky-session
	// cookie wins over it. If zero, the hash scheduler places every
	// request by its source IP, as sch.
	HashBy HashPolicy

	// StickySession turns on cookie persistence (session.Insert or
	// session.Rewrite). A cookie naming a backend that is missing,
	// unhealthy or forged gets a fresh pick; a draining backend
	// (balancer.Drain) keeps its sessions but gets no new ones. The cookie is handled on every
	// status, redirects and errors included (see package session, "3xx
	// and 4xx responses"). If nil, every request is balanced afresh.
	StickySession *session.Config

	// Middleware, if set, wraps the proxy: every request that passed the
	// ACL goes through it, so a WAF or request filter can answer it
	// itself or pass it on. If nil, requests go straight to the proxy.
	Middleware func(http.Handler) http.Handler

	// AccessLog, if set, receives one Info record per request (client,
	// method, host, path, status, bytes, duration, backend, upstream
	// latency). If nil, there is no access log.
	AccessLog *slog.Logger

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
	// ClientCertHeaders, with ClientCAs, sends the backend the client
	// certificate's X-Client-Cert-Subject-DN, X-Client-Cert-Issuer-DN,
	// X-Client-Cert-Fingerprint (SHA-256, hex) and X-Client-Cert-Verify
	// (SUCCESS, FAILED or NONE); copies of these sent by the client are
	// always removed.
	ClientCertHeaders bool
	// NoHTTP2 turns off HTTP/2 on an HTTPS listener (offered by ALPN by
	// default). Backends always get HTTP/1.1.
	NoHTTP2 bool

	st *httpState // built by effective, shared by copies of the Config
}

// A Rule is a forwarding rule of an HTTP or HTTPS listener: requests for
// Host whose path starts with Path go to Group.
type Rule struct {
	// Host is a domain pattern, exact ("www.example.com") or wildcard
	// ("*.example.com"), matched against the Host header without its
	// port. If empty, the rule applies to every host.
	Host string
	// Path is a path prefix starting with '/', matched byte for byte
	// ("/api" matches "/api", "/api/v1" and "/apiv2"). If empty, "/".
	Path string
	// Group receives the matching requests. Required.
	Group *balancer.Group
}

// httpState is what an HTTP listener keeps across Stop and Start: its
// cookie keys, routes and TLS material.
type httpState struct {
	sticky *session.Sticky
	hash   *hashPolicy // nil: no HashBy
	routes routes
	tls    *tlsState // HTTPS only
}

// routes are the forwarding rules, immutable once built.
type routes struct {
	hosts  *sni.Table[[]route] // nil when no rule names a host
	any    []route             // rules without a host
	groups []*balancer.Group   // every group, the default first
}

type route struct {
	prefix string
	g      *balancer.Group
}

// group returns the group for a request's host and path.
func (rs *routes) group(host, path string, def *balancer.Group) *balancer.Group {
	if rs.hosts != nil {
		if r, ok := rs.hosts.Match(sni.StripPort(host)); ok {
			if g := matchPrefix(r, path); g != nil {
				return g
			}
		}
	}
	if g := matchPrefix(rs.any, path); g != nil {
		return g
	}
	return def
}

// matchPrefix returns the group of the first route (longest prefix first)
// whose prefix path has.
func matchPrefix(rs []route, path string) *balancer.Group {
	for _, r := range rs {
		if strings.HasPrefix(path, r.prefix) {
			return r.g
		}
	}
	return nil
}

func (o *HTTPOptions) effective(c *Config) error {
	var err error
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
	st := &httpState{}
	if st.routes, err = buildRoutes(c.Group, o.Rules); err != nil {
		return err
	}
	if st.hash, err = o.HashBy.compile(); err != nil {
		return err
	}
	if o.StickySession != nil {
		sc := *o.StickySession
		// The cookie may name a member of any of the listener's groups.
		sc.Backends, sc.Groups = nil, make([]session.Group, len(st.routes.groups))
		for i, g := range st.routes.groups {
			sc.Groups[i] = g
		}
		if st.sticky, err = session.New(sc); err != nil {
			return err
		}
	}
	if c.Protocol == HTTPS {
		if st.tls, err = newTLSState(o); err != nil {
			return err
		}
	} else if o.Certificate != nil || len(o.Domains) > 0 || o.TLSPolicy != nil || o.ClientCAs != nil {
		return configErr("HTTP.Certificate", string(c.Protocol), "TLS settings are for https listeners")
	}
	if o.ClientCertHeaders && o.ClientCAs == nil {
		return configErr("HTTP.ClientCertHeaders", true, "needs ClientCAs (mutual TLS)")
	}
	o.st = st
	return nil
}

// buildRoutes validates rules and indexes them.
func buildRoutes(def *balancer.Group, rules []Rule) (routes, error) {
	rs := routes{groups: []*balancer.Group{def}}
	byHost := map[string][]route{}
	for i, r := range rules {
		field := fmt.Sprintf("HTTP.Rules[%d]", i)
		if r.Group == nil {
			return rs, configErr(field+".Group", "nil", "required")
		}
		if err := schedulerFits(HTTP, r.Group.Scheduler().Name()); err != nil {
			return rs, err
		}
		p := cmp.Or(r.Path, "/")
		if p[0] != '/' {
			return rs, configErr(field+".Path", r.Path, "must start with /")
		}
		if !slices.Contains(rs.groups, r.Group) {
			rs.groups = append(rs.groups, r.Group)
		}
		if r.Host == "" {
			rs.any = append(rs.any, route{p, r.Group})
			continue
		}
		d, err := sni.ParseDomain(r.Host)
		if err != nil {
			return rs, configErr(field+".Host", r.Host, reasonOf(err))
		}
		byHost[d.String()] = append(byHost[d.String()], route{p, r.Group})
	}
	longestFirst := func(a, b route) int { return cmp.Compare(len(b.prefix), len(a.prefix)) }
	slices.SortStableFunc(rs.any, longestFirst)
	if len(byHost) > 0 {
		rs.hosts = new(sni.Table[[]route])
		for h, r := range byHost {
			slices.SortStableFunc(r, longestFirst)
			if err := rs.hosts.Set(h, r); err != nil {
				return rs, err
			}
		}
	}
	return rs, nil
}
