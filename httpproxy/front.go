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
	handoff    *handoffListener
	poller     *netpoll.Poller // parks idle plain-HTTP connections; nil without
	acceptDone chan struct{}
	conns      sync.WaitGroup // connection goroutines
	draining   atomic.Bool
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
		handoff:    &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})},
		acceptDone: make(chan struct{}),
		open:       map[*clientConn]struct{}{},
	}
	f.tls = o.TLS
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
		go cc.start()
	})
}

// freshGrace is how long a stop lets a connection that has carried no
// request yet send its first, as net/http's Shutdown does: one accepted
// just before the stop (a client's request on its way, or a listener
// that replaces this one on the same socket still to take over) is
// served, not cut.
const freshGrace = 5 * time.Second

// shutdown stops accepting, closes idle connections (those that have
// carried no request yet after freshGrace, or at once if parked: they
// were silent for parkAfter), lets requests in flight finish until ctx
// is done, then cuts the rest.
func (f *frontDoor) shutdown(ctx context.Context) error {
	f.ln.Close()
	<-f.acceptDone
	f.draining.Store(true)
	f.closeIdle(false)
	if f.poller != nil {
		f.poller.Close() // parked connections wake with Closed and close
	}
	done := make(chan struct{})
	go func() {
		f.conns.Wait()
		close(done)
	}()
	fresh := time.NewTimer(freshGrace)
	defer fresh.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-fresh.C:
			f.closeIdle(true)
			continue
		case <-ctx.Done():
		}
		break
	}
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

// closeIdle closes the connections waiting for a request; fresh ones,
// which have carried none, only if asked.
func (f *frontDoor) closeIdle(fresh bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cc := range f.open {
		if (fresh || cc.hc.reqs.Load() > 0) && cc.state.CompareAndSwap(connIdle, connClosed) {
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
