// Package netx holds the small network helpers the listener and the HTTP
// proxy share: the accept loop, the timeout test, the destination a pick
// key carries and a socket's descriptor as a file.
package netx

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// File returns a new descriptor of socket, whose address is addr, as an
// os.File whose Fd leaves the socket non-blocking. The File method of
// net's sockets returns one whose Fd — which net.FileListener,
// net.FilePacketConn, os.StartProcess and exec.Cmd.ExtraFiles call —
// puts the socket in blocking mode, for every descriptor of it, since
// the mode belongs to the socket: an accept or a read of whoever still
// serves it that entered the kernel then would wait there, and its Close
// with it, until a connection or a datagram came; os.File.Fd documents
// the switch. A descriptor handed to os.NewFile non-blocking stays so.
// The File is named as net names its own: "tcp:127.0.0.1:8080->".
func File(socket syscall.Conn, addr net.Addr) (*os.File, error) {
	rc, err := socket.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("fcntl", dupErr)
	}
	return os.NewFile(uintptr(fd), addr.Network()+":"+addr.String()+"->"), nil
}
