package httpproxy

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/cfgerr"
	"github.com/lbkit/lbkit/internal/proxyin"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/sni"
)

// Defaults of Options, used for zero fields.
const (
	DefaultRequestTimeout = 60 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// ConfigError reports a refused option: the field, the value and the
// reason. It is the same type in every lbkit package.
type ConfigError = cfgerr.Error

// Options configure a proxy: what it adds to and removes from requests,
// where it sends them, and the hooks an embedder may set. The zero value
// of every field is its default: X-Forwarded-For and gzip on, the other
// headers off, no rules, no stickiness, lbkit's own transport.
//
// In the handler tier (New, mounted in any net/http server) every field
// applies. The listener tier (package listener's HTTP and HTTPS
// listeners, which run a Server) adds what only the owner of the client
// connection can do: the ACL at accept, the keep-alive limits, idle and
// header timeouts, and the fast lane, which serves GET and HEAD without
// net/http while no hook is set.
type Options struct {
	// RequestTimeout bounds the wait for a backend's response header once
	// the request is sent, and each wait for more of its body; a backend
	// silent that long gets the client a 504. If zero, 60 s is used;
	// negative is refused.
	RequestTimeout time.Duration
	// ConnectTimeout bounds a connection attempt to a backend. If zero,
	// 5 s is used; negative is refused. (A listener sets it from its
	// Config.ConnectTimeout.)
	ConnectTimeout time.Duration

	// NoXForwardedFor turns off X-Forwarded-For, which is on by default:
	// the client's IP is appended to any X-Forwarded-For the request
	// came with ("a, b, client").
	NoXForwardedFor bool
	// TrustedProxies are the proxies in front whose X-Forwarded-For is
	// believed: from a peer in them, the client of a request is the
	// right-most X-Forwarded-For entry that is not itself in them
	// (nginx's set_real_ip_from with real_ip_recursive on), and that
	// client is what the request's ACL check, hash key, access log and
	// X-Forwarded-For see; the field is cut after it for the backend. From
	// any other peer, X-Forwarded-For is appended to and not believed.
	// The peer is the connection's client: behind a listener's
	// AcceptProxy, the one its PROXY header names. If empty, no one's
	// X-Forwarded-For is believed. A handful of prefixes is the intended
	// size: each request walks them.
	TrustedProxies []netip.Prefix
	// SLBID sets the SLB-ID header to the load balancer's ID (a
	// listener's Instance ID; Identity.ID in the handler tier).
	SLBID bool
	// SLBIP sets the SLB-IP header to the load balancer's address.
	SLBIP bool
	// XForwardedProto sets X-Forwarded-Proto to "http" or "https".
	XForwardedProto bool
	// XForwardedPort sets X-Forwarded-Port to the port the request came
	// in on.
	XForwardedPort bool
	// XForwardedClientSrcPort sets X-Forwarded-Client-srcport to the
	// client's source port.
	XForwardedClientSrcPort bool
	// ClientCertHeaders, on connections with a verified or offered client
	// certificate (mutual TLS), sends the backend its
	// X-Client-Cert-Subject-DN, X-Client-Cert-Issuer-DN,
	// X-Client-Cert-Fingerprint (SHA-256, hex) and X-Client-Cert-Verify
	// (SUCCESS, FAILED or NONE); copies of these sent by the client are
	// always removed.
	ClientCertHeaders bool
	// Identity is what SLB-ID and SLB-IP say in the handler tier; a
	// listener fills it with its instance's ID and address.
	Identity Identity

	// NoGzip turns off response compression, which is on by default: a
	// response of type text/xml, text/plain, text/css,
	// application/javascript, application/x-javascript,
	// application/rss+xml, application/atom+xml, application/xml or
	// application/json of at least 1 KiB is gzip-compressed for a client
	// that accepts gzip, unless the backend already encoded it (see the
	// package doc, "Compression").
	NoGzip bool

	// Rules are forwarding rules: a request goes to the group of the rule
	// whose Host pattern matches its Host header best (exact, then the
	// narrowest wildcard, as for extension domains) and, among that
	// host's rules, whose Path is the longest prefix of its path; then
	// to the rules without a Host; else to the proxy's group.
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
	// (balancer.Drain) keeps its sessions but gets no new ones. The
	// cookie is handled on every status, redirects and errors included
	// (see package session, "3xx and 4xx responses"). If nil, every
	// request is balanced afresh.
	StickySession *session.Config

	// AccessLog, if set, receives one Info record per request (client,
	// method, host, path, status, bytes, duration, backend, upstream
	// latency). If nil, there is no access log.
	AccessLog *slog.Logger

	// Rewrite, if set, is called with each request as it will go to the
	// backend, after the proxy's own header changes and before the
	// backend is picked (httputil.ReverseProxy's Rewrite): it may change
	// the header, path and query. If nil, the request goes as the proxy
	// made it. Setting it takes GET and HEAD off the fast lane.
	Rewrite func(*http.Request)
	// Transport, if set, sends requests to backends instead of lbkit's
	// own pooled HTTP/1.1 transport; the request's URL names the chosen
	// backend's address (scheme http). WebSocket upgrades need a
	// transport whose 101 response body is an io.ReadWriteCloser, as
	// http.Transport's is. If nil, lbkit's transport is used. Setting it
	// takes GET and HEAD off the fast lane.
	Transport http.RoundTripper
	// ModifyResponse, if set, is called with each backend response
	// before it is sent (httputil.ReverseProxy's ModifyResponse); an
	// error it returns is given to ErrorHandler and the response
	// discarded. If nil, responses go as the backend sent them, less the
	// hop-by-hop fields. Setting it takes GET and HEAD off the fast lane.
	ModifyResponse func(*http.Response) error
	// ErrorHandler, if set, answers requests no backend served, with the
	// error that ended the last attempt (wrapping balancer.ErrNoBackend
	// when no backend was available, a timeout when one was silent).
	// If nil, the proxy answers 503, 504 or 502 with a short plain-text
	// body (see the package doc, "Errors"). Setting it takes GET and
	// HEAD off the fast lane.
	ErrorHandler func(http.ResponseWriter, *http.Request, error)
}

// Identity names the load balancer in the SLB-ID and SLB-IP headers.
type Identity struct {
	ID   string
	Addr string
}

// A Rule is a forwarding rule: requests for Host whose path starts with
// Path go to Group.
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

// hooked reports whether an embedder's hook is set, which takes requests
// off the fast lane: the hooks work on http.Request and http.Response.
func (o *Options) hooked() bool {
	return o.Rewrite != nil || o.Transport != nil || o.ModifyResponse != nil || o.ErrorHandler != nil
}

// compiled is what a proxy keeps of its Options: validated, defaulted,
// indexed. Immutable once built, shared by every server of the proxy.
type compiled struct {
	o      Options
	group  *balancer.Group
	routes routes
	hash   *hashPolicy // nil: no HashBy
	sticky *session.Sticky
	plan   headerPlan
}

// compile validates o for group g, reporting every problem at once.
func compile(g *balancer.Group, o Options) (*compiled, error) {
	var errs []error
	if g == nil {
		errs = append(errs, configErr("Group", "nil", "required"))
	}
	for _, t := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"RequestTimeout", &o.RequestTimeout, DefaultRequestTimeout},
		{"ConnectTimeout", &o.ConnectTimeout, DefaultConnectTimeout},
	} {
		switch {
		case *t.v == 0:
			*t.v = t.def
		case *t.v < 0:
			errs = append(errs, configErr(t.field, *t.v, "negative"))
		}
	}
	if _, bad, ok := proxyin.NewTrust(o.TrustedProxies); !ok {
		errs = append(errs, configErr(fmt.Sprintf("TrustedProxies[%d]", bad), o.TrustedProxies[bad], "not a valid prefix"))
	}
	c := &compiled{o: o, group: g}
	var err error
	if c.routes, err = buildRoutes(g, o.Rules); err != nil {
		errs = append(errs, err)
	}
	if c.hash, err = o.HashBy.compile(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.StickySession != nil {
		sc := *o.StickySession
		// The cookie may name a member of any of the proxy's groups.
		sc.Backends, sc.Groups = nil, make([]session.Group, len(c.routes.groups))
		for i, g := range c.routes.groups {
			sc.Groups[i] = g
		}
		if c.sticky, err = session.New(sc); err != nil {
			return nil, err
		}
	}
	c.plan = newHeaderPlan(&c.o)
	return c, nil
}

// Groups returns every group the proxy sends to: its own first, then
// each rule's, once each.
func (c *compiled) groups() []*balancer.Group { return c.routes.groups }

func configErr(field string, value any, reason string) error {
	return cfgerr.New("httpproxy", field, value, reason)
}

// buildRoutes validates rules and indexes them.
func buildRoutes(def *balancer.Group, rules []Rule) (routes, error) {
	rs := routes{groups: []*balancer.Group{def}}
	byHost := map[string][]route{}
	var errs []error
	for i, r := range rules {
		field := fmt.Sprintf("Rules[%d]", i)
		if r.Group == nil {
			errs = append(errs, configErr(field+".Group", "nil", "required"))
			continue
		}
		p := cmp.Or(r.Path, "/")
		if p[0] != '/' {
			errs = append(errs, configErr(field+".Path", r.Path, "must start with /"))
			continue
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
			errs = append(errs, configErr(field+".Host", r.Host, cfgerr.Reason(err)))
			continue
		}
		byHost[d.String()] = append(byHost[d.String()], route{p, r.Group})
	}
	if len(errs) > 0 {
		return rs, errors.Join(errs...)
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
