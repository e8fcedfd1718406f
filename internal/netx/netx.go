// Package netx holds the small network helpers the listener and the HTTP
// proxy share: the accept loop, the timeout test and the destination a
// pick key carries.
package netx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// AcceptLoop calls accept until the listener behind it is closed, giving
// each connection to handle. Other accept errors (out of file
// descriptors and the like) are logged and waited out, backing off as
// net/http does, so the listener keeps serving once they pass.
func AcceptLoop[C net.Conn](log *slog.Logger, accept func() (C, error), handle func(C)) {
	var backoff time.Duration
	for {
		c, err := accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		handle(c)
	}
}

// IsTimeout reports whether err is a network timeout (a deadline).
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ServiceDst is the destination a pick key carries for a connection that
// arrived at local: the service address (a VIP every replica of a
// balancer shares), so that replicas bound to different local addresses
// hash a flow alike, or local when service is not set. A zero service
// port keeps local's port, for listeners on a range of ports.
func ServiceDst(service, local netip.AddrPort) netip.AddrPort {
	if !service.Addr().IsValid() {
		return local
	}
	if service.Port() == 0 {
		return netip.AddrPortFrom(service.Addr(), local.Port())
	}
	return service
}

// DialFrom connects to addr over TCP from the source address and port
// src, with SO_REUSEADDR so that src may be reused while an earlier
// connection from it is in TIME_WAIT: what tests of four-tuple hashing,
// which send one four-tuple many times, need.
func DialFrom(ctx context.Context, src netip.AddrPort, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(src), Control: reuseAddr}
	return d.DialContext(ctx, "tcp", addr)
}

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
