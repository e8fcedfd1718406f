package quichandoff

import "syscall"

// sendFlags send a forwarded packet without waiting, and without SIGPIPE
// when the successor has gone.
const sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL

// socketpair makes a Pair's two ends, close-on-exec from the start.
func socketpair() ([2]int, error) {
	return syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
}
