package testpki

import (
	"crypto/tls"
	"testing"
)

// A client with the returned config verifies and completes a handshake
// with the returned server config, agreeing on the ALPN protocol.
func TestLoopbackTLS(t *testing.T) {
	server, client := LoopbackTLS(t, "x-test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().NegotiatedProtocol; got != "x-test" {
		t.Errorf("ALPN = %q, want x-test", got)
	}
	if err := <-done; err != nil {
		t.Errorf("server handshake: %v", err)
	}
}
