// Command iocopyproxy is the baseline of bench/run.sh's l4 suite: a plain Go
// TCP proxy that accepts, dials the backend and io.Copy's both ways (on
// Linux, *net.TCPConn's ReadFrom uses splice(2) between two TCP sockets).
//
//	iocopyproxy -listen 127.0.0.1:19184 -backend 127.0.0.1:15201
package main

import (
	"flag"
	"io"
	"log"
	"net"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19184", "listen `address`")
	backend := flag.String("backend", "127.0.0.1:15201", "backend `host:port`")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go proxy(c.(*net.TCPConn), *backend)
	}
}

func proxy(c *net.TCPConn, backend string) {
	defer c.Close()
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	bc := b.(*net.TCPConn)
	defer bc.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(bc, c)
		_ = bc.CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, bc)
	_ = c.CloseWrite()
	<-done
}
