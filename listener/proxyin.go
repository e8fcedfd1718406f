package listener

import "github.com/lbkit/lbkit/httpproxy"

// DefaultProxyHeaderTimeout is AcceptProxy.Timeout's default: as long as
// an HTTP listener waits for a request head (HTTP.HeaderTimeout).
const DefaultProxyHeaderTimeout = httpproxy.DefaultProxyHeaderTimeout

// AcceptProxy makes a TCP, HTTP or HTTPS listener read the PROXY
// protocol header that a balancer in front of it writes at the start of
// each connection, from the peers in From only (see
// httpproxy.AcceptProxy, which it is, for the fields, the trust and the
// wait). The listener then sees the real client: its ACL (checked on the
// header's client, so the front needs no entry of its own), source-IP
// persistence, sch and tch keys, the PROXY header it sends on
// (ProxyProtocol), an HTTP listener's X-Forwarded-For,
// X-Forwarded-Client-srcport and X-Forwarded-Port headers and its access
// log all take the header's client and destination. On TCP an untrusted
// peer's bytes, a forged PROXY header included, go to the backend after
// the listener's own header, if any. A refused header resets the
// connection, counted in Stats.ProxyRefused.
//
// The zero value (empty From) reads no headers.
type AcceptProxy = httpproxy.AcceptProxy
