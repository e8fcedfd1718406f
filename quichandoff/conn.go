package quichandoff

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Conn is the UDP socket a QUIC server of one generation reads, sorting
// every datagram by the generation that owns its connection (see the
// package doc): this process's go to quic-go; the other generation's
// are sent to it over the socket pair given to Forward or Link, or
// without one dropped (never reset). Packets the other process sends
// are read between batches of the UDP socket. After Retire it reads
// only what the successor forwards.
//
// Give it to quic.Transport.Conn: it is a quic.OOBCapablePacketConn
// with ReadBatch, so quic-go keeps its batch reads; a packet not for
// this process is left in its slot with length 0, which quic-go skips.
// Writes go straight to the UDP socket; reads of the embedded UDPConn
// itself are not sorted. Most callers want NewConn, then Forward in a
// successor, or Link at an upgrade and Retire once the successor is
// ready.
//
// Reads (ReadBatch, ReadFrom, ReadMsgUDP) must come from one goroutine
// at a time, as quic-go's do; the other methods are safe for concurrent
// use. The zero value is not usable.
type Conn struct {
	*net.UDPConn
	batch  *ipv4.PacketConn
	gen    byte
	cidLen int

	fwd     atomic.Pointer[link] // Forward's: in a successor, to its predecessor
	from    atomic.Pointer[link] // Link's: in a process that hands over, to its successor
	retired atomic.Bool          // reading only from

	mu       sync.Mutex // serializes Forward, Retire, Close and deadlines
	deadline time.Time  // the caller's read deadline
	closed   bool
}

// NewConn wraps udp for the generation and connection-ID length of gen,
// the generator the same quic.Transport issues its IDs with. Closing
// the Conn closes udp.
func NewConn(udp *net.UDPConn, gen *Generator) *Conn {
	return &Conn{UDPConn: udp, batch: ipv4.NewPacketConn(udp), gen: gen.parity, cidLen: gen.n}
}

// Forward makes c, in a successor, send the packets of its
// predecessor's generation over f, the end of a Pair the predecessor
// handed over, and read those the predecessor sends the other way. It
// takes a descriptor of its own; once the predecessor has exited, the
// predecessor's packets are dropped.
func (c *Conn) Forward(f *os.File) error { return c.attach(&c.fwd, f) }

// Link makes c, in a process that hands its sockets to a successor,
// exchange packets with it over f, the end of a Pair it keeps: c reads
// those the successor forwards between its own reads of the UDP
// socket, and until Retire sends the successor's the other way. It
// takes a descriptor of its own.
func (c *Conn) Link(f *os.File) error { return c.attach(&c.from, f) }

// attach sets *to to a link of f's, closing the one it replaces.
func (c *Conn) attach(to *atomic.Pointer[link], f *os.File) error {
	l, err := newLink(f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		l.uc.Close()
		return net.ErrClosed
	}
	if old := to.Swap(l); old != nil {
		old.uc.Close()
	}
	return nil
}

// errNoLink is Retire's error without Link.
var errNoLink = errors.New("quichandoff: Retire without Link: no handoff socket to read")

// Retire makes c stop reading the UDP socket, leaving its datagrams to
// the successor, and read only the packets the successor forwards over
// the socket given to Link, until the successor closes its end; c still
// writes to the UDP socket. It returns an error without Link.
//
// The UDP socket stops through a read deadline in the past on this
// process's descriptor: the poller's deadlines are per process, so the
// successor's reads of the same socket go on.
func (c *Conn) Retire() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.from.Load()
	if l == nil {
		return errNoLink
	}
	c.retired.Store(true)
	l.uc.SetReadDeadline(c.deadline)
	return c.UDPConn.SetReadDeadline(time.Unix(1, 0))
}

// SetReadDeadline sets the deadline of c's reads: of the UDP socket,
// or after Retire of the handoff socket.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if l := c.from.Load(); l != nil {
		l.uc.SetReadDeadline(t)
	}
	if c.retired.Load() {
		return nil
	}
	return c.UDPConn.SetReadDeadline(t)
}

// SetDeadline sets the read deadline as SetReadDeadline does and the
// write deadline of the UDP socket.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.UDPConn.SetWriteDeadline(t)
}

// Close closes the UDP socket and c's ends of handoff sockets.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, p := range []*atomic.Pointer[link]{&c.fwd, &c.from} {
		if l := p.Swap(nil); l != nil {
			l.uc.Close()
		}
	}
	return c.UDPConn.Close()
}

// ReadBatch reads datagrams into ms as ipv4.PacketConn.ReadBatch does
// and sorts them: a packet of the other generation is forwarded or
// dropped, and its message left with N = 0 (ms is never reordered: a
// caller may pair each message with a buffer of its own). Slots after
// the n read are filled with waiting forwarded packets. After Retire it
// reads forwarded packets only.
func (c *Conn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	for {
		if c.retired.Load() {
			l := c.from.Load()
			if l == nil {
				return 0, net.ErrClosed
			}
			return c.readForwarded(l, ms, true)
		}
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil {
			if c.retired.Load() && isTimeout(err) {
				continue // Retire's deadline: read the handoff socket
			}
			return n, err
		}
		kept := 0
		for i := range ms[:n] {
			m := &ms[i]
			if c.mine(m.Buffers[0][:m.N], m.Addr) {
				kept++
			} else {
				m.N = 0
			}
		}
		if at, l := c.other(); l != nil && n < len(ms) {
			more, err := c.readForwarded(l, ms[n:], false)
			if err != nil {
				c.drop(at, l) // the other process is gone: nothing more will come
			}
			n, kept = n+more, kept+more
		}
		if kept > 0 {
			return n, nil
		}
	}
}

// mine reports whether packet p from src is this process's, forwarding
// it otherwise.
func (c *Conn) mine(p []byte, src net.Addr) bool {
	bit, ok := owner(p, c.cidLen)
	if !ok || bit == c.gen {
		return true
	}
	if at, l := c.other(); l != nil {
		if ua, isUDP := src.(*net.UDPAddr); isUDP && !l.forward(ua, p) {
			c.drop(at, l) // the other process has exited
		}
	}
	return false
}

// other returns the link to the other generation, and where c holds
// it: the end given to Forward, or until Retire the one given to Link.
// Packets go both ways over a pair: a successor forwards its
// predecessor's, and the predecessor, until it retires, the
// successor's.
func (c *Conn) other() (*atomic.Pointer[link], *link) {
	if l := c.fwd.Load(); l != nil {
		return &c.fwd, l
	}
	if l := c.from.Load(); l != nil && !c.retired.Load() {
		return &c.from, l
	}
	return nil, nil
}

// drop closes l, held at at, unless Close or a replacement came first.
func (c *Conn) drop(at *atomic.Pointer[link], l *link) {
	if at.CompareAndSwap(l, nil) {
		l.uc.Close()
	}
}

// readForwarded fills ms with packets forwarded over l: without wait,
// those waiting; with wait, one, waiting for it. Its error is l's, with
// nothing read.
func (c *Conn) readForwarded(l *link, ms []ipv4.Message, wait bool) (int, error) {
	i := 0
	for i < len(ms) {
		m := &ms[i]
		n, src, err := l.read(m.Buffers[0], wait && i == 0)
		if err != nil {
			if i > 0 {
				return i, nil
			}
			return 0, err
		}
		if n < 0 {
			if wait && i == 0 {
				continue
			}
			break
		}
		m.N, m.NN, m.Flags = n, 0, 0
		m.Addr = net.UDPAddrFromAddrPort(src)
		i++
		if wait {
			break
		}
	}
	return i, nil
}

// ReadFrom reads one datagram of this process as ReadBatch sorts them.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, _, _, addr, err := c.ReadMsgUDP(b, nil)
	if addr == nil {
		return n, nil, err
	}
	return n, addr, err
}

// ReadMsgUDP reads one datagram of this process as ReadBatch sorts
// them; forwarded packets come without oob.
func (c *Conn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	ms := [1]ipv4.Message{{Buffers: [][]byte{b}, OOB: oob}}
	if _, err := c.ReadBatch(ms[:], 0); err != nil {
		return 0, 0, 0, nil, err
	}
	m := ms[0]
	addr, _ = m.Addr.(*net.UDPAddr)
	return m.N, m.NN, m.Flags, addr, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
