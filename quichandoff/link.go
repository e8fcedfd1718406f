package quichandoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// Pair returns the two ends of a local socket for one UDP socket's
// handoff: the retiring process keeps keep (Conn.Retire reads it) and
// hands hand to its successor (Conn.Forward writes it). Both are
// close-on-exec; the caller closes them once handed or used (Forward
// and Retire take descriptors of their own).
func Pair() (keep, hand *os.File, err error) {
	fds, err := socketpair()
	if err != nil {
		return nil, nil, fmt.Errorf("quichandoff: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "quichandoff-keep"), os.NewFile(uintptr(fds[1]), "quichandoff-hand"), nil
}

// PeerOpen reports whether the process at the other end of f, one end
// of a Pair, still holds its end: while it does, a successor of the
// process holding f would share its generation's parity.
func PeerOpen(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, peer there; a packet waiting: there
		// too. End of file (0, nil): gone.
		open = err == syscall.EAGAIN || (err == nil && n > 0)
	})
	return open
}

// hdrLen is the length of the header before each forwarded packet: its
// source address as 16 octets (IPv4 mapped) and port, big-endian.
const hdrLen = 18

// maxForwarded bounds a forwarded datagram: a UDP payload and its
// header.
const maxForwarded = hdrLen + 65535

// link is this process's end of a Pair.
type link struct {
	uc  *net.UnixConn
	rc  syscall.RawConn
	buf []byte // one datagram; used by the one reading goroutine only

	// The send and read closures, made once so a forwarded packet
	// allocates nothing.
	n      int
	err    error
	send   func(fd uintptr)
	recv   func(fd uintptr) bool
	noWait bool
}

// newLink takes a descriptor of its own of f, one end of a Pair.
func newLink(f *os.File) (*link, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("quichandoff: handoff socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("quichandoff: handoff socket is a %T, want a unix socket", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("quichandoff: handoff socket: %w", err)
	}
	l := &link{uc: uc, rc: rc, buf: make([]byte, maxForwarded)}
	l.send = func(fd uintptr) {
		// Never wait: a full buffer drops the packet, as a full UDP
		// receive buffer would; QUIC retransmits.
		l.err = syscall.Sendto(int(fd), l.buf[:l.n], sendFlags, nil)
	}
	l.recv = func(fd uintptr) bool {
		l.n, l.err = syscall.Read(int(fd), l.buf)
		return l.noWait || l.err != syscall.EAGAIN
	}
	return l, nil
}

// forward sends packet p from src to the other end; it reports false
// once that end is gone.
func (l *link) forward(src *net.UDPAddr, p []byte) (alive bool) {
	ap := src.AddrPort()
	a := ap.Addr().As16()
	copy(l.buf, a[:])
	binary.BigEndian.PutUint16(l.buf[16:], ap.Port())
	l.n = hdrLen + copy(l.buf[hdrLen:], p)
	if err := l.rc.Control(l.send); err != nil {
		return false
	}
	return l.err != syscall.EPIPE && l.err != syscall.ECONNREFUSED && l.err != syscall.ENOTCONN
}

// errLinkClosed is what a read of the handoff socket returns once the
// other process has closed its end.
var errLinkClosed = errors.New("quichandoff: the other process closed the handoff socket")

// read reads one forwarded packet into dst, returning its length and
// source; without wait it returns n < 0 when none is waiting. A
// datagram too short to carry a header is skipped (n < 0, no error).
func (l *link) read(dst []byte, wait bool) (n int, src netip.AddrPort, err error) {
	l.noWait = !wait
	if err := l.rc.Read(l.recv); err != nil {
		return 0, src, err
	}
	switch {
	case l.err == syscall.EAGAIN:
		return -1, src, nil
	case l.err != nil:
		return 0, src, l.err
	case l.n == 0:
		return 0, src, errLinkClosed
	case l.n < hdrLen:
		return -1, src, nil
	}
	src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(l.buf[:16])).Unmap(), binary.BigEndian.Uint16(l.buf[16:]))
	return copy(dst, l.buf[hdrLen:l.n]), src, nil
}
