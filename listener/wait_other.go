//go:build !linux

package listener

import "net"

// waiter is a no-op where MSG_PEEK waiting is not wired up: the copy
// itself then waits, under the same deadlines.
type waiter struct{}

func newWaiter(*net.TCPConn) *waiter { return nil }

func (*waiter) wait() error { return nil }
