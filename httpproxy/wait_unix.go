//go:build unix

package httpproxy

import (
	"errors"
	"syscall"

	"github.com/lbkit/lbkit/internal/netx"
)

// idleReader reads a plain-HTTP connection's next request without
// holding a buffer while it waits. Made once per connection, so a read
// allocates nothing.
type idleReader struct {
	rc   syscall.RawConn
	fd   int                   // the socket, for the poller
	read func(fd uintptr) bool // rc.Read's callback, bound to the connection
	n    int
}

// readIdle reads the start of the next request into a fresh buffer: the
// connection's, if it holds one, else one from the pool. When nothing is
// there yet it gives the buffer back and lets Go's poller wait for the
// socket to become readable, so the waiting goroutine holds no buffer.
// It makes the same system calls as a plain Read: one read, and after a
// wait one more. n is 0 at EOF, on an error or when the read deadline
// passes, which timedOut reports.
func (cc *clientConn) readIdle() (n int, timedOut bool) {
	ir := cc.idle
	if ir == nil {
		sc, ok := cc.raw.(syscall.Conn)
		if !ok {
			return cc.readPlain()
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return 0, false
		}
		ir = &idleReader{rc: rc, fd: -1}
		rc.Control(func(fd uintptr) { ir.fd = int(fd) })
		ir.read = func(fd uintptr) bool {
			if cc.reqState == nil {
				cc.reqState = reqStatePool.Get().(*reqState)
			}
			for {
				m, err := syscall.Read(int(fd), cc.in[:])
				switch {
				case errors.Is(err, syscall.EINTR):
					continue
				case errors.Is(err, syscall.EAGAIN):
					reqStatePool.Put(cc.reqState)
					cc.reqState = nil
					return false
				}
				ir.n = max(m, 0)
				return true
			}
		}
		cc.idle = ir
	}
	ir.n = 0
	err := ir.rc.Read(ir.read)
	if cc.reqState == nil { // the deadline passed while waiting
		cc.reqState = reqStatePool.Get().(*reqState)
	}
	if err != nil {
		return 0, netx.IsTimeout(err)
	}
	return ir.n, false
}
