package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/session"
)

// State is a listener's lifecycle state.
type State int32

// Listener states.
const (
	Stopped State = iota
	Running
)

func (s State) String() string {
	if s == Running {
		return "running"
	}
	return "stopped"
}

// A Listener accepts client traffic on one protocol and port (or port
// range), filters it by ACL, picks a backend from its server group and
// proxies to it.
//
// Listeners are made by Instance.Add, which starts them unless
// Config.Stopped is set. Stop and Start may be called any number of times;
// backends, weights and health change through the Group, ACL entries
// through the acl.Group, and the policy and bandwidth through SetACL and
// SetBandwidth — all live, without dropping established connections.
//
// A Listener is safe for concurrent use.
type Listener struct {
	cfg  Config
	inst *Instance
	acl  aclRef
	lim  limiterRef
	own  *limits // the listener's own cap, nil when uncapped
	c    stats.Counters
	aff  *session.Affinity // source-IP persistence, nil when off
	hc   hcRef             // the running health checkers, if any
	port atomic.Int32      // Config.Port, or the port a Port 0 listener bound

	// life serializes Start, Stop and Retire. mu guards the fields below
	// and is held only briefly, never across a stop's drain, so that
	// State, Stats, Addrs and SetBandwidth answer while a listener drains.
	life    sync.Mutex
	mu      sync.Mutex
	state   State
	srv     server // nil from the moment a stop begins
	watch   *watcher
	pending sockets // handed or bound ahead, for the next Start
}

// retirer is a server that can retire rather than stop (Listener.Retire):
// HTTP and HTTPS retire their keep-alive connections rather than close
// them while idle, UDP stops reading its shared sockets at once.
type retirer interface {
	retire(ctx context.Context) error
}

// handOverer is a server that reads datagrams from sockets it may
// share (UDP): Instance.Apply has it stop reading them as soon as the
// listener that took them over serves, before Change.Switched, so that
// no datagram sent after the switch is read, and dropped as a new
// flow's, by the one that leaves.
type handOverer interface {
	handOver()
}

// handOver makes l's server leave its shared datagram sockets to the
// listener that took them over, if it reads any (see handOverer).
func (l *Listener) handOver() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.srv.(handOverer); ok {
		h.handOver()
	}
}

// server is a running protocol implementation.
type server interface {
	// shutdown stops accepting, lets open connections finish until ctx is
	// done, then closes them and waits for every goroutine.
	shutdown(ctx context.Context) error
	addrs() []net.Addr
	// socks returns the listening sockets, which shutdown closes.
	socks() sockets
}

// aclRef holds the policy in force; a nil policy allows everyone.
type aclRef struct{ p atomic.Pointer[acl.Policy] }

func (r *aclRef) allow(src netip.Addr) bool { return r.p.Load().Allow(src) }

// Name returns the listener's name.
func (l *Listener) Name() string { return l.cfg.Name }

// Protocol returns the listener's protocol.
func (l *Listener) Protocol() Protocol { return l.cfg.Protocol }

// Port returns the listener's (first) port: Config.Port or, for Port 0,
// the port the system picked when the listener first started (0 until
// then).
func (l *Listener) Port() int { return int(l.port.Load()) }

// Group returns the listener's server group.
func (l *Listener) Group() *balancer.Group { return l.cfg.Group }

// State reports whether the listener is running.
func (l *Listener) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Addrs returns the addresses the listener is bound to while it runs,
// in the order of Files: an HTTPS listener with HTTPOptions.HTTP3 has
// its TCP address, then its UDP one.
func (l *Listener) Addrs() []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return nil
	}
	return l.srv.addrs()
}

// Start starts a stopped listener: it binds its ports, or takes the
// socket it was handed (Config.Listener, Config.PacketConn) the first
// time, and serves. A listener on Port 0 binds a port the system picks
// the first time and the same port on every later Start. A bind failure
// leaves it stopped. Starting a running listener does nothing.
func (l *Listener) Start() error {
	l.life.Lock()
	defer l.life.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == Running {
		return nil
	}
	if err := l.startCheckers(); err != nil {
		return err
	}
	socks := l.pending
	l.pending = sockets{}
	var (
		srv server
		err error
	)
	if socks.empty() {
		socks, err = bind(l.cfg, nil)
	}
	if err == nil {
		// From here the server owns socks, closing them if it fails.
		switch l.cfg.Protocol {
		case TCP:
			srv, err = startTCP(l, socks)
		case UDP:
			srv, err = startUDP(l, socks)
		case HTTP, HTTPS:
			srv, err = startHTTP(l, socks)
		}
	}
	if err != nil {
		l.stopWatch()
		return err
	}
	l.startWatch(srv)
	l.keepPort(srv)
	l.srv, l.state = srv, Running
	l.cfg.Logger.Info("listener started", "protocol", l.cfg.Protocol, "addrs", srv.addrs())
	return nil
}

// Stop stops the listener gracefully: it stops accepting at once, lets
// established connections finish until ctx is done, then closes the rest
// and returns when every goroutine of the listener has ended. It returns
// ctx's error if connections had to be cut. Stopping a stopped listener
// does nothing. An HTTP or HTTPS listener closes its idle keep-alive
// connections at once: Stop is for when nothing will serve those
// clients' next requests; Retire is for when something will.
func (l *Listener) Stop(ctx context.Context) error { return l.stop(ctx, false) }

// Retire is Stop for when the listener's sockets live on in a successor
// process or a listener that replaces this one. An HTTP or HTTPS
// listener keeps its idle keep-alive connections open: each serves its
// next request with "Connection: close" and closes after the response,
// or closes at IdleTimeout; an HTTP/2 connection gets a GOAWAY at once
// and closes when its streams end (httpproxy.Server.Retire). A client
// that sends a request at the moment of the stop is thus served, not
// cut. A TCP listener stops as with Stop: its streams finish. A UDP
// listener stops reading its sockets at once, so every datagram — of new
// flows and of its open ones — goes to the successor, while its open
// flows still relay their backends' replies until they idle out.
func (l *Listener) Retire(ctx context.Context) error { return l.stop(ctx, true) }

// stop is Stop, or Retire if retire is set.
// The listener reports Running until its connections have drained, but
// has no sockets to hand (Files, Addrs, Apply's takeover) from the start.
func (l *Listener) stop(ctx context.Context, retire bool) error {
	l.life.Lock()
	defer l.life.Unlock()
	l.mu.Lock()
	srv := l.srv
	if l.state == Stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopWatch()
	l.srv = nil
	l.mu.Unlock()
	var err error
	if r, ok := srv.(retirer); ok && retire {
		err = r.retire(ctx)
	} else {
		err = srv.shutdown(ctx)
	}
	l.mu.Lock()
	l.state = Stopped
	l.mu.Unlock()
	l.cfg.Logger.Info("listener stopped", "retired", retire, "err", err)
	return err
}

// Files returns new descriptors of the sockets l listens on while it
// runs, one per port in port order, TCP ones first, then UDP ones (an
// HTTPS listener with HTTPOptions.HTTP3 has its TCP socket, then its UDP
// one; a successor matches them by network and address), for handing to another process
// (os.ProcAttr.Files, exec.Cmd.ExtraFiles): the kernel's socket, and its
// queue of connections not yet accepted, stays open until every
// descriptor is closed, so a successor that serves them refuses nothing
// while l stops. Unlike those of net's File methods, their Fd leaves the
// sockets non-blocking, so handing them on never stalls l's accept loop
// or its Stop. The caller closes them. A stopped listener has none.
func (l *Listener) Files() ([]*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return nil, nil
	}
	return l.srv.socks().files()
}

// release closes the sockets a listener that never started was handed
// or bound ahead: it is being removed or refused.
func (l *Listener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending.close()
	l.pending = sockets{}
}

// socketOn returns the sockets l serves port on while it runs, if it
// listens on cfg's Host in a port space cfg uses (TCP, HTTP and HTTPS
// share the TCP one; UDP and HTTPS with HTTP/3 the UDP one).
func (l *Listener) socketOn(cfg Config, port int) (sockets, bool) {
	if l.cfg.Host != cfg.Host {
		return sockets{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return sockets{}, false
	}
	all, i := l.srv.socks(), port-l.cfg.Port
	var s sockets
	if i >= 0 && i < len(all.tcp) && cfg.Protocol != UDP {
		s.tcp = all.tcp[i : i+1]
	}
	if i >= 0 && i < len(all.udp) && cfg.servesUDP() {
		s.udp = all.udp[i : i+1]
	}
	return s, !s.empty()
}

// SetACL replaces the listener's access control policy; nil allows
// everyone. It applies to the next connection or datagram.
func (l *Listener) SetACL(p *acl.Policy) error {
	if p != nil {
		if got, want := int(p.Group().Family()), l.cfg.family(); got != want {
			return configErr("ACL", p.Group().Name(), fmt.Sprintf("an IPv%d group cannot bind to an IPv%d listener", got, want))
		}
	}
	l.acl.p.Store(p)
	return nil
}

// SetBandwidth changes the listener's cap in Mbps (0 uncaps it, sharing
// the instance's cap if it has one; negative is refused). The instance's
// total cap still bounds the sum of its listeners' caps. Open connections
// follow the new cap at once.
func (l *Listener) SetBandwidth(mbps int) error {
	if err := checkBandwidth(mbps); err != nil {
		return err
	}
	if err := l.inst.checkBandwidth(l, mbps); err != nil {
		return err
	}
	l.setBandwidth(mbps)
	return nil
}

// setBandwidth sets a cap already checked against the instance's.
func (l *Listener) setBandwidth(mbps int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.Bandwidth = mbps
	switch {
	case mbps == 0:
		l.own = nil
		l.lim.p.Store(l.inst.limits)
	case l.own != nil:
		r := mbpsToRate(mbps)
		l.own.in.SetLimit(r)
		l.own.out.SetLimit(r)
	default:
		l.own = newLimits(mbps)
		l.lim.p.Store(l.own)
	}
}

// SetScheduler switches the listener's group to scheduler s, refusing a
// built-in scheduler the protocol does not offer (qch on TCP; sch, tch or qch on
// HTTP). Established connections keep their backends.
func (l *Listener) SetScheduler(s balancer.Scheduler) error {
	if s == nil {
		return configErr("Scheduler", "nil", "missing")
	}
	if err := schedulerFits(l.cfg.Protocol, s.Name()); err != nil {
		return err
	}
	return l.cfg.Group.SetScheduler(s)
}

// Bandwidth returns the listener's cap in Mbps, 0 if uncapped.
func (l *Listener) Bandwidth() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg.Bandwidth
}

// Stats returns a snapshot of the listener's counters.
func (l *Listener) Stats() Stats {
	s := Stats{Name: l.cfg.Name, Protocol: l.cfg.Protocol, Port: l.Port(), State: l.State()}
	snapshot(&l.c, &s)
	return s
}

// keepPort records the port the system picked for a Port 0 listener now
// serving as srv, so Port reports it and a restart binds it again rather
// than moving the listener. The caller holds l.mu or owns l alone.
func (l *Listener) keepPort(srv server) {
	if l.cfg.Port == 0 {
		l.cfg.Port = addrPort(srv.addrs()[0])
		l.port.Store(int32(l.cfg.Port))
	}
}

// addrPort returns the port of a bound TCP or UDP address.
func addrPort(a net.Addr) int {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	return 0
}
