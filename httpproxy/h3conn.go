package httpproxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Conn is one QUIC connection of a server's HTTP/3 side. It is served
// by an http3.Server of its own, so that its graceful shutdown — a
// GOAWAY naming the next stream, later streams reset with
// H3_REQUEST_REJECTED, streams in flight left to finish — can be sent
// on this connection alone when it reaches its request limit
// (http3.Server keeps the control stream that carries GOAWAY to
// itself, and RawServerConn, which would give the streams to us, cannot
// send one). Its idle timer counts only requests in the handler: a
// stream whose request head never arrives is idle, so it cannot hold
// the connection open, whereas http3's own timer stops while any
// stream is open and the client's PINGs keep QUIC's idle timeout at
// bay. The zero value is not usable; h3Server.accept makes them. Safe
// for concurrent use.
type h3Conn struct {
	qc        *quic.Conn
	srv       *http3.Server
	timeout   atomic.Int64    // ServerConfig.IdleTimeout; closeSoon's grace once the server stops
	idle      *time.Timer     // closes qc when no request has been in the handler for timeout
	streams   atomic.Int64    // requests in the handler
	goingAway atomic.Bool     // the graceful shutdown of the request limit has begun
	bg        *sync.WaitGroup // the h3Server's goroutines, for the shutdown at the limit
}

// begin marks a request entering the handler: the connection is busy.
// It allocates nothing.
func (c *h3Conn) begin() {
	c.streams.Add(1)
	c.idle.Stop()
}

// end marks a request leaving the handler; the last one to leave
// starts the idle timeout afresh. It allocates nothing.
func (c *h3Conn) end() {
	if c.streams.Add(-1) == 0 {
		c.idle.Reset(time.Duration(c.timeout.Load()))
	}
}

// maxAckDelay is the peer's default max_ack_delay (RFC 9000 §18.2):
// quic-go does not tell the one the client announced.
const maxAckDelay = 25 * time.Millisecond

// closeSoon closes the connection, if no request is in the handler, once
// what it last sent can have been acknowledged: three probe timeouts
// (RFC 9002 §6.2.1). The response of a request whose handler has just
// returned may still be in quic-go's send queue, or lost and due for
// retransmission, and CONNECTION_CLOSE would drop it. A request that
// ends later restarts the same short wait, not the idle timeout.
func (c *h3Conn) closeSoon() {
	st := c.qc.ConnectionStats()
	pto := st.SmoothedRTT + max(4*st.MeanDeviation, time.Millisecond) + maxAckDelay
	c.timeout.Store(int64(3 * pto))
	if c.streams.Load() == 0 {
		c.idle.Reset(3 * pto)
	}
}

// idleExpired closes the connection unless a request entered the
// handler since the timer was armed (begin then stops it, but may lose
// the race with its firing; the request then rearms it when it ends).
func (c *h3Conn) idleExpired() {
	if c.streams.Load() == 0 {
		c.close("idle timeout")
	}
}

// close closes the connection at once with H3_NO_ERROR.
func (c *h3Conn) close(why string) {
	c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), why)
}

// limitReached begins the graceful shutdown of a connection that has
// carried its last request: the GOAWAY goes out while that request is
// still in the handler, so the client opens its next streams on a new
// connection rather than have them rejected. Once per connection; the
// goroutine ends when the connection does, at the latest at its idle
// timeout after its last request.
func (c *h3Conn) limitReached() {
	if c.goingAway.CompareAndSwap(false, true) {
		c.bg.Go(func() { c.shutdown(context.Background()) })
	}
}

// shutdown shuts the connection's server down gracefully, as
// http3.Server.Shutdown does (GOAWAY, then streams in flight finish
// until ctx is done, then the connection closes).
func (c *h3Conn) shutdown(ctx context.Context) error { return c.srv.Shutdown(ctx) }
