package listener

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
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

// counters are a listener's live counters.
type counters struct {
	active                                                         atomic.Int64
	new                                                            atomic.Uint64
	bytesIn, bytesOut                                              atomic.Uint64
	refusedACL, connectFailures, noBackend, dropped, drained, idle atomic.Uint64
	quicRouted, quicFallback                                       atomic.Uint64
	status                                                         [5]atomic.Uint64
	upstreamN                                                      atomic.Uint64
	upstreamNS                                                     atomic.Int64

	mu       sync.RWMutex
	backends map[string]*backendCounters
}

type backendCounters struct {
	active            atomic.Int64
	new               atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	connectFailures   atomic.Uint64
	status            [5]atomic.Uint64
	upstreamN         atomic.Uint64
	upstreamNS        atomic.Int64
}

func (b *backendCounters) countStatus(code int) {
	if c := code/100 - 1; c >= 0 && c < len(b.status) {
		b.status[c].Add(1)
	}
}

// backend returns the counters of backend id, creating them on first use.
func (c *counters) backend(id string) *backendCounters {
	c.mu.RLock()
	b := c.backends[id]
	c.mu.RUnlock()
	if b != nil {
		return b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backends == nil {
		c.backends = map[string]*backendCounters{}
	}
	if b = c.backends[id]; b == nil {
		b = new(backendCounters)
		c.backends[id] = b
	}
	return b
}

func (c *counters) snapshot(s *Stats) {
	s.Active = c.active.Load()
	s.New = c.new.Load()
	s.BytesIn, s.BytesOut = c.bytesIn.Load(), c.bytesOut.Load()
	s.RefusedACL = c.refusedACL.Load()
	s.ConnectFailures = c.connectFailures.Load()
	s.NoBackend = c.noBackend.Load()
	s.Dropped = c.dropped.Load()
	s.Drained = c.drained.Load()
	s.IdleResets = c.idle.Load()
	s.QUICRouted, s.QUICFallback = c.quicRouted.Load(), c.quicFallback.Load()
	for i := range c.status {
		s.Status[i] = c.status[i].Load()
	}
	s.UpstreamResponses = c.upstreamN.Load()
	s.Upstream = time.Duration(c.upstreamNS.Load())
	c.mu.RLock()
	backends := maps.Clone(c.backends)
	c.mu.RUnlock()
	s.Backends = make(map[string]BackendStats, len(backends))
	for id, b := range backends {
		bs := BackendStats{
			Active:            b.active.Load(),
			New:               b.new.Load(),
			BytesIn:           b.bytesIn.Load(),
			BytesOut:          b.bytesOut.Load(),
			ConnectFailures:   b.connectFailures.Load(),
			UpstreamResponses: b.upstreamN.Load(),
			Upstream:          time.Duration(b.upstreamNS.Load()),
		}
		for i := range b.status {
			bs.Status[i] = b.status[i].Load()
		}
		s.Backends[id] = bs
	}
}
