package httpproxy

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/internal/netpoll"
	"github.com/lbkit/lbkit/internal/netx"
)

// Every connection of an HTTP or HTTPS listener comes in through its
// front door: it accepts, does the TLS handshake on HTTPS, gives HTTP/2
// connections to the listener's net/http server, and serves HTTP/1.1
// itself when the listener allows (the fast lane, clientconn.go), handing
// the rest to net/http through a requestGuard (guard.go), so that
// every HTTP/1 request head is read by lbkit's code before net/http acts
// on it.

// Connection states of the front door.
const (
	connIdle   int32 = iota // handshaking or waiting for a request: a stop closes it
	connActive              // serving a request
	connParked              // waiting in the poller's set, goroutine-free: the poller owns it
	connClosed
)

// frontDoor is a listener's accept loop and the connections it has not
// given to net/http.
type frontDoor struct {
	s          *server
	ln         net.Listener
	tls        *tls.Config // nil on HTTP
	lane       bool        // the fast lane is on
	opts       h1Options
	h1         *handoffListener // to net/http's HTTP/1 server
	h2         *handoffListener // to its HTTP/2 server; nil on HTTP
	poller     *netpoll.Poller  // parks idle plain-HTTP connections; nil without
	acceptDone chan struct{}
	conns      sync.WaitGroup // connection goroutines
	handshakes sync.WaitGroup // TLS handshakes, until over or handed to h2
	freshGrace time.Duration  // the const, but in tests
	draining   atomic.Bool
	retiring   atomic.Bool   // set with draining by Retire: idle connections stay for one more request
	served     atomic.Uint64 // requests answered in the lane
	handedOff  atomic.Uint64 // connections given to net/http

	mu   sync.Mutex
	open map[*clientConn]struct{}
}

// newFrontDoor returns the listener's front door.
func newFrontDoor(s *server, ln net.Listener) *frontDoor {
	o := &s.sc
	f := &frontDoor{
		s:  s,
		ln: ln,
		lane: o.Middleware == nil && o.RedirectToPort == 0 && !o.NoFastLane &&
			!s.c.o.ClientCertHeaders && !s.c.o.hooked(),
		opts: h1Options{
			maxHead: min(o.MaxHeaderBytes, len(reqState{}.in)),
			maxURI:  o.MaxURIBytes,
			gzip:    !s.c.o.NoGzip,
			sticky:  s.c.sticky != nil,
			plan:    &s.c.plan,
		},
		h1:         newHandoffListener(ln.Addr()),
		acceptDone: make(chan struct{}),
		open:       map[*clientConn]struct{}{},
		freshGrace: freshGrace,
	}
	f.tls = o.TLS
	if f.tls != nil {
		f.h2 = newHandoffListener(ln.Addr())
	}
	if f.lane && f.tls == nil {
		// Idle plain-HTTP connections wait in an epoll set of the front
		// door's own, without a goroutine each; where there is none
		// (off Linux), each keeps its goroutine.
		if p, err := netpoll.New(); err == nil {
			f.poller = p
		}
	}
	return f
}

// accept runs the lane's accept loop until its listener is closed.
func (f *frontDoor) accept() {
	defer close(f.acceptDone)
	netx.AcceptLoop(f.s.log, f.ln.Accept, func(c net.Conn) {
		cc := &clientConn{f: f, c: c, raw: c, hc: connInfoOf(c, f.tls != nil)}
		f.mu.Lock()
		f.open[cc] = struct{}{}
		f.mu.Unlock()
		f.conns.Add(1)
		if f.tls != nil {
			f.handshakes.Add(1)
		}
		go cc.start()
	})
}

// freshGrace is how long a stop lets a connection that has carried no
// request yet send its first, as net/http's Shutdown does: one accepted
// just before the stop (a client's request on its way, or a listener
// that replaces this one on the same socket still to take over) is
// served, not cut.
const freshGrace = 5 * time.Second

// stopAccepting closes the listener and marks the front door draining:
// from then on each fast-lane response says "Connection: close" and its
// connection closes after it.
func (f *frontDoor) stopAccepting(retire bool) {
	f.ln.Close()
	<-f.acceptDone
	f.retiring.Store(retire)
	f.draining.Store(true)
}

// drain waits for the front door's connections, after stopAccepting.
// Unless it retires them, it first closes the idle ones (those that
// have carried no request yet after freshGrace; parked ones at once:
// they were silent for parkAfter). Retired, an idle connection stays
// until its next request is answered or its idle timeout passes, a
// parked one in the poller. Connections still open when ctx is done are
// cut.
func (f *frontDoor) drain(ctx context.Context, retire bool) error {
	// The poller's close waits for every Wake it started, and a Wake
	// serves a request: the close runs beside the wait for ctx, not
	// before it.
	polled := make(chan struct{})
	var closing sync.Once
	closePoller := func() {
		closing.Do(func() {
			go func() {
				f.closePoller()
				close(polled)
			}()
		})
	}
	if !retire {
		f.closeIdle(false)
		closePoller()
	}
	done := make(chan struct{})
	go func() {
		f.conns.Wait()
		close(done)
	}()
	fresh := time.NewTimer(f.freshGrace)
	defer fresh.Stop()
	for {
		select {
		case <-done:
			closePoller()
			<-polled
			return nil
		case <-fresh.C:
			f.closeIdle(true)
			continue
		case <-ctx.Done():
		}
		break
	}
	// A deadline in the past ends the reads and writes in progress —
	// those of the Wakes the poller's close waits for among them, on a
	// client that stopped reading, say — without closing a socket the
	// poller may hold: a parked connection is its owner's to close only
	// once the poller has handed it back.
	f.mu.Lock()
	for cc := range f.open {
		cc.raw.SetDeadline(time.Unix(1, 0))
		if b := cc.back.Load(); b != nil {
			b.c.SetDeadline(time.Unix(1, 0))
		}
	}
	f.mu.Unlock()
	closePoller()
	<-polled
	f.mu.Lock()
	for cc := range f.open {
		cc.state.Store(connClosed)
		cc.raw.Close()
		if b := cc.back.Load(); b != nil {
			b.c.Close()
		}
	}
	f.mu.Unlock()
	<-done
	return ctx.Err()
}

// closePoller closes the poller, if there is one: parked connections
// wake with Closed and close, but for those that have carried no request
// yet (Wake).
func (f *frontDoor) closePoller() {
	if f.poller != nil {
		f.poller.Close()
	}
}

// closeIdle closes the connections waiting for a request: the fresh
// ones, which have carried none, or the others.
func (f *frontDoor) closeIdle(fresh bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cc := range f.open {
		if (cc.hc.reqs.Load() == 0) == fresh && cc.state.CompareAndSwap(connIdle, connClosed) {
			cc.raw.Close()
		}
	}
}

// handoffListener is how the fast lane gives connections to the
// listener's net/http server.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return h.addr }

// push hands c to the server; false if it has stopped.
func (h *handoffListener) push(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// handoffConn is an HTTP/1 connection the front door handed over: net/http
// reads it through its guard, starting with the bytes the fast lane had
// read and not served.
type handoffConn struct {
	net.Conn
	guard *requestGuard
	hc    *connInfo
}

func (c *handoffConn) Read(p []byte) (int, error) { return c.guard.Read(p) }

// CloseWrite lets net/http half-close the connection, as it does a
// *net.TCPConn's.
func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
