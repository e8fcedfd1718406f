package listener

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/stats"
	proxyproto "github.com/pires/go-proxyproto"
)

// The idle timeout's precision. A connection's last activity is recorded
// when data becomes readable and when a chunk copy returns; a copy waits
// for more data for at most copyBound, so the record lags the last byte by
// at most that. The idle sweeper looks at every connection once per
// idleTick. An idle connection is therefore reset between
// EstablishedTimeout and EstablishedTimeout + idleSlack after its last
// byte, with no runtime timer per idle connection.
const (
	copyBound = 250 * time.Millisecond
	idleTick  = 250 * time.Millisecond
	idleSlack = copyBound + idleTick
)

// tcpServer is a running TCP listener.
type tcpServer struct {
	l   *Listener
	lns []*net.TCPListener

	ctx    context.Context // cancelled when connections must be cut
	cancel context.CancelFunc
	accept sync.WaitGroup // accept loops
	conns  sync.WaitGroup // proxied connections
	sweep  sync.WaitGroup // the idle sweeper

	mu        sync.Mutex
	byBackend map[string]map[*tcpConn]struct{}
	draining  map[string]*time.Timer
}

func startTCP(l *Listener) (server, error) {
	s := &tcpServer{
		l:         l,
		byBackend: map[string]map[*tcpConn]struct{}{},
		draining:  map[string]*time.Timer{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, port := range l.cfg.ports() {
		ln, err := net.Listen("tcp", net.JoinHostPort(l.cfg.Host, strconv.Itoa(port)))
		if err != nil {
			for _, o := range s.lns {
				o.Close()
			}
			s.cancel()
			return nil, err
		}
		s.lns = append(s.lns, ln.(*net.TCPListener))
	}
	for i, ln := range s.lns {
		port := l.cfg.Port + i
		s.accept.Go(func() { s.serve(ln, port) })
	}
	s.sweep.Go(func() { s.sweepIdle(time.Now) })
	return s, nil
}

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

// handle runs one client connection to its end.
func (s *tcpServer) handle(client *net.TCPConn, port int) {
	defer s.conns.Done()
	l := s.l
	src := client.RemoteAddr().(*net.TCPAddr).AddrPort()
	dst := client.LocalAddr().(*net.TCPAddr).AddrPort()
	if !l.acl.allow(src.Addr().Unmap()) {
		l.c.RefusedACL.Add(1)
		resetConn(client)
		return
	}
	conn, at, err := l.connect(s.ctx, "tcp", balancer.Key{Src: src, Dst: dst}, "", port)
	if err != nil {
		resetConn(client)
		return
	}
	// An established connection is TCP's proof of a working backend.
	connectTime := at.Succeeded()
	backend := conn.(*net.TCPConn)
	m := at.Member()
	c := &tcpConn{s: s, client: client, backend: backend, member: m, bc: l.c.Backend(m.ID())}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	if v := l.cfg.ProxyProtocol; v > 0 {
		h := proxyproto.HeaderProxyFromAddrs(byte(v), client.RemoteAddr(), client.LocalAddr())
		if _, err := h.WriteTo(backend); err != nil {
			l.cfg.Logger.Debug("writing PROXY header failed", "backend", m.ID(), "err", err)
			resetConn(client)
			resetConn(backend)
			at.Done(balancer.DoneInfo{Err: err})
			return
		}
	}
	l.c.Active.Add(1)
	l.c.New.Add(1)
	c.bc.Active.Add(1)
	c.bc.New.Add(1)
	s.track(c, true)

	c.run()

	s.track(c, false)
	if l.aff != nil {
		l.aff.Touch(src.Addr())
	}
	c.bc.Active.Add(-1)
	l.c.Active.Add(-1)
	at.Done(balancer.DoneInfo{Latency: connectTime})
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
// drain reads.
func (s *tcpServer) track(c *tcpConn, add bool) {
	id := c.member.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byBackend[id]
	if add {
		if set == nil {
			set = map[*tcpConn]struct{}{}
			s.byBackend[id] = set
		}
		set[c] = struct{}{}
		return
	}
	delete(set, c)
	if len(set) == 0 {
		delete(s.byBackend, id)
	}
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
	s.sweep.Wait()
	return err
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

// tcpConn is one proxied connection.
type tcpConn struct {
	s               *tcpServer
	client, backend *net.TCPConn
	member          *balancer.Member
	bc              *stats.Backend

	ctx    context.Context // cancelled by abort, ends bandwidth waits
	cancel context.CancelFunc
	last   atomic.Int64 // unix nanoseconds of the last byte moved either way
	closed atomic.Bool
}

// run proxies both directions until both have ended or either fails.
func (c *tcpConn) run() {
	c.touch()
	var wg sync.WaitGroup
	wg.Go(func() { c.pipe(c.backend, c.client, true) })
	c.pipe(c.client, c.backend, false)
	wg.Wait()
	c.closed.Store(true) // a sweep from now on must not count it as idle
	c.cancel()
	c.client.Close()
	c.backend.Close()
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
	resetConn(c.client)
	resetConn(c.backend)
	return true
}

// pipe moves bytes from src to dst until src's EOF (then half-closes dst
// so the peer still gets everything), an error, or an abort (idleness
// among them: the sweeper resets the connection). It keeps the kernel's
// splice path: dst.ReadFrom of a *net.TCPConn behind an io.LimitedReader
// splices on Linux. After a chunk that was not full it waits for src to
// be readable without reading (and without holding a splice pipe) and
// without a deadline, so an idle connection arms no timer; after a full
// chunk it copies on at once, since a bulk transfer has more waiting.
func (c *tcpConn) pipe(dst, src *net.TCPConn, in bool) {
	w := newWaiter(src)
	lr := &io.LimitedReader{R: src}
	flowing := false // the last copy moved a whole chunk: more is likely waiting
	for {
		if !flowing {
			if err := c.waitData(src, w); err != nil {
				c.abort()
				return
			}
			if w != nil { // data is here: the connection is not idle
				// (Without a waiter the copy itself waits, and the touch
				// after it counts.)
				c.touch()
			}
		}
		// The splice copy returns only when the chunk is full, so a
		// deadline bounds how long it waits for more: activity is
		// recorded when it returns, at most copyBound after the last
		// byte.
		src.SetReadDeadline(time.Now().Add(copyBound))
		lr.N = chunk
		n, err := dst.ReadFrom(lr)
		flowing = lr.N == 0
		if n > 0 {
			c.touch()
			c.count(int(n), in)
		}
		if err != nil {
			if netx.IsTimeout(err) && !c.closed.Load() {
				continue
			}
			c.abort()
			return
		}
		if lr.N > 0 { // EOF from src
			dst.CloseWrite()
			return
		}
	}
}

// waitData waits, with no deadline, until src has data (or EOF) or the
// connection is closed under it (an abort: idleness, drain, stop).
func (c *tcpConn) waitData(src *net.TCPConn, w *waiter) error {
	src.SetReadDeadline(time.Time{})
	return w.wait()
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
