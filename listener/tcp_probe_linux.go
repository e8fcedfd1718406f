//go:build linux

package listener

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirProbe is a tcpDir's probe state: the probe function, bound once so
// that a probe allocates nothing, and its results.
type dirProbe struct {
	fn func(fd uintptr)
	n  int
	st probeState
}

// probe reports what d's source socket holds without waiting: how many
// bytes can be read at once, or that it has nothing yet (quiet), or that a
// read would return EOF or an error at once (ended).
func (d *tcpDir) probe() (int, probeState) {
	if d.pr.fn == nil {
		d.pr.fn = d.probeFD
	}
	d.pr.n, d.pr.st = 0, probeEnded
	d.rc.Control(d.pr.fn)
	return d.pr.n, d.pr.st
}

func (d *tcpDir) probeFD(fd uintptr) {
	// TIOCINQ is FIONREAD: on a socket, the bytes queued to read. The
	// kernel writes a C int, so an int32 (not x/sys's IoctlGetInt, whose
	// Go int would read it wrong on 64-bit big-endian systems).
	var avail int32
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.TIOCINQ, uintptr(unsafe.Pointer(&avail))); errno == 0 && avail > 0 {
		d.pr.n, d.pr.st = int(avail), probeData
		return
	}
	if !peekReady(fd) {
		d.pr.st = probeQuiet
	}
}

// peekReady reports whether a read on fd would return at once (data, EOF
// or an error), asking ppoll with a zero timeout. (A MSG_PEEK recvfrom
// would tell as well, but x/sys's Recvfrom allocates, and a raw one is
// not there on 386 before Linux 4.3.)
func peekReady(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	var now unix.Timespec // zero: do not wait
	for {
		n, err := unix.Ppoll(fds[:], &now, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return true // let the read find the error
		}
		return n > 0
	}
}

// waitBriefly waits up to parkAfter, holding the goroutine, for d's
// source to become readable, and reports whether it did. A stream with
// short gaps thus never parks; only a direction quiet for parkAfter does.
func (d *tcpDir) waitBriefly() bool {
	d.src.SetReadDeadline(time.Now().Add(parkAfter))
	err := d.rc.Read(peekReady)
	d.src.SetReadDeadline(time.Time{})
	return err == nil
}
