package listener

import (
	"net"
	"syscall"
	"unsafe"
)

// waiter waits until a TCP connection is readable without reading from it:
// a MSG_PEEK of one byte tells whether data (or EOF, or an error) is
// there, and the netpoller waits for more when it is not. An idle
// connection thus parks its goroutine in the poller instead of inside a
// splice that holds a pipe.
type waiter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.peek, bound once
	buf [1]byte
}

func newWaiter(c *net.TCPConn) *waiter {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	w := &waiter{rc: rc}
	w.fn = w.peek
	return w
}

func (w *waiter) peek(fd uintptr) bool {
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // nothing yet: wait in the poller
		}
		return true // data, EOF or an error: the next read will see it
	}
}

// wait blocks until the connection is readable or its read deadline
// passes.
func (w *waiter) wait() error {
	if w == nil {
		return nil
	}
	return w.rc.Read(w.fn)
}
