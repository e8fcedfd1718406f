package httpproxy

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
)

// Behind trusted proxies (Options.TrustedProxies), the client of a
// request is not its connection's peer but the one the proxies name in
// X-Forwarded-For: walking the field from the right, past every entry
// that is itself a trusted proxy, the first other address (nginx's
// real_ip_recursive; Envoy's xff_num_trusted_hops counts instead). An
// entry that is not an address ends the walk: it was written by the
// trusted hop to its right, which is then the client. Every entry
// trusted: the leftmost is the client. A peer outside TrustedProxies is
// the client, and what it sent in X-Forwarded-For is appended to, never
// believed.
//
// The client so found is what the request's ACL check, hash key and
// access log see, and the last entry of the X-Forwarded-For the backend
// gets: the field is cut after it, dropping the trusted hops (their
// addresses are the operator's own), so a backend that takes the last
// entry, as a CLB's backends do, finds the client. The connection's ACL
// (the listener's, at accept) checks its peer; X-Forwarded-Client-srcport
// stays the peer's port, as X-Forwarded-For carries no port.

// xffCut is where a request's X-Forwarded-For ends for the backend: in
// field value line, at byte end, just after the client's entry. A line
// below 0 keeps the fields whole and appends the peer.
type xffCut struct{ line, end int }

var noCut = xffCut{line: -1}

// xffFields are a request's X-Forwarded-For field values, as each lane
// holds them.
type xffFields interface {
	xffLen() int
	xffField(i int) string
}

// client returns the client of a request from peer carrying the
// X-Forwarded-For values f, and where the field is cut for the backend.
// It allocates nothing.
func (p *headerPlan) client(peer netip.AddrPort, f xffFields) (netip.AddrPort, xffCut) {
	client, cut := peer, noCut
	if !p.trusted.Contains(peer.Addr()) {
		return client, cut
	}
	for i := f.xffLen() - 1; i >= 0; i-- {
		v := f.xffField(i)
		for end := len(v); end >= 0; {
			start := strings.LastIndexByte(v[:end], ',') + 1
			s, e := trimSpace(v, start, end)
			a, ok := parseXFFEntry(v[s:e])
			if !ok {
				return client, cut
			}
			client, cut = a, xffCut{i, e}
			if !p.trusted.Contains(a.Addr()) {
				return client, cut
			}
			end = start - 1
		}
	}
	return client, cut
}

// trimSpace returns the bounds of v[start:end] without its surrounding
// spaces and tabs.
func trimSpace(v string, start, end int) (int, int) {
	for start < end && (v[start] == ' ' || v[start] == '\t') {
		start++
	}
	for end > start && (v[end-1] == ' ' || v[end-1] == '\t') {
		end--
	}
	return start, end
}

// parseXFFEntry reads one X-Forwarded-For entry: an IP address, or one
// with a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies
// write.
func parseXFFEntry(e string) (netip.AddrPort, bool) {
	if a, err := netip.ParseAddr(e); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 0), true
	}
	ap, err := netip.ParseAddrPort(e)
	if err != nil {
		return ap, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// xffCutValue is the general lane's X-Forwarded-For for the backend
// when the client came from it: prior, the client's fields, cut at c.
func xffCutValue(prior []string, c xffCut) string {
	var b strings.Builder
	for _, v := range prior[:c.line] {
		b.WriteString(v)
		b.WriteString(", ")
	}
	b.WriteString(prior[c.line][:c.end])
	return b.String()
}

// stdXFF are the X-Forwarded-For values of a request net/http read.
type stdXFF []string

func (x *stdXFF) xffLen() int           { return len(*x) }
func (x *stdXFF) xffField(i int) string { return (*x)[i] }

func (q *h1Request) xffLen() int { return q.nxff }
func (q *h1Request) xffField(i int) string {
	l := q.xff[i]
	return unsafeString(q.raw[l.start:l.end])
}

// requestClient is what the general lane found of a request's client,
// kept in its context for the access log once the header plan has cut
// X-Forwarded-For.
type requestClient struct {
	addr netip.AddrPort
	cut  xffCut
}

type clientKey struct{}

// clientOf returns the client of r, which came on connection hc, and
// where its X-Forwarded-For is cut.
func (s *server) clientOf(r *http.Request, hc *connInfo) (netip.AddrPort, xffCut) {
	if rc, ok := r.Context().Value(clientKey{}).(*requestClient); ok {
		return rc.addr, rc.cut
	}
	x := stdXFF(r.Header[hdrXFF])
	return s.c.plan.client(hc.src, &x)
}

// withClient returns r with its client found and kept, when it is not
// the connection's peer: the header plan is about to cut the field it
// came from.
func (s *server) withClient(r *http.Request, hc *connInfo) (*http.Request, netip.AddrPort, xffCut) {
	client, cut := s.clientOf(r, hc)
	if cut == noCut {
		return r, client, cut
	}
	return r.WithContext(context.WithValue(r.Context(), clientKey{}, &requestClient{client, cut})), client, cut
}
