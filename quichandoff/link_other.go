//go:build unix && !linux

package quichandoff

import "syscall"

// sendFlags send a forwarded packet without waiting. Go ignores SIGPIPE
// for descriptors other than standard output and error, so a successor
// that has gone shows as EPIPE, as MSG_NOSIGNAL gives on Linux.
const sendFlags = syscall.MSG_DONTWAIT

// socketpair makes a Pair's two ends close-on-exec, under the fork lock
// where SOCK_CLOEXEC is missing. A system without SOCK_SEQPACKET on Unix
// sockets (macOS) refuses it: there a Pair cannot be made, and a binary
// upgrade cannot keep QUIC connections.
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err != nil {
		return fds, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return fds, nil
}
