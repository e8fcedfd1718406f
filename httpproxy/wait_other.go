//go:build !unix

package httpproxy

// idleReader is not used where the socket's descriptor is not reachable.
type idleReader struct{ fd int }

// readIdle reads the start of the next request with a plain Read: where
// the socket's descriptor is not reachable, an idle connection keeps its
// buffer and its goroutine.
func (cc *clientConn) readIdle() (n int, timedOut bool) { return cc.readPlain() }
