//go:build unix

package httpproxy

import (
	"errors"
	"net"
	"syscall"
)

// waitReadable blocks until c has bytes to read, has reached EOF or
// failed, or its read deadline passes (then it returns the deadline's
// error), without a read buffer: it peeks one byte at the socket, and
// when there is none lets Go's poller wait for the next edge.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN)
	})
}
