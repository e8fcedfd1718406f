//go:build !unix

package listener

import "net"

// udpReader reads a connected UDP socket into a buffer of its own, where
// waiting in the poller without one is not wired up.
type udpReader struct {
	c   *net.UDPConn
	buf []byte
}

func newUDPReader(c *net.UDPConn) *udpReader {
	return &udpReader{c: c, buf: make([]byte, maxDatagram+1)}
}

func (r *udpReader) read() (*[]byte, int, error) {
	n, err := r.c.Read(r.buf)
	return &r.buf, n, err
}

func (r *udpReader) release(*[]byte) {}
