package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/stats"
	proxyproto "github.com/pires/go-proxyproto"
)

// The UDP listener proxies per-client flows. A flow is keyed by the
// client's address and port and the listening port; its first datagram
// picks a backend (once: the flow's datagrams then stay there while the
// client's address is stable) and dials a connected socket to it, and the
// flow lives until it has seen no datagram in either direction for
// Config.IdleTimeout. Replies leave from the listening socket, so the
// client sees them come from the address it sent to.
//
// Goroutines: one read loop per listening port, which never blocks on
// anything but its socket (no dial, no DNS, no bandwidth wait), and one
// goroutine per flow, which picks and dials the backend, then reads the
// backend's replies. The flow goroutine waits for replies in the poller
// with a read deadline at its last activity plus the idle timeout, and
// borrows a 64 KiB buffer only while a reply is in hand (see
// udpReader), so an idle flow costs a goroutine and a socket, and idle
// expiry needs no timer goroutine.
//
// Dropped (and counted in Stats.Dropped): empty datagrams (they carry
// nothing to forward, and with PROXY v2 the backend would get a bare
// header), datagrams from source port 0 (no reply possible), datagrams
// larger than 65535 bytes, datagrams that would start a flow beyond
// MaxFlows or while the listener stops, datagrams over the bandwidth cap,
// datagrams that arrive beyond maxPending while a flow's backend is being
// dialed, and datagrams a socket refused to send. ACL refusals are
// counted in Stats.RefusedACL instead; the ACL is checked on every
// datagram, so a policy change applies to open flows too.
//
// Bandwidth: a UDP listener polices rather than shapes. A datagram over
// the cap, in either direction, is dropped instead of waited for: a wait
// on the read loop would stall every flow of the port, UDP has no
// backpressure to slow the sender down, and a queue would only add
// latency to traffic (games, voice, QUIC) that prefers loss.

const (
	// maxDatagram is the largest datagram forwarded. Buffers are one
	// byte larger, so a datagram that fills one is known to be too big.
	maxDatagram = 65535
	// udpHeadroom is kept free in front of every client datagram for a
	// PROXY v2 header (16 bytes, plus 36 of IPv6 addresses), so header
	// and payload leave in one write without copying the payload.
	udpHeadroom = 64
	// maxPending bounds the datagrams a flow holds while its backend is
	// being dialed (QUIC sends a few before any reply).
	maxPending = 16
)

var (
	errFlowGone     = errors.New("listener: flow ended")
	errPendingFull  = errors.New("listener: flow pending queue full")
	errUnreachable  = errors.New("listener: backend unreachable")
	errHeaderTooBig = errors.New("listener: PROXY header larger than the headroom")
)

// flowKey identifies a flow.
type flowKey struct {
	src  netip.AddrPort // the client, as the listening socket reports it
	port uint16         // the listening port
}

// udpOptions are the seams of a UDP server that Config does not carry.
type udpOptions struct {
	// route, if set, maps a new flow's QUIC destination connection ID to
	// a backend; see connIDRouter. The QUIC-LB decoder plugs in here.
	route connIDRouter
	// maxDatagram lowers the largest datagram forwarded (for tests); 0
	// is maxDatagram.
	maxDatagram int
}

// udpServer is a running UDP listener.
type udpServer struct {
	l     *Listener
	route connIDRouter
	max   int // the largest datagram forwarded
	lns   []*net.UDPConn

	ctx      context.Context // cancelled when flows must be cut; ends dials
	cancel   context.CancelFunc
	loops    sync.WaitGroup // read loops
	flowWG   sync.WaitGroup // flow goroutines
	retiring atomic.Bool    // the read loops end at their deadline (retire)

	mu       sync.Mutex
	flows    map[flowKey]*udpFlow
	draining bool // no new flows
}

func startUDP(l *Listener, socks sockets) (server, error) {
	var opt udpOptions
	if r := l.cfg.QUICRouter; r != nil {
		opt.route = r.Route
	}
	return listenUDP(l, opt, socks)
}

func listenUDP(l *Listener, opt udpOptions, socks sockets) (*udpServer, error) {
	s := &udpServer{
		l:     l,
		lns:   socks.udp,
		route: opt.route,
		max:   maxDatagram,
		flows: map[flowKey]*udpFlow{},
	}
	if opt.maxDatagram > 0 && opt.maxDatagram < maxDatagram {
		s.max = opt.maxDatagram
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, ln := range s.lns {
		// Room for bursts while the read loop is busy; the kernel caps it
		// at net.core.rmem_max.
		ln.SetReadBuffer(4 << 20)
	}
	for i, ln := range s.lns {
		port := l.cfg.Port + i
		s.loops.Go(func() { s.serve(ln, port) })
	}
	return s, nil
}

func (s *udpServer) socks() sockets { return sockets{udp: s.lns} }

func (s *udpServer) addrs() []net.Addr {
	as := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		as[i] = ln.LocalAddr()
	}
	return as
}

// serve is the read loop of one listening port.
func (s *udpServer) serve(ln *net.UDPConn, port int) {
	dst := ln.LocalAddr().(*net.UDPAddr).AddrPort()
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	buf := make([]byte, udpHeadroom+s.max+1)
	var backoff time.Duration
	for {
		n, src, err := ln.ReadFromUDPAddrPort(buf[udpHeadroom:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.retiring.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.l.cfg.Logger.Warn("udp read failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.handle(ln, dst, port, src, buf[:udpHeadroom+n])
	}
}

// handle forwards one client datagram, frame[udpHeadroom:], or drops it.
func (s *udpServer) handle(ln *net.UDPConn, dst netip.AddrPort, port int, src netip.AddrPort, frame []byte) {
	l := s.l
	n := len(frame) - udpHeadroom
	if n == 0 || n > s.max || src.Port() == 0 {
		l.c.Dropped.Add(1)
		return
	}
	if !l.acl.allow(src.Addr().Unmap()) {
		l.c.RefusedACL.Add(1)
		return
	}
	if lims := l.lim.load(); lims != nil && !lims.in.AllowN(time.Now(), n) {
		l.c.Dropped.Add(1)
		return
	}
	key := flowKey{src: src, port: uint16(port)}
	// A flow may end between its lookup and the write: then the datagram
	// starts a new one.
	for range 2 {
		f, created := s.flow(key, ln, dst, frame)
		if f == nil {
			l.c.Dropped.Add(1)
			return
		}
		if created {
			return // frame is the flow's first pending datagram
		}
		switch err := f.forward(frame); {
		case err == nil:
			return
		case errors.Is(err, errFlowGone):
			continue
		case errors.Is(err, errUnreachable):
			f.unreachable(err)
			return // counted as a connect failure
		default:
			l.c.Dropped.Add(1)
			return
		}
	}
	l.c.Dropped.Add(1)
}

// flow returns key's flow, or starts one with frame as its first pending
// datagram (created true). It returns nil when the table is full or the
// listener is stopping.
func (s *udpServer) flow(key flowKey, ln *net.UDPConn, dst netip.AddrPort, frame []byte) (f *udpFlow, created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flows[key]; f != nil {
		return f, false
	}
	if s.draining || len(s.flows) >= s.l.cfg.MaxFlows {
		return nil, false
	}
	f = &udpFlow{s: s, key: key, ln: ln, dst: dst}
	first := append([]byte(nil), frame...)
	f.pending = append(f.pending, first)
	f.touch()
	s.flows[key] = f
	s.flowWG.Add(1)
	go f.run(first)
	return f, true
}

// remove takes f out of the flow table.
func (s *udpServer) remove(f *udpFlow) {
	s.mu.Lock()
	if s.flows[f.key] == f {
		delete(s.flows, f.key)
	}
	s.mu.Unlock()
}

// connect dials a backend for f's first datagram (Listener.connect).
// Dialing a UDP socket fails only for local reasons (or a host name that
// does not resolve); a backend's closed port shows later, as an ICMP
// error on the flow's socket (udpFlow.unreachable), and its first reply
// is the proof that it works (udpFlow.relay).
func (s *udpServer) connect(f *udpFlow, first []byte) (*net.UDPConn, attempt.Attempt, error) {
	l := s.l
	k, routeID, routed := s.pickKey(f.key.src, f.dst, first)
	sticky := "" // source-IP persistence, if on
	if routed {
		sticky = routeID
	}
	c, at, err := l.connect(s.ctx, "udp", k, sticky, int(f.key.port))
	if err != nil {
		return nil, at, err
	}
	if s.route != nil {
		if routed && !at.Retried() && at.Member().ID() == routeID {
			l.c.QUICRouted.Add(1)
		} else {
			l.c.QUICFallback.Add(1)
		}
	}
	return c.(*net.UDPConn), at, nil
}

// pickKey returns the balancer key of a new flow from src to dst whose
// first datagram is first, and the backend the connection-ID router names
// for it (routed true), if any. Every new flow asks the router, a
// migrated client's too: its new address is a new flow, whose DCID the
// router maps back to the server that issued it. Without a router the
// key's Hash is the DCID's (HashQUICConnID), which qch places by. With a
// router, the key carries no hash: what the router cannot place goes by
// four-tuple, as the QUIC-LB draft asks (qch hashes the four-tuple then),
// and the flow table keeps it there; a PickSticky that finds the routed
// backend gone falls back the same way.
func (s *udpServer) pickKey(src, dst netip.AddrPort, first []byte) (k balancer.Key, routeID string, routed bool) {
	k = balancer.Key{Src: src, Dst: netx.ServiceDst(s.l.cfg.ServiceAddr, dst)}
	dcid, ok := parseQUICDestConnID(first, s.l.cfg.QUICConnIDLength)
	if s.route == nil {
		if ok && len(dcid) > 0 {
			k.Hash, k.HasHash = balancer.HashQUICConnID(dcid), true
		}
		return k, "", false
	}
	if ok && len(dcid) > 0 {
		routeID, routed = s.route(dcid)
	}
	return k, routeID, routed
}

// retire is shutdown for when a successor — another process, or a
// listener that took over the sockets — reads the listening sockets:
// this server stops reading them at once, so the kernel gives every
// datagram to the successor, those of this server's open flows too
// (whose clients then go on with the successor, as after a rebalance).
// The open flows still relay their backends' replies through the
// sockets until they idle out or ctx is done. Without this, both would
// read the shared socket while this one drains, and each datagram of a
// new flow this one read would be dropped.
func (s *udpServer) retire(ctx context.Context) error {
	s.handOver()
	return s.shutdown(ctx)
}

// handOver stops reading the listening sockets at once, leaving every
// datagram to the successor that shares them; open flows go on relaying
// replies. Idempotent.
func (s *udpServer) handOver() {
	s.retiring.Store(true)
	for _, ln := range s.lns {
		// The deadline is this descriptor's (Go's poller), not the
		// socket's: the successor's reads go on.
		ln.SetReadDeadline(time.Unix(1, 0))
	}
}

// shutdown stops new flows at once (their datagrams are dropped), lets
// the open ones run until they idle out or ctx is done, then closes them,
// the listening sockets, and waits for every goroutine. The listening
// sockets stay open meanwhile: open flows still need them to receive
// their clients' datagrams and to send replies.
func (s *udpServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.flowWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
		s.mu.Lock()
		for _, f := range s.flows {
			f.end()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	for _, ln := range s.lns {
		ln.Close()
	}
	s.loops.Wait()
	return err
}

// udpFlow is one client's flow.
type udpFlow struct {
	s    *udpServer
	key  flowKey
	ln   *net.UDPConn   // the listening socket: replies leave from it
	dst  netip.AddrPort // the listening address
	last atomic.Int64   // unix nanoseconds of the last datagram either way

	// Set by run before ready, read-only after.
	up *net.UDPConn // connected to the backend
	at attempt.Attempt
	m  *balancer.Member // at.Member()

	firstReply atomic.Int64 // nanoseconds from the pick to the first reply, 0 before it
	failed     atomic.Bool  // the backend was unreachable
	bc         *stats.Backend
	hdr        []byte // PROXY v2 header, or nil

	ready  atomic.Bool // up, m, bc, hdr set and pending flushed
	closed atomic.Bool

	mu      sync.Mutex // guards pending, up and the switch to ready
	pending [][]byte   // frames held while dialing
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// run dials the flow's backend for its first frame, flushes what arrived
// meanwhile, relays replies until the flow ends, and cleans up.
func (f *udpFlow) run(first []byte) {
	s := f.s
	l := s.l
	defer s.flowWG.Done()
	up, at, err := s.connect(f, first[udpHeadroom:])
	var hdr []byte
	if err == nil && l.cfg.ProxyProtocol == 2 {
		if hdr, err = proxyHeaderV2(f.key.src, f.dst); err != nil {
			l.cfg.Logger.Warn("building PROXY header failed", "client", f.key.src, "err", err)
		}
	}
	f.mu.Lock()
	if err != nil || f.closed.Load() { // failed, or cut by shutdown
		f.closed.Store(true)
		f.pending = nil
		f.mu.Unlock()
		if up != nil {
			up.Close()
		}
		at.Done(balancer.DoneInfo{}) // not the backend's doing; a no-op if the connect failed
		s.remove(f)
		return
	}
	m := at.Member()
	f.up, f.at, f.m, f.bc, f.hdr = up, at, m, l.c.Backend(m.ID()), hdr
	// Counted before the first datagram leaves, so a client that has its
	// answer sees the flow in Stats.
	l.c.Active.Add(1)
	l.c.New.Add(1)
	f.bc.Active.Add(1)
	f.bc.New.Add(1)
	var sendErr error
	for _, fr := range f.pending {
		if err := f.send(fr); errors.Is(err, errUnreachable) {
			sendErr = err
			break
		} else if err != nil {
			l.c.Dropped.Add(1)
		}
	}
	f.pending = nil
	f.ready.Store(true)
	f.mu.Unlock()

	if errors.Is(sendErr, errUnreachable) {
		f.unreachable(sendErr)
	} else {
		f.relay()
	}
	s.remove(f) // before close, so a late datagram starts a new flow
	f.end()
	if l.aff != nil {
		l.aff.Touch(f.key.src.Addr())
	}
	f.bc.Active.Add(-1)
	l.c.Active.Add(-1)
	var outcome error
	if f.failed.Load() {
		outcome = errUnreachable
	}
	at.Done(balancer.DoneInfo{Err: outcome, Latency: time.Duration(f.firstReply.Load())})
}

// forward sends a client frame to the backend, or holds a copy while the
// backend is being dialed.
func (f *udpFlow) forward(frame []byte) error {
	if !f.ready.Load() {
		f.mu.Lock()
		if f.closed.Load() {
			f.mu.Unlock()
			return errFlowGone
		}
		if !f.ready.Load() {
			defer f.mu.Unlock()
			if len(f.pending) >= maxPending {
				return errPendingFull
			}
			f.pending = append(f.pending, append([]byte(nil), frame...))
			f.touch()
			return nil
		}
		f.mu.Unlock()
	}
	return f.send(frame)
}

// send writes frame[udpHeadroom:], behind the PROXY header if any, to the
// backend.
func (f *udpFlow) send(frame []byte) error {
	p := frame[udpHeadroom-len(f.hdr):]
	copy(p, f.hdr)
	if _, err := f.up.Write(p); err != nil {
		switch {
		case errors.Is(err, net.ErrClosed):
			return errFlowGone
		case isUnreachable(err):
			return errors.Join(errUnreachable, err)
		}
		return err
	}
	f.touch()
	n := uint64(len(frame) - udpHeadroom)
	f.s.l.c.BytesIn.Add(n)
	f.bc.BytesIn.Add(n)
	return nil
}

// relay sends the backend's datagrams to the client until the flow has
// been idle for the idle timeout, the backend is unreachable, or the flow
// is closed.
func (f *udpFlow) relay() {
	l := f.s.l
	idle := l.cfg.IdleTimeout
	r := newUDPReader(f.up)
	f.up.SetReadDeadline(time.Unix(0, f.last.Load()).Add(idle))
	answered := false
	for {
		buf, n, err := r.read()
		if err != nil {
			switch {
			case f.closed.Load():
			case netx.IsTimeout(err):
				// The deadline only wakes us to look at the clock: the
				// client may have sent meanwhile.
				deadline := time.Unix(0, f.last.Load()).Add(idle)
				if time.Now().Before(deadline) {
					f.up.SetReadDeadline(deadline)
					continue
				}
			case isUnreachable(err):
				f.unreachable(err)
			default:
				l.cfg.Logger.Debug("udp flow read failed", "backend", f.m.ID(), "err", err)
			}
			return
		}
		if !answered {
			// A reply is UDP's proof of a working backend, as an
			// established connection is TCP's.
			answered = true
			f.firstReply.Store(int64(f.at.Succeeded()))
		}
		f.reply((*buf)[:n])
		r.release(buf)
	}
}

// reply sends one backend datagram to the client from the listening
// socket.
func (f *udpFlow) reply(b []byte) {
	l := f.s.l
	if len(b) > f.s.max {
		l.c.Dropped.Add(1)
		return
	}
	f.touch()
	if lims := l.lim.load(); lims != nil && !lims.out.AllowN(time.Now(), len(b)) {
		l.c.Dropped.Add(1)
		return
	}
	if _, err := f.ln.WriteToUDPAddrPort(b, f.key.src); err != nil {
		l.c.Dropped.Add(1)
		return
	}
	n := uint64(len(b))
	l.c.BytesOut.Add(n)
	f.bc.BytesOut.Add(n)
}

// end closes the flow; its goroutine then finishes. Safe to call more than
// once and from any goroutine.
func (f *udpFlow) end() {
	if f.closed.Swap(true) {
		return
	}
	f.closeUp()
}

// unreachable ends the flow for an ICMP error from its backend (port or
// host unreachable), counting a connect failure once.
func (f *udpFlow) unreachable(err error) {
	if f.closed.Swap(true) {
		return
	}
	f.failed.Store(true)
	f.at.Failed(err)
	f.closeUp()
}

func (f *udpFlow) closeUp() {
	f.mu.Lock()
	up := f.up
	f.mu.Unlock()
	if up != nil {
		up.Close()
	}
}

// isUnreachable reports the errors a connected UDP socket gets from ICMP
// errors that mean the backend is not there.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// proxyHeaderV2 returns the PROXY v2 header of a flow from src to dst. A
// listener bound to all interfaces reports dst as the unspecified
// address, which is written in the client's family.
func proxyHeaderV2(src, dst netip.AddrPort) ([]byte, error) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	da := dst.Addr().Unmap()
	if src.Addr().Is4() && da.IsUnspecified() {
		da = netip.IPv4Unspecified()
	}
	h, err := proxyproto.HeaderProxyFromAddrs(2, net.UDPAddrFromAddrPort(src),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(da, dst.Port()))).Format()
	if err != nil {
		return nil, err
	}
	if len(h) > udpHeadroom {
		return nil, errHeaderTooBig
	}
	return h, nil
}
