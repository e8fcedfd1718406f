package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/quichandoff"
	"github.com/quic-go/quic-go"
)

// A binary upgrade keeps the HTTP/3 connections of the process that
// retires (package quichandoff): every connection ID of an https
// listener's HTTP/3 carries the process's generation parity, and each
// HTTP/3 UDP socket is read through a quichandoff.Conn, in every
// process, since any may become a predecessor. At an upgrade the
// process makes a local socket pair per HTTP/3 UDP socket and hands one
// end beside the socket; the successor forwards the packets of the
// older generation's connections over it, and this process, once the
// successor is ready, stops reading the UDP socket and reads only those.
// A further upgrade waits until that process has exited: its successor
// would share its parity.

// quicLinkPrefix names, in the handoff document, the end of a pair for
// the HTTP/3 UDP socket named after it.
const quicLinkPrefix = "quic-link "

// quicHandoff is the process's side of the QUIC handoff. A nil
// *quicHandoff wraps nothing: quic-go reads the sockets itself. Its
// methods are safe for concurrent use.
type quicHandoff struct {
	generation int
	log        *slog.Logger

	mu    sync.Mutex
	conns map[string]*handoffConn // by quicConnKey: the latest on each socket
	from  map[string]*os.File     // the predecessor's ends, while it lives
	kept  map[string]*os.File     // this process's ends, made at an upgrade
}

// newQuicHandoff returns the handoff of a process of generation,
// taking from u the ends of pairs a predecessor handed.
func newQuicHandoff(generation int, u *upgrader, log *slog.Logger) *quicHandoff {
	q := &quicHandoff{generation: generation, log: log, conns: map[string]*handoffConn{}, from: map[string]*os.File{}, kept: map[string]*os.File{}}
	if u == nil {
		return q
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for key, f := range u.inherited {
		if strings.HasPrefix(key, quicLinkPrefix) {
			q.from[strings.TrimPrefix(key, quicLinkPrefix)] = f
			delete(u.inherited, key)
		}
	}
	return q
}

// wire makes the HTTP/3 of h issue IDs of this generation, over its
// QUIC-LB ones if any, and read its socket through a handoffConn.
func (q *quicHandoff) wire(h *listener.HTTPOptions) {
	if q == nil || !h.HTTP3 {
		return
	}
	gen := quichandoff.NewGenerator(h.QUICConnIDs, q.generation)
	h.QUICConnIDs = gen
	h.QUICConn = func(udp *net.UDPConn) net.PacketConn { return q.attach(udp, gen) }
}

// quicConnKey names a UDP socket alike in a process and its successor.
func quicConnKey(udp *net.UDPConn) string { return "udp " + udp.LocalAddr().String() }

// handoffConn is a quichandoff.Conn that leaves the registry when it
// closes.
type handoffConn struct {
	*quichandoff.Conn
	q   *quicHandoff
	key string
}

func (c *handoffConn) Close() error {
	c.q.mu.Lock()
	if c.q.conns[c.key] == c {
		delete(c.q.conns, c.key)
	}
	c.q.mu.Unlock()
	return c.Conn.Close()
}

// attach wraps udp and links it to the pairs of its socket: the
// predecessor's, to forward to while it lives, and this process's own
// while an upgrade is under way.
func (q *quicHandoff) attach(udp *net.UDPConn, gen *quichandoff.Generator) net.PacketConn {
	c := &handoffConn{Conn: quichandoff.NewConn(udp, gen), q: q, key: quicConnKey(udp)}
	q.mu.Lock()
	defer q.mu.Unlock()
	if f := q.from[c.key]; f != nil {
		if err := c.Forward(f); err != nil {
			q.log.Warn("upgrade: HTTP/3 packets of the previous process will not be forwarded", "socket", c.key, "err", err.Error())
		}
	}
	if f := q.kept[c.key]; f != nil {
		if err := c.Link(f); err != nil {
			q.log.Warn("upgrade: HTTP/3 packets forwarded by the new process will not be read", "socket", c.key, "err", err.Error())
		}
	}
	q.conns[c.key] = c
	return c
}

// errPredecessorRetiring refuses an upgrade while the process this one
// forwards to lives.
var errPredecessorRetiring = errors.New("upgrade: refused: the previous process still retires its HTTP/3 connections, and a new process would share its generation's connection IDs; retry once it has exited")

// prepare makes, for an upgrade, a pair for each HTTP/3 socket: this
// process starts reading its end, the returned ones go to the
// successor. It refuses while the predecessor lives. On error nothing
// stays.
func (q *quicHandoff) prepare() ([]handed, error) {
	if q == nil {
		return nil, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for key, f := range q.from {
		if quichandoff.PeerOpen(f) {
			return nil, errPredecessorRetiring
		}
		f.Close() // it has exited: nothing more to forward
		delete(q.from, key)
	}
	var hs []handed
	for key, c := range q.conns {
		keep, hand, err := quichandoff.Pair()
		if err == nil {
			err = c.Link(keep)
		}
		if err != nil {
			if keep != nil {
				keep.Close()
				hand.Close()
			}
			q.forget()
			closeHanded(hs)
			return nil, fmt.Errorf("upgrade: HTTP/3 socket %s: %w", key, err)
		}
		q.kept[key] = keep
		hs = append(hs, handed{quicLinkPrefix + key, hand})
	}
	return hs, nil
}

// forget closes this process's ends of an upgrade's pairs; the Conns
// linked to them stop reading them once the other ends close.
func (q *quicHandoff) forget() {
	for key, f := range q.kept {
		f.Close()
		delete(q.kept, key)
	}
}

// done ends an upgrade: with err, it failed and the pairs go; without,
// the successor serves, and each HTTP/3 socket is left to it but for
// the packets it forwards.
func (q *quicHandoff) done(err error) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		q.forget()
		return
	}
	for key, c := range q.conns {
		if err := c.Retire(); err != nil {
			q.log.Warn("upgrade: HTTP/3 socket left to the new process without forwarding", "socket", key, "err", err.Error())
		}
	}
	q.forget()
}

var _ quic.OOBCapablePacketConn = (*handoffConn)(nil)
