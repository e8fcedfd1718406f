package httpproxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/lbkit/lbkit/tlspolicy"
)

// connInfo is what the proxy knows about one client connection; it
// rides in the connection's context (or is made from the request in the
// handler tier).
type connInfo struct {
	src, dst netip.AddrPort
	// Values of the fields the plan sets, shared by the connection's
	// requests: the client's IP, its source port, the local port, the
	// scheme.
	ip, srcPort, dstPort, proto []string
	reqs                        atomic.Int64
	cert                        atomic.Pointer[tlspolicy.ClientCert]
	tls                         *tls.ConnectionState // HTTPS: the handshake's outcome
	h3                          *h3Conn              // HTTP/3: the QUIC connection; else nil
}

var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// newConnInfo describes a client connection from its two addresses.
func newConnInfo(src, dst netip.AddrPort, https bool) *connInfo {
	hc := &connInfo{
		src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port()),
		dst: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()),
	}
	hc.ip = []string{hc.src.Addr().String()}
	hc.srcPort = []string{strconv.Itoa(int(hc.src.Port()))}
	hc.dstPort = []string{strconv.Itoa(int(hc.dst.Port()))}
	hc.proto = protoHTTP
	if https {
		hc.proto = protoHTTPS
	}
	return hc
}

// connInfoOf describes c.
func connInfoOf(c net.Conn, https bool) *connInfo {
	return newConnInfo(addrPortOf(c.RemoteAddr()), addrPortOf(c.LocalAddr()), https)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if a, ok := a.(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	if a != nil {
		ap, _ := netip.ParseAddrPort(a.String())
		return ap
	}
	return netip.AddrPort{}
}

type connKey struct{}

// connOf returns the connection r came on: from its context in the
// listener tier, else made from the request (the handler tier, inside
// another server).
func connOf(r *http.Request) *connInfo {
	if hc, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		return hc
	}
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	var dst netip.AddrPort
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		dst = addrPortOf(a)
	}
	return newConnInfo(src, dst, r.TLS != nil)
}

func withConn(ctx context.Context, hc *connInfo) context.Context {
	return context.WithValue(ctx, connKey{}, hc)
}
