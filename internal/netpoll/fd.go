package netpoll

import (
	"fmt"
	"syscall"
)

// FD returns the descriptor of c (a *net.TCPConn, *net.UnixConn, …) for
// Park. Call it once, when the connection is accepted, and keep the
// number: the call allocates, and Park does not.
//
// The number names c only while c is open; the rule in the package doc
// (close only after Wake or a successful Unpark) is what keeps it so
// while the connection is parked.
func FD(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("netpoll: descriptor: %w", err)
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, fmt.Errorf("netpoll: descriptor: %w", err)
	}
	return fd, nil
}
