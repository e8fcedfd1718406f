package httpproxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/lbkit/lbkit/internal/stats"
	"github.com/quic-go/quic-go"
)

// DefaultMaxQUICHandshakes is ServerConfig.MaxQUICHandshakes's default:
// a thousand QUIC handshakes in progress, each a few KiB of state and
// two goroutines, is a few MiB, while a real client's handshake lasts
// one round trip — a thousand at once is a flood, not a crowd.
const DefaultMaxQUICHandshakes = 1000

// errHandshakeLimit is how a QUIC handshake beyond MaxQUICHandshakes is
// refused: quic-go answers its Initial with CONNECTION_REFUSED.
var errHandshakeLimit = errors.New("httpproxy: QUIC handshakes in progress at MaxQUICHandshakes")

// handshakeLimit bounds the QUIC handshakes in progress on one
// transport. From half the limit on, a client that has not proved its
// address must first answer a Retry (RFC 9000 §8.1.2), which costs the
// server one stateless packet: a flood from spoofed sources then never
// gets a connection, so it never holds a slot. At the limit, even a
// validated client is refused. A handshake holds its slot from the
// client's first Initial until the HTTP/3 server accepts the connection
// (releaseHandshake) or the attempt ends. Safe for concurrent use.
type handshakeLimit struct {
	max     int64
	retryAt int64 // max/2: above it, Retry
	n       atomic.Int64
	m       *stats.Counters
}

// slotKey marks a connection's context with the release of its slot.
type slotKey struct{}

func newHandshakeLimit(max int, m *stats.Counters) *handshakeLimit {
	return &handshakeLimit{max: int64(max), retryAt: int64(max) / 2, m: m}
}

// install makes tr apply the limit to its server's handshakes.
func (l *handshakeLimit) install(tr *quic.Transport) {
	tr.VerifySourceAddress = l.verify
	tr.ConnContext = l.admit
}

// verify reports whether a client without a token must answer a Retry
// first (quic.Transport.VerifySourceAddress).
func (l *handshakeLimit) verify(net.Addr) bool {
	if l.n.Load() < l.retryAt {
		return false
	}
	l.m.QUICRetries.Add(1)
	return true
}

// admit takes a slot for a new connection or refuses it
// (quic.Transport.ConnContext). The slot goes back when the connection
// is accepted (releaseHandshake) or its context ends, whichever comes first.
func (l *handshakeLimit) admit(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		l.m.QUICHandshakesRefused.Add(1)
		return ctx, errHandshakeLimit
	}
	var once atomic.Bool
	free := func() {
		if once.CompareAndSwap(false, true) {
			l.n.Add(-1)
		}
	}
	ctx = context.WithValue(ctx, slotKey{}, free)
	context.AfterFunc(ctx, free)
	return ctx, nil
}

// release gives back the slot of a connection whose handshake is done.
func releaseHandshake(c *quic.Conn) {
	if free, ok := c.Context().Value(slotKey{}).(func()); ok {
		free()
	}
}
