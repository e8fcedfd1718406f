package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/quichandoff"
	"github.com/quic-go/quic-go"
)

// A binary upgrade keeps the HTTP/3 connections of the process that
// retires (package quichandoff): every connection ID of an https
// listener's HTTP/3 carries a parity bit, and each HTTP/3 UDP socket is
// read through a quichandoff.Conn, in every process, since any may
// become a predecessor. At an upgrade the process makes a local socket
// pair per HTTP/3 UDP socket and hands one end beside the socket; the
// successor forwards the packets of the older parity's connections over
// it, and this process, once the successor is ready, stops reading the
// UDP socket and reads only those. A further upgrade waits until that
// process has exited: its successor would share its parity.
//
// A reload that replaces an HTTP/3 listener on the same socket (a
// listener.Instance takeover) does the same within the process: the
// parity is per socket, each incarnation takes the opposite of the one
// it replaces, the two are linked by a pair, and the replaced one stops
// reading the UDP socket once the reload has switched. The successor of
// an upgrade takes, on each socket, the opposite of the parity in use
// there, named beside the pair's end in the handoff document.

// quicLinkPrefix names, in the handoff document, the end of a pair for
// the HTTP/3 UDP socket named after it; quicParitySep then gives the
// parity the successor takes on that socket (without it, a predecessor
// that kept one parity per process: the successor's generation's).
const (
	quicLinkPrefix = "quic-link "
	quicParitySep  = " parity "
)

// quicHandoff is the process's side of the QUIC handoff. A nil
// *quicHandoff wraps nothing: quic-go reads the sockets itself. Its
// methods are safe for concurrent use.
type quicHandoff struct {
	generation int
	log        *slog.Logger

	mu     sync.Mutex
	conns  map[string]*handoffConn // by quicConnKey: the latest on each socket
	parity map[string]int          // by quicConnKey: the parity last taken on each socket
	from   map[string]*os.File     // the predecessor's ends, while it lives
	fromP  map[string]int          // the predecessor's parity on each socket of from
	kept   map[string]*os.File     // this process's ends, made at an upgrade
}

// newQuicHandoff returns the handoff of a process of generation,
// taking from u the ends of pairs a predecessor handed.
func newQuicHandoff(generation int, u *upgrader, log *slog.Logger) *quicHandoff {
	q := &quicHandoff{generation: generation, log: log, conns: map[string]*handoffConn{}, parity: map[string]int{}, from: map[string]*os.File{}, fromP: map[string]int{}, kept: map[string]*os.File{}}
	if u == nil {
		return q
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, f := range u.inherited {
		rest, ok := strings.CutPrefix(name, quicLinkPrefix)
		if !ok {
			continue
		}
		key, p, hasParity := strings.Cut(rest, quicParitySep)
		q.parity[key] = generation & 1
		if n, err := strconv.Atoi(p); hasParity && err == nil {
			q.parity[key] = n & 1
		}
		q.from[key], q.fromP[key] = f, q.parity[key]^1
		delete(u.inherited, name)
	}
	return q
}

// wire makes the HTTP/3 of h issue IDs of the parity its socket takes,
// over its QUIC-LB ones if any, and read its socket through a
// handoffConn.
func (q *quicHandoff) wire(h *listener.HTTPOptions) {
	if q == nil || !h.HTTP3 {
		return
	}
	ids := &socketIDs{inner: h.QUICConnIDs}
	ids.gen.Store(quichandoff.NewGenerator(h.QUICConnIDs, q.generation))
	h.QUICConnIDs = ids
	h.QUICConn = func(udp *net.UDPConn) net.PacketConn { return q.attach(udp, ids) }
}

// quicConnKey names a UDP socket alike in a process and its successor.
func quicConnKey(udp *net.UDPConn) string { return "udp " + udp.LocalAddr().String() }

// olderLives reports whether the incarnation c forwards to, in this
// process or its predecessor, still holds its end: while it does, a
// replacement of c would share its parity.
func (q *quicHandoff) olderLives(c *handoffConn) bool {
	if c.older != nil {
		return quichandoff.PeerOpen(c.older)
	}
	f := q.from[c.key]
	return f != nil && c.parity != q.fromP[c.key] && quichandoff.PeerOpen(f)
}

// attach wraps udp, choosing the parity of ids, and links it: to the
// incarnation it replaces on the socket, if one still runs, or to the
// predecessor's pair while it lives; and to this process's own while an
// upgrade is under way.
func (q *quicHandoff) attach(udp *net.UDPConn, ids *socketIDs) net.PacketConn {
	key := quicConnKey(udp)
	q.mu.Lock()
	defer q.mu.Unlock()
	parity, known := q.parity[key]
	if !known {
		parity = q.generation & 1
	}
	prev := q.conns[key]
	var keep, hand *os.File
	switch {
	case prev == nil:
	case q.olderLives(prev):
		// Only two parities: prev's connections are lost to this one,
		// which forwards, as prev does, to the older incarnation (in
		// this process, or the predecessor process).
		q.log.Warn("reload: the replaced HTTP/3 listener's connections may stall: the one it replaced still retires on the socket, and only two can share it", "socket", key)
		parity = prev.parity
		hand, prev.older = prev.older, nil
	default:
		var err error
		if keep, hand, err = quichandoff.Pair(); err == nil {
			err = prev.Link(keep)
			keep.Close()
		}
		if err != nil {
			q.log.Warn("reload: the replaced HTTP/3 listener's connections may stall", "socket", key, "err", err.Error())
			if hand != nil {
				hand.Close()
			}
			hand, parity = nil, prev.parity
			break
		}
		parity = prev.parity ^ 1
	}
	gen := quichandoff.NewGenerator(ids.inner, parity)
	ids.gen.Store(gen)
	q.parity[key] = parity
	c := &handoffConn{Conn: quichandoff.NewConn(udp, gen), q: q, key: key, parity: parity}
	switch f := q.from[key]; {
	case hand != nil:
		if err := c.Forward(hand); err != nil {
			hand.Close()
			q.log.Warn("reload: HTTP/3 packets of the replaced listener will not be forwarded", "socket", key, "err", err.Error())
			break
		}
		c.older = hand
		if parity != prev.parity {
			c.replaces = prev
		}
	case f != nil && parity != q.fromP[key]:
		if err := c.Forward(f); err != nil {
			q.log.Warn("upgrade: HTTP/3 packets of the previous process will not be forwarded", "socket", key, "err", err.Error())
		}
	}
	if f := q.kept[key]; f != nil {
		if err := c.Link(f); err != nil {
			q.log.Warn("upgrade: HTTP/3 packets forwarded by the new process will not be read", "socket", key, "err", err.Error())
		}
	}
	q.conns[key] = c
	return c
}

// switched is called once a reload's new listeners serve: each HTTP/3
// incarnation one of them replaced stops reading the UDP socket and
// reads only what its replacement forwards (a forwarded packet would
// otherwise wait for its next read of the UDP socket). Not before: a
// reload refused after a new listener started closes it again, and the
// replaced one, still reading the socket, goes on alone.
func (q *quicHandoff) switched() {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for key, c := range q.conns {
		if old := c.replaces; old != nil {
			c.replaces = nil
			if err := old.Retire(); err != nil {
				q.log.Warn("reload: the replaced HTTP/3 listener still reads its socket", "socket", key, "err", err.Error())
			}
		}
	}
}

// errPredecessorRetiring refuses an upgrade while the process this one
// forwards to lives.
var errPredecessorRetiring = errors.New("upgrade: refused: the previous process still retires its HTTP/3 connections, and a new process would share its generation's connection IDs; retry once it has exited")

// errReplacedRetiring refuses an upgrade while an HTTP/3 listener a
// reload replaced still retires on a socket.
var errReplacedRetiring = errors.New("upgrade: refused: an HTTP/3 listener replaced by a reload still retires its connections, and a new process would share their connection IDs; retry once they have closed")

// prepare makes, for an upgrade, a pair for each HTTP/3 socket: this
// process starts reading its end, the returned ones go to the
// successor, each named with the parity the successor takes on its
// socket. It refuses while the predecessor, or a listener a reload
// replaced, still retires. On error nothing stays.
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
	for _, c := range q.conns {
		if q.olderLives(c) {
			return nil, errReplacedRetiring
		}
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
		hs = append(hs, handed{quicLinkPrefix + key + quicParitySep + strconv.Itoa(c.parity^1), hand})
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
