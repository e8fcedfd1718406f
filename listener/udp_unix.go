//go:build unix

package listener

import (
	"net"
	"sync"
	"syscall"
)

// datagramPool holds reply buffers: a flow borrows one only while a reply
// is in hand, so idle flows hold none.
var datagramPool = sync.Pool{New: func() any {
	b := make([]byte, maxDatagram+1)
	return &b
}}

// udpReader reads a connected UDP socket's datagrams into pooled buffers.
// It waits for each in the poller without a buffer (honouring the
// socket's read deadline) and takes one from the pool only to read a
// datagram that is already there.
type udpReader struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // r.recv, bound once
	buf *[]byte
	n   int
	err error
}

func newUDPReader(c *net.UDPConn) *udpReader {
	r := &udpReader{}
	rc, err := c.SyscallConn()
	if err != nil {
		r.err = err
		return r
	}
	r.rc = rc
	r.fn = r.recv
	return r
}

func (r *udpReader) recv(fd uintptr) bool {
	b := datagramPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *b)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			datagramPool.Put(b)
			return false // nothing yet: wait in the poller
		case nil:
			r.buf, r.n, r.err = b, n, nil
			return true
		}
		datagramPool.Put(b)
		r.buf, r.n, r.err = nil, 0, err
		return true
	}
}

// read returns the next datagram in a buffer to hand back with release.
func (r *udpReader) read() (*[]byte, int, error) {
	if r.rc == nil {
		return nil, 0, r.err
	}
	if err := r.rc.Read(r.fn); err != nil {
		return nil, 0, err
	}
	return r.buf, r.n, r.err
}

func (r *udpReader) release(b *[]byte) { datagramPool.Put(b) }
