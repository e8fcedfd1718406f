package listener

import (
	"time"

	"github.com/lbkit/lbkit/internal/stats"
)

// Stats is a snapshot of a listener's counters. Bytes "in" travel from
// clients to backends, bytes "out" from backends to clients.
type Stats struct {
	Name     string
	Protocol Protocol
	Port     int
	State    State
	// Client connections (TCP, HTTP, HTTPS) or flows (UDP) now open, and
	// opened in all. A backend's Active and New count requests in
	// flight and sent for HTTP and HTTPS.
	Active int64
	New    uint64
	// Bytes proxied; for HTTP and HTTPS, message bodies and WebSocket
	// bytes, not headers.
	BytesIn, BytesOut uint64
	// RefusedACL counts connections closed or datagrams dropped by the
	// ACL; ConnectFailures, failed backend connection attempts;
	// NoBackend, clients turned away because no backend was available;
	// Dropped, datagrams dropped as malformed, oversized, beyond the
	// flow table, beyond the 16 a new flow holds while it connects, or
	// over the bandwidth cap; Drained, connections closed
	// by connection drain; IdleResets, connections reset by the idle
	// timeout.
	RefusedACL, ConnectFailures, NoBackend, Dropped, Drained, IdleResets uint64
	// HTTP and HTTPS: Status counts responses by status class, Status[0]
	// 1xx through Status[4] 5xx, the listener's own 403, 502, 503 and 504
	// included (not the 400 and 431 net/http sends for malformed
	// requests). Upstream is the time from sending requests to backends
	// to receiving their response headers, summed over UpstreamResponses
	// responses (see Stats.UpstreamLatency).
	Status            [5]uint64
	UpstreamResponses uint64
	Upstream          time.Duration
	// QUICRouted counts UDP flows that Config.QUICRouter placed on the
	// backend their first datagram's connection ID names; QUICFallback,
	// flows of a listener with a router that went by four-tuple hash
	// instead: no QUIC connection ID, one the router could not decode or
	// map (a client-chosen Initial DCID, another configuration), or a
	// backend no longer eligible. Both stay zero without a router.
	QUICRouted, QUICFallback uint64
	// ProxyRefused counts connections reset for their PROXY header
	// (Config.AcceptProxy): malformed, or missing where required.
	ProxyRefused uint64
	// HTTP3Requests counts the requests HTTPS clients sent over HTTP/3
	// (HTTPOptions.HTTP3), refused ones included; they are also in
	// Status. Active and New count HTTP/3 (QUIC) connections with the
	// TCP ones; RefusedACL, QUIC handshakes the ACL refused.
	HTTP3Requests uint64
	// QUICRetries counts the Initial packets HTTP/3 answered with a
	// Retry, as half of HTTPOptions.MaxQUICHandshakes or more were in
	// progress and the client had not proved its address;
	// QUICHandshakesRefused, the Initial packets refused at the limit
	// itself. Both count packets: a client's ClientHello may span two.
	QUICRetries, QUICHandshakesRefused uint64
	// Backends holds per-backend counters by backend ID: every backend
	// that has had traffic through this listener.
	Backends map[string]BackendStats
}

// BackendStats are one backend's counters within one listener.
type BackendStats struct {
	Active            int64
	New               uint64
	BytesIn, BytesOut uint64
	ConnectFailures   uint64
	// HTTP and HTTPS, as in Stats; New counts requests sent.
	Status            [5]uint64
	UpstreamResponses uint64
	Upstream          time.Duration
}

// UpstreamLatency returns the mean time backends took to answer with a
// response header, zero before the first response.
func (s Stats) UpstreamLatency() time.Duration {
	if s.UpstreamResponses == 0 {
		return 0
	}
	return s.Upstream / time.Duration(s.UpstreamResponses)
}

// snapshot reads the listener's live counters into s.
func snapshot(c *stats.Counters, s *Stats) {
	s.Active = c.Active.Load()
	s.New = c.New.Load()
	s.BytesIn, s.BytesOut = c.BytesIn.Load(), c.BytesOut.Load()
	s.RefusedACL = c.RefusedACL.Load()
	s.ConnectFailures = c.ConnectFailures.Load()
	s.NoBackend = c.NoBackend.Load()
	s.Dropped = c.Dropped.Load()
	s.Drained = c.Drained.Load()
	s.IdleResets = c.Idle.Load()
	s.QUICRouted, s.QUICFallback = c.QUICRouted.Load(), c.QUICFallback.Load()
	s.ProxyRefused = c.ProxyRefused.Load()
	s.HTTP3Requests = c.HTTP3Requests.Load()
	s.QUICRetries, s.QUICHandshakesRefused = c.QUICRetries.Load(), c.QUICHandshakesRefused.Load()
	for i := range c.Status {
		s.Status[i] = c.Status[i].Load()
	}
	s.UpstreamResponses = c.UpstreamN.Load()
	s.Upstream = time.Duration(c.UpstreamNS.Load())
	s.Backends = map[string]BackendStats{}
	c.Backends(func(id string, b *stats.Backend) {
		bs := BackendStats{
			Active:            b.Active.Load(),
			New:               b.New.Load(),
			BytesIn:           b.BytesIn.Load(),
			BytesOut:          b.BytesOut.Load(),
			ConnectFailures:   b.ConnectFailures.Load(),
			UpstreamResponses: b.UpstreamN.Load(),
			Upstream:          time.Duration(b.UpstreamNS.Load()),
		}
		for i := range b.Status {
			bs.Status[i] = b.Status[i].Load()
		}
		s.Backends[id] = bs
	})
}
