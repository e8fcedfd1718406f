package httpproxy

import (
	"net/netip"
	"time"
)

// DefaultProxyHeaderTimeout is AcceptProxy.Timeout's default: as long as
// a request head is waited for (DefaultHeaderTimeout).
const DefaultProxyHeaderTimeout = DefaultHeaderTimeout

// AcceptProxy makes a listener read the PROXY protocol header (version
// 1 or 2, told apart by its signature) that a balancer in front of it
// writes at the start of each connection, so that the listener sees the
// real client: HAProxy's "expect-proxy layer4 if { src … }", nginx's
// "proxy_protocol" with "set_real_ip_from", Envoy's proxy_protocol
// listener filter. A Server (ServerConfig.AcceptProxy) reads it before
// the TLS handshake; the connection then stands for the client it names,
// for every request it carries: the ACL check (Host.Allow, so the front
// needs no entry of its own), the hash key, X-Forwarded-For,
// X-Forwarded-Client-srcport, X-Forwarded-Port and the access log.
// Package listener's Config.AcceptProxy is this type, for its TCP
// listeners too.
//
// Only peers in From are read: a balancer's header is believed because
// of where it comes from. Any other peer is not read for one at all:
// whatever it sends, a forged PROXY header included, is the start of its
// stream (for HTTP, a malformed request), so an untrusted client can
// neither name another client nor pay for a wait.
//
// A trusted peer's header is read on the connection's own goroutine,
// never on the accept loop, and waited for at most Timeout: a silent or
// slow peer is then refused if Required, else taken as the client (a
// peer of a protocol in which the server speaks first). A v2 LOCAL
// command (the front balancer's own health check), a v1 UNKNOWN line and
// a unix-socket client name no IP client: the peer is the client then.
// TLVs are read and ignored. A refused header (malformed, or missing
// where required) resets the connection, counted (package listener's
// Stats.ProxyRefused).
//
// The zero value (empty From) reads no one's header. NewServer and
// package listener refuse an invalid prefix, a negative Timeout, and
// Required or Timeout without From. A value is only read: it may be
// shared by listeners running at once.
type AcceptProxy struct {
	// From are the trusted peers: the addresses of the balancers in
	// front. Empty turns PROXY protocol off.
	From []netip.Prefix
	// Required refuses a trusted peer that sends no header: what HAProxy's
	// accept-proxy and nginx's proxy_protocol do. If false, such a peer
	// is taken as the client, as it is.
	Required bool
	// Timeout bounds the wait for a trusted peer's header, from the
	// connection's accept. If zero, 10 s (DefaultProxyHeaderTimeout) is
	// used; negative is refused.
	Timeout time.Duration
	// Now is the clock the wait is measured from: tests end it at once
	// with a clock an hour behind. If nil, time.Now.
	Now func() time.Time
}
