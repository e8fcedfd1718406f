package listener

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/internal/proxyin"
)

// DefaultProxyHeaderTimeout is AcceptProxy.Timeout's default: as long as
// an HTTP listener waits for a request head (HTTP.HeaderTimeout).
const DefaultProxyHeaderTimeout = DefaultHeaderTimeout

// AcceptProxy makes a TCP, HTTP or HTTPS listener read the PROXY
// protocol header (version 1 or 2, told apart by its signature) that a
// balancer in front of it writes at the start of each connection, so
// that the listener sees the real client: its ACL, source-IP
// persistence, sch and tch keys, the PROXY header it sends on
// (ProxyProtocol), its X-Forwarded-For, X-Forwarded-Client-srcport and
// X-Forwarded-Port headers and its access log all take the header's
// client and destination. This is HAProxy's "expect-proxy layer4 if
// { src … }", nginx's "proxy_protocol" with "set_real_ip_from", Envoy's
// proxy_protocol listener filter.
//
// Only peers in From are read: a balancer's header is believed because
// of where it comes from. Any other peer is not read for one at all:
// whatever it sends, a forged PROXY header included, is the start of its
// stream (on TCP the backend gets those bytes after the listener's own
// header, if any; on HTTP they are a malformed request), so an untrusted
// client can neither name another client nor pay for a wait. The ACL is
// checked on the real client, once the header is read: a front balancer
// needs no ACL entry of its own.
//
// A trusted peer's header is read on the connection's own goroutine,
// never on the accept loop, and waited for at most Timeout: a silent or
// slow peer is then refused if Required, else taken as the client (a
// peer of a protocol in which the server speaks first). A v2 LOCAL
// command (the front balancer's own health check), a v1 UNKNOWN line and
// a unix-socket client name no IP client: the peer is the client then.
// TLVs are read and ignored. A malformed header is refused: the
// connection is reset and counted in Stats.ProxyRefused.
//
// The zero value (empty From) reads no headers.
type AcceptProxy struct {
	// From are the trusted peers: the addresses of the balancers in
	// front. Empty turns PROXY protocol off.
	From []netip.Prefix
	// Required refuses a trusted peer that sends no header: what HAProxy's
	// accept-proxy and nginx's proxy_protocol do. If false, such a peer
	// is taken as the client, as it is.
	Required bool
	// Timeout bounds the wait for a trusted peer's header. If zero, 10 s
	// (DefaultProxyHeaderTimeout) is used; negative is refused.
	Timeout time.Duration
}

// proxyInNow is the clock of every listener's AcceptProxy policy: nil,
// the real one, but for tests that end a header's wait at once.
var proxyInNow func() time.Time

// policy validates a and returns what the listener runs, nil when off.
// now is the policy's clock, nil for the real one.
func (a AcceptProxy) policy(now func() time.Time) (*proxyin.Policy, error) {
	t, bad, ok := proxyin.NewTrust(a.From)
	if !ok {
		return nil, configErr(fmt.Sprintf("AcceptProxy.From[%d]", bad), a.From[bad], "not a valid prefix")
	}
	if t.Empty() {
		if a.Required || a.Timeout != 0 {
			return nil, configErr("AcceptProxy.From", "empty", "needs the trusted balancers' prefixes")
		}
		return nil, nil
	}
	d := a.Timeout
	if err := timeouts(timeout{"AcceptProxy.Timeout", &d, DefaultProxyHeaderTimeout}); err != nil {
		return nil, err
	}
	return &proxyin.Policy{From: t, Required: a.Required, Timeout: d, Now: now}, nil
}
