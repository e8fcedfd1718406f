package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/netpoll"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/stats"
	proxyproto "github.com/pires/go-proxyproto"
)

// The idle timeout's precision. A connection's last activity is recorded
// when data becomes readable and when a copy returns. On Linux a copy
// moves what is queued and returns, so the record lags the last byte by
// the copy alone; elsewhere a copy waits for more data for at most
// copyBound. The idle sweeper looks at every connection once per
// idleTick. An idle connection is therefore reset between
// EstablishedTimeout and EstablishedTimeout + idleSlack after its last
// byte, with no runtime timer per idle connection.
const (
	copyBound = 250 * time.Millisecond
	idleTick  = 250 * time.Millisecond
	idleSlack = copyBound + idleTick
)

// parkAfter is how long a direction with nothing queued keeps its
// goroutine, waiting in Go's poller, before it parks its socket. Streams
// whose gaps are shorter never pay a park and a wake; an idle connection
// gives its goroutines, and the stacks its copies grew, back soon. Many
// connections opened at once are what makes this wait matter: each holds
// its goroutines for parkAfter, so the resident memory a burst leaves
// behind grows with it.
const parkAfter = 30 * time.Millisecond

// tcpServer is a running TCP listener.
type tcpServer struct {
	l   *Listener
	lns []*net.TCPListener

	ctx    context.Context // cancelled when connections must be cut
	cancel context.CancelFunc
	accept sync.WaitGroup  // accept loops
	conns  sync.WaitGroup  // proxied connections
	sweep  sync.WaitGroup  // the idle sweeper
	poller *netpoll.Poller // holds idle directions without a goroutine; nil where it cannot

	mu        sync.Mutex
	byBackend map[string]map[*tcpConn]struct{}
	draining  map[string]*time.Timer
	cut       bool // the stop's deadline passed: connections are aborted, none is added
}

func startTCP(l *Listener, socks sockets) (server, error) {
	s := &tcpServer{
		l:         l,
		lns:       socks.tcp,
		byBackend: map[string]map[*tcpConn]struct{}{},
		draining:  map[string]*time.Timer{},
	}
	if p, err := netpoll.New(); err == nil {
		s.poller = p
	} else if !errors.Is(err, errors.ErrUnsupported) {
		l.cfg.Logger.Warn("idle TCP connections keep their goroutines", "err", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i, ln := range s.lns {
		port := l.cfg.Port + i
		s.accept.Go(func() { s.serve(ln, port) })
	}
	s.sweep.Go(func() { s.sweepIdle(time.Now) })
	return s, nil
}

func (s *tcpServer) socks() sockets { return sockets{tcp: s.lns} }

func (s *tcpServer) addrs() []net.Addr {
	as := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		as[i] = ln.Addr()
	}
	return as
}

func (s *tcpServer) serve(ln *net.TCPListener, port int) {
	netx.AcceptLoop(s.l.cfg.Logger, ln.AcceptTCP, func(c *net.TCPConn) {
		s.conns.Add(1)
		go s.handle(c, port)
	})
}

// handle connects one client connection and starts proxying it; the
// connection's directions then run, park and end on their own, and the
// last to end finishes the connection (tcpConn.end).
func (s *tcpServer) handle(client *net.TCPConn, port int) {
	l := s.l
	src := client.RemoteAddr().(*net.TCPAddr).AddrPort()
	dst := client.LocalAddr().(*net.TCPAddr).AddrPort()
	var pending []byte // the client's first bytes, read with its PROXY header
	if p := l.cfg.proxyIn; p != nil {
		in, err := p.Read(s.ctx, client, src, dst)
		if err != nil {
			l.c.ProxyRefused.Add(1)
			l.cfg.Logger.Debug("PROXY header refused", "peer", src, "err", err)
			resetConn(client)
			s.conns.Done()
			return
		}
		src, dst, pending = in.Src, in.Dst, in.Pending
	}
	if !l.acl.allow(src.Addr().Unmap()) {
		l.c.RefusedACL.Add(1)
		resetConn(client)
		s.conns.Done()
		return
	}
	conn, at, err := l.connect(s.ctx, "tcp", balancer.Key{Src: src, Dst: netx.ServiceDst(l.cfg.ServiceAddr, dst)}, "", port)
	if err != nil {
		resetConn(client)
		s.conns.Done()
		return
	}
	backend := conn.(*net.TCPConn)
	m := at.Member()
	c := &tcpConn{s: s, client: client, backend: backend, member: m, bc: l.c.Backend(m.ID()), at: at, src: src.Addr()}
	// An established connection is TCP's proof of a working backend.
	c.connectTime = at.Succeeded()
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	// undo resets a connection that never started proxying.
	undo := func(info balancer.DoneInfo) {
		c.cancel()
		resetConn(client)
		resetConn(backend)
		at.Done(info)
		s.conns.Done()
	}
	if err := c.start(src, dst, pending); err != nil {
		l.cfg.Logger.Debug("writing to a new backend connection failed", "backend", m.ID(), "err", err)
		undo(balancer.DoneInfo{Err: err})
		return
	}
	if !c.up.init(c, backend, client, true) || !c.down.init(c, client, backend, false) {
		undo(balancer.DoneInfo{Latency: c.connectTime})
		return
	}
	// Active from here: the idle sweep reads the time of the last byte,
	// and an abort ends the two directions.
	c.touch()
	c.live.Store(2)
	if !s.track(c, true) {
		undo(balancer.DoneInfo{Latency: c.connectTime}) // the stop has cut the connections
		return
	}
	l.c.Active.Add(1)
	l.c.New.Add(1)
	c.bc.Active.Add(1)
	c.bc.New.Add(1)
	go c.down.run()
	c.up.run()
}

// start writes what the backend gets before the copies begin: the
// PROXY header naming the client src and the address dst it reached,
// if the listener sends one, then the client's bytes read with its own
// PROXY header.
func (c *tcpConn) start(src, dst netip.AddrPort, pending []byte) error {
	if v := c.s.l.cfg.ProxyProtocol; v > 0 {
		h := proxyproto.HeaderProxyFromAddrs(byte(v), net.TCPAddrFromAddrPort(src), net.TCPAddrFromAddrPort(dst))
		if _, err := h.WriteTo(c.backend); err != nil {
			return err
		}
	}
	if len(pending) > 0 {
		if _, err := c.backend.Write(pending); err != nil {
			return err
		}
		c.count(len(pending), true) // in: towards the backend
	}
	return nil
}

// withPort replaces the port of host:port.
func withPort(addr string, port int) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// track adds or removes c from the per-backend registry that connection
// drain, the idle sweep and a stop's cut read. It refuses to add c (and
// reports false) once the stop has cut the connections: no connection
// escapes the cut.
func (s *tcpServer) track(c *tcpConn, add bool) bool {
	id := c.member.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byBackend[id]
	if add {
		if s.cut {
			return false
		}
		if set == nil {
			set = map[*tcpConn]struct{}{}
			s.byBackend[id] = set
		}
		set[c] = struct{}{}
		return true
	}
	delete(set, c)
	if len(set) == 0 {
		delete(s.byBackend, id)
	}
	return true
}

// groupChanged drains the connections of backends that were removed,
// drained or put in maintenance, when connection drain is on.
func (s *tcpServer) groupChanged() {
	if s.l.cfg.ConnectionDrain {
		s.checkDrain()
	}
}

// gone reports whether backend id may no longer take its connections:
// removed, draining or in maintenance.
func (s *tcpServer) gone(id string) bool {
	m, ok := s.l.cfg.Group.Member(id)
	return !ok || m.State() != balancer.Ready
}

// checkDrain starts a drain timer for every backend that went away and
// cancels the timers of backends that came back.
func (s *tcpServer) checkDrain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.byBackend {
		t, draining := s.draining[id]
		switch gone := s.gone(id); {
		case gone && !draining:
			s.draining[id] = time.AfterFunc(s.l.cfg.ConnectionDrainTimeout, func() { s.drain(id) })
			s.l.cfg.Logger.Info("draining backend", "backend", id, "timeout", s.l.cfg.ConnectionDrainTimeout)
		case !gone && draining:
			t.Stop()
			delete(s.draining, id)
		}
	}
}

// drain closes the connections of backend id once its drain time is up,
// if it is still gone.
func (s *tcpServer) drain(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.draining, id)
	if !s.gone(id) {
		return
	}
	for c := range s.byBackend[id] {
		s.l.c.Drained.Add(1)
		c.abort()
	}
}

func (s *tcpServer) shutdown(ctx context.Context) error {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.accept.Wait()
	s.mu.Lock()
	for id, t := range s.draining {
		t.Stop()
		delete(s.draining, id)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		s.cut = true
		for _, set := range s.byBackend {
			for c := range set {
				c.abort()
			}
		}
		s.mu.Unlock()
		s.cancel() // also ends dials and bandwidth waits
		<-done
	}
	s.cancel()
	s.closePoller()
	s.sweep.Wait()
	return err
}

// closePoller closes the poller, if there is one; every connection has
// ended by then, so none is parked in it.
func (s *tcpServer) closePoller() {
	if s.poller != nil {
		s.poller.Close()
	}
}

// sweepIdle resets idle connections every idleTick, reading the time from
// now, until the server is stopped. One sweeper per listener replaces a
// timer per connection.
func (s *tcpServer) sweepIdle(now func() time.Time) {
	t := time.NewTicker(idleTick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweepIdleAt(now())
		}
	}
}

// sweepIdleAt resets (RST to both sides) every connection that is idle at
// now, counts and logs each, and returns how many it reset.
func (s *tcpServer) sweepIdleAt(now time.Time) int {
	timeout := s.l.cfg.EstablishedTimeout
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, set := range s.byBackend {
		for c := range set {
			if c.idleAt(now, timeout) && c.abortCounting(s.countIdle) {
				n++
				s.l.cfg.Logger.Debug("idle timeout", "backend", c.member.ID(), "timeout", timeout)
			}
		}
	}
	return n
}

// countIdle counts one idle reset.
func (s *tcpServer) countIdle() { s.l.c.Idle.Add(1) }

// tcpConn is one proxied connection: two directions (tcpDir), each a
// goroutine while it copies and parked without one while it waits.
type tcpConn struct {
	s               *tcpServer
	client, backend *net.TCPConn
	member          *balancer.Member
	bc              *stats.Backend
	at              attempt.Attempt
	connectTime     time.Duration
	src             netip.Addr

	up, down tcpDir // client to backend, backend to client

	ctx    context.Context // cancelled by abort, ends bandwidth waits
	cancel context.CancelFunc
	last   atomic.Int64 // unix nanoseconds of the last byte moved either way
	closed atomic.Bool
	live   atomic.Int32 // directions not yet ended
}

// dirDone ends one direction; the last one ends the connection.
func (c *tcpConn) dirDone() {
	if c.live.Add(-1) == 0 {
		c.end()
	}
}

// end closes both sides and settles the connection's accounts, once both
// directions have ended or failed.
func (c *tcpConn) end() {
	c.closed.Store(true) // a sweep from now on must not count it as idle
	c.cancel()
	c.client.Close()
	c.backend.Close()
	s, l := c.s, c.s.l
	s.track(c, false)
	if l.aff != nil {
		l.aff.Touch(c.src)
	}
	c.bc.Active.Add(-1)
	l.c.Active.Add(-1)
	c.at.Done(balancer.DoneInfo{Latency: c.connectTime})
	s.conns.Done()
}

// touch records activity now; touchAt is its form with the time given.
func (c *tcpConn) touch() { c.touchAt(time.Now()) }

func (c *tcpConn) touchAt(now time.Time) { c.last.Store(now.UnixNano()) }

// idleAt reports whether c has moved no byte in either direction for
// timeout at now.
func (c *tcpConn) idleAt(now time.Time, timeout time.Duration) bool {
	return now.UnixNano()-c.last.Load() >= int64(timeout)
}

// abort resets both sides (RST, not FIN): used for the idle timeout,
// drain, hard stop and errors. It reports whether this call did it, so
// that a connection is counted once; count, if not nil, runs first, so
// that a peer that sees the reset also sees it counted.
func (c *tcpConn) abort() bool { return c.abortCounting(nil) }

func (c *tcpConn) abortCounting(count func()) bool {
	if c.closed.Swap(true) {
		return false
	}
	if count != nil {
		count()
	}
	c.cancel()
	// A parked direction has no goroutine to see the reset: take it back
	// from the poller, before the reset closes its socket (a socket must
	// not be closed while parked), and end it here, in a goroutine of its
	// own, since callers hold s.mu, which ending the connection takes.
	parked := 0
	for _, d := range []*tcpDir{&c.up, &c.down} {
		if d.unpark() {
			parked++
		}
	}
	resetConn(c.client)
	resetConn(c.backend)
	if parked > 0 {
		go func() {
			for range parked {
				c.dirDone()
			}
		}()
	}
	return true
}

// tcpDir is one direction of a tcpConn: it moves bytes from src to dst
// until src's EOF (then half-closes dst so the peer still gets
// everything), an error, or an abort (idleness among them: the sweeper
// resets the connection).
//
// It keeps the kernel's splice path (dst.ReadFrom of a *net.TCPConn
// behind an io.LimitedReader splices on Linux) and holds nothing while
// idle: it copies exactly what the socket has queued, so a copy never
// waits inside splice holding a pipe; when nothing is queued it waits for
// data without reading, and once it has been quiet for parkAfter it parks
// the socket in the server's poller and its goroutine ends; the poller's
// Wake carries it on when data comes. So an idle connection has no
// goroutine, no stack, no buffer, no pipe and no timer.
type tcpDir struct {
	c        *tcpConn
	dst, src *net.TCPConn
	rc       syscall.RawConn // src's
	fd       int             // src's, for the poller
	in       bool            // backend to client
	lr       io.LimitedReader
	pr       dirProbe

	// mu orders park against abort's unpark: abort marks the connection
	// closed, then takes each direction's ticket under mu, then resets
	// the sockets; park parks only under mu with the connection not
	// closed. So either abort finds the ticket and takes the direction
	// back, or park sees the connection closed, and a socket is never
	// closed while parked.
	mu     sync.Mutex
	ticket netpoll.Ticket // of the direction's last Park; zero once handed back
}

// probeState is what a socket holds, as probe sees it without waiting.
type probeState int8

const (
	probeData    probeState = iota // bytes to read
	probeQuiet                     // nothing yet
	probeEnded                     // a read returns EOF or an error at once
	probeUnknown                   // cannot tell: let the copy wait
)

func (d *tcpDir) init(c *tcpConn, dst, src *net.TCPConn, in bool) bool {
	rc, err := src.SyscallConn()
	if err != nil {
		return false
	}
	fd, err := netpoll.FD(src)
	if err != nil {
		return false
	}
	*d = tcpDir{c: c, dst: dst, src: src, rc: rc, fd: fd, in: in}
	d.lr.R = src
	return true
}

// park hands d's source socket to the server's poller and reports whether
// it did; the caller's goroutine must then leave d alone, since Wake may
// be running it again at once. It fails on an aborted connection (see
// mu), where there is no poller, or when epoll refuses the socket.
func (d *tcpDir) park() bool {
	p := d.c.s.poller
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == nil || d.c.closed.Load() {
		return false
	}
	t, err := p.Park(d.fd, time.Time{}, d)
	if err != nil {
		return false
	}
	d.ticket = t
	return true
}

// unpark takes d back from the poller for an abort and reports whether
// it was parked; the caller then ends it. If it reports false, d is
// running, or its Wake is on the way and finds the connection reset.
func (d *tcpDir) unpark() bool {
	d.mu.Lock()
	t := d.ticket
	d.ticket = 0
	d.mu.Unlock()
	return t != 0 && d.c.s.poller.Unpark(t)
}

// Wake carries a parked direction on (netpoll.Waker), on a goroutine the
// poller started for it: its socket became readable or the peer hung up,
// and the copy finds out which. Closed, from a poller closing under a
// connection, ends it; Expired cannot come, as park sets no deadline (the
// idle sweeper does that job for the whole connection).
func (d *tcpDir) Wake(r netpoll.Reason) {
	d.mu.Lock()
	d.ticket = 0
	d.mu.Unlock()
	if r != netpoll.Readable && r != netpoll.Hangup {
		d.c.abort()
		d.c.dirDone()
		return
	}
	d.run()
}

// run copies until the direction parks or ends.
func (d *tcpDir) run() {
	c := d.c
	for {
		n, st := d.probe()
		if st == probeQuiet && c.s.poller == nil {
			n, st = chunk, probeUnknown // nowhere to park: the copy waits
		}
		switch st {
		case probeQuiet:
			if d.waitBriefly() {
				continue
			}
			if d.park() {
				return
			}
			if c.closed.Load() {
				c.dirDone() // aborted while parking
				return
			}
			c.s.l.cfg.Logger.Warn("parking an idle connection failed", "backend", c.member.ID())
			c.abort()
			c.dirDone()
			return
		case probeData:
			c.touch() // data is here: the connection is not idle
		case probeUnknown:
			// The copy waits for data itself: a deadline bounds how
			// long, so that activity is recorded at most copyBound
			// after the last byte.
			d.src.SetReadDeadline(time.Now().Add(copyBound))
		}
		d.lr.N = int64(min(n, chunk))
		if st == probeEnded {
			d.lr.N = chunk
		}
		want := d.lr.N
		m, err := d.dst.ReadFrom(&d.lr)
		if m > 0 {
			c.touch()
			c.count(int(m), d.in)
		}
		if err != nil {
			if netx.IsTimeout(err) && !c.closed.Load() {
				continue
			}
			c.abort()
			c.dirDone()
			return
		}
		if m < want { // EOF from src: a copy ends short of its limit only there
			d.dst.CloseWrite()
			c.dirDone()
			return
		}
	}
}

// count adds n proxied bytes to the counters and pays the bandwidth cap.
func (c *tcpConn) count(n int, in bool) {
	l := c.s.l
	lims := l.lim.load()
	if in {
		l.c.BytesIn.Add(uint64(n))
		c.bc.BytesIn.Add(uint64(n))
		if lims != nil {
			pay(c.ctx, lims.in, n)
		}
		return
	}
	l.c.BytesOut.Add(uint64(n))
	c.bc.BytesOut.Add(uint64(n))
	if lims != nil {
		pay(c.ctx, lims.out, n)
	}
}

// resetConn closes c with SO_LINGER 0, so the peer gets an RST.
func resetConn(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
