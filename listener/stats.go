package listener

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a listener's counters. Bytes "in" travel from
// clients to backends, bytes "out" from backends to clients.
type Stats struct {
	Name     string
	Protocol Protocol
	Port     int
	State    State
	// Connections (TCP) or flows (UDP) now open, and opened in all.
	Active int64
	New    uint64
	// Bytes proxied.
	BytesIn, BytesOut uint64
	// RefusedACL counts connections closed or datagrams dropped by the
	// ACL; ConnectFailures, failed backend connection attempts;
	// NoBackend, clients turned away because no backend was available;
	// Dropped, datagrams dropped as malformed, oversized, beyond the
	// flow table or over the bandwidth cap; Drained, connections closed
	// by connection drain; IdleResets, connections reset by the idle
	// timeout.
	RefusedACL, ConnectFailures, NoBackend, Dropped, Drained, IdleResets uint64
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
}

// counters are a listener's live counters.
type counters struct {
	active                                                         atomic.Int64
	new                                                            atomic.Uint64
	bytesIn, bytesOut                                              atomic.Uint64
	refusedACL, connectFailures, noBackend, dropped, drained, idle atomic.Uint64

	mu       sync.RWMutex
	backends map[string]*backendCounters
}

type backendCounters struct {
	active            atomic.Int64
	new               atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	connectFailures   atomic.Uint64
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
	c.mu.RLock()
	backends := maps.Clone(c.backends)
	c.mu.RUnlock()
	s.Backends = make(map[string]BackendStats, len(backends))
	for id, b := range backends {
		s.Backends[id] = BackendStats{
			Active:          b.active.Load(),
			New:             b.new.Load(),
			BytesIn:         b.bytesIn.Load(),
			BytesOut:        b.bytesOut.Load(),
			ConnectFailures: b.connectFailures.Load(),
		}
	}
}
