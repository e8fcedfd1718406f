// Package proxyin reads the PROXY protocol header (versions 1 and 2) a
// trusted balancer in front of a listener writes at the start of each
// connection, so that the listener sees the real client: the package
// listener's TCP listeners and the HTTP front door (package httpproxy)
// share it, and httpproxy's trusted X-Forwarded-For walk shares its
// prefix set, Trust.
//
// The model is HAProxy's "tcp-request connection expect-proxy layer4 if
// { src … }": a peer in the trusted set (Policy.From) is read for a
// header; any other peer is not read at all, and whatever it sends,
// PROXY header or not, is the start of its stream. Parsing is
// github.com/pires/go-proxyproto's; this package adds the trust, the
// bounded wait and the bytes read past the header, which the caller
// hands on (Result.Pending).
//
// [PROXY protocol]: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
package proxyin
