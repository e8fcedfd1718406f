//go:build linux

package netpoll_test

import (
	"fmt"
	"net"
	"time"

	"github.com/lbkit/lbkit/internal/netpoll"
)

// conn is an owner's connection: it is its own Waker, so parking it
// allocates nothing.
type conn struct {
	c     net.Conn
	woken chan netpoll.Reason
}

func (c *conn) Wake(r netpoll.Reason) { c.woken <- r }

// An idle connection waits in the poller, not in a goroutine, until the
// client sends its next request.
func Example() {
	p, err := netpoll.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	client, _ := net.Dial("tcp", l.Addr().String())
	defer client.Close()
	server, _ := l.Accept()
	defer server.Close()

	fd, err := netpoll.FD(server.(*net.TCPConn)) // once, at accept time
	if err != nil {
		fmt.Println(err)
		return
	}
	c := &conn{c: server, woken: make(chan netpoll.Reason, 1)}
	if _, err := p.Park(fd, time.Now().Add(time.Minute), c); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("parked:", p.Len())

	client.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	fmt.Println("woken:", <-c.woken)
	buf := make([]byte, 64)
	n, _ := c.c.Read(buf)
	fmt.Printf("read %d bytes\n", n)
	// Output:
	// parked: 1
	// woken: readable
	// read 18 bytes
}
