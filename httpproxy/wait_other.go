//go:build !unix

package httpproxy

import "net"

// waitReadable returns at once where the socket cannot be peeked: the
// caller's Read waits instead, with its buffer.
func waitReadable(net.Conn) error { return nil }
