// Package stats holds the live counters of a listener, shared by the
// packages that count into them (listener for TCP and UDP, httpproxy for
// HTTP and HTTPS) and read by listener.Listener.Stats. Every field is an
// atomic, so counting takes no lock; only the per-backend map has one,
// taken once per backend and cached by its users.
package stats

import (
	"sync"
	"sync/atomic"
)

// Counters are one listener's counters (listener.Stats documents each).
// The zero value is ready; safe for concurrent use.
type Counters struct {
	Active                                                         atomic.Int64
	New                                                            atomic.Uint64
	BytesIn, BytesOut                                              atomic.Uint64
	RefusedACL, ConnectFailures, NoBackend, Dropped, Drained, Idle atomic.Uint64
	QUICRouted, QUICFallback                                       atomic.Uint64
	ProxyRefused                                                   atomic.Uint64
	HTTP3Requests                                                  atomic.Uint64
	QUICRetries, QUICHandshakesRefused                             atomic.Uint64
	Status                                                         [5]atomic.Uint64
	UpstreamN                                                      atomic.Uint64
	UpstreamNS                                                     atomic.Int64

	mu       sync.RWMutex
	backends map[string]*Backend
}

// Backend are one backend's counters within one listener.
type Backend struct {
	Active            atomic.Int64
	New               atomic.Uint64
	BytesIn, BytesOut atomic.Uint64
	ConnectFailures   atomic.Uint64
	Status            [5]atomic.Uint64
	UpstreamN         atomic.Uint64
	UpstreamNS        atomic.Int64
}

// CountStatus counts one response of status code in its class.
func (c *Counters) CountStatus(code int) { countStatus(&c.Status, code) }

// CountStatus counts one response of status code in its class.
func (b *Backend) CountStatus(code int) { countStatus(&b.Status, code) }

func countStatus(s *[5]atomic.Uint64, code int) {
	if c := code/100 - 1; c >= 0 && c < len(s) {
		s[c].Add(1)
	}
}

// Backend returns the counters of backend id, creating them on first use.
func (c *Counters) Backend(id string) *Backend {
	c.mu.RLock()
	b := c.backends[id]
	c.mu.RUnlock()
	if b != nil {
		return b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backends == nil {
		c.backends = map[string]*Backend{}
	}
	if b = c.backends[id]; b == nil {
		b = new(Backend)
		c.backends[id] = b
	}
	return b
}

// Backends calls f for every backend counted so far.
func (c *Counters) Backends(f func(id string, b *Backend)) {
	c.mu.RLock()
	bs := make(map[string]*Backend, len(c.backends))
	for id, b := range c.backends {
		bs[id] = b
	}
	c.mu.RUnlock()
	for id, b := range bs {
		f(id, b)
	}
}
