//go:build linux && !386 && !arm

package listener

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// parker holds the idle directions of a TCP listener's connections without
// a goroutine each: a direction with nothing to read puts its socket in one
// epoll set (one-shot) and its goroutine ends; when the socket becomes
// readable (data, EOF or an error) the parker starts a fresh goroutine to
// copy. A parked goroutine costs its stack (2–8 KiB, which a copy through
// the splice path grows) and its g; a parked socket costs a map entry.
//
// The epoll set is itself waited on in Go's netpoller, so the parker's one
// goroutine needs no thread, and closing the set ends it.
type parker struct {
	ep *os.File
	rc syscall.RawConn

	mu     sync.Mutex
	parked map[int32]*tcpDir // by the source socket's descriptor

	events [128]syscall.EpollEvent // the loop's alone
}

func newParker() (*parker, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile hands it to the netpoller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	p := &parker{ep: os.NewFile(uintptr(fd), "epoll"), parked: map[int32]*tcpDir{}}
	if p.rc, err = p.ep.SyscallConn(); err != nil {
		p.ep.Close()
		return nil, err
	}
	return p, nil
}

// park registers d's source socket for one wake-up and reports whether
// it did; the caller's goroutine must then leave d alone, since d may be
// running again, or be finished by an abort, at once. d.state is parked
// before the registration, so a wake-up never finds it running.
func (p *parker) park(d *tcpDir) bool {
	d.state.Store(dirParked)
	var err error
	cerr := d.rc.Control(func(fd uintptr) {
		p.mu.Lock()
		p.parked[int32(fd)] = d
		p.mu.Unlock()
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
		// ADD reports a socket that is already readable at once, so
		// data that came after the probe is not missed. A socket parked
		// before stays in the set, disarmed, until it is closed.
		err = syscall.EpollCtl(int(p.ep.Fd()), syscall.EPOLL_CTL_ADD, int(fd), &ev)
		if errors.Is(err, syscall.EEXIST) {
			err = syscall.EpollCtl(int(p.ep.Fd()), syscall.EPOLL_CTL_MOD, int(fd), &ev)
		}
		if err != nil {
			p.forget(int32(fd), d)
		}
	})
	if cerr == nil && err == nil {
		return true
	}
	// Not parked: the socket was closed under us (an abort, which then
	// finishes d unless we take it back) or epoll refused it.
	return !d.state.CompareAndSwap(dirParked, dirRunning)
}

// forget removes d from the parked set, if it is there under fd.
func (p *parker) forget(fd int32, d *tcpDir) {
	p.mu.Lock()
	if p.parked[fd] == d {
		delete(p.parked, fd)
	}
	p.mu.Unlock()
}

// unpark takes d back from the parker for an abort, reporting whether d
// was parked; the caller then finishes it.
func (p *parker) unpark(d *tcpDir) bool {
	if !d.state.CompareAndSwap(dirParked, dirDone) {
		return false
	}
	p.mu.Lock()
	for fd, pd := range p.parked {
		if pd == d {
			delete(p.parked, fd)
			break
		}
	}
	p.mu.Unlock()
	return true
}

// run wakes parked directions until the parker is closed.
func (p *parker) run() {
	p.rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), p.events[:], 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n == 0 {
				return err != nil // nothing ready: wait in the netpoller
			}
			for _, ev := range p.events[:n] {
				p.mu.Lock()
				d := p.parked[ev.Fd]
				delete(p.parked, ev.Fd)
				p.mu.Unlock()
				// A stale event (its socket closed and its number
				// reused) wakes a direction that finds nothing to read
				// and parks again.
				if d != nil && d.state.CompareAndSwap(dirParked, dirRunning) {
					go d.run()
				}
			}
		}
	})
}

// close ends run; every connection must have ended first.
func (p *parker) close() { p.ep.Close() }

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
	var avail int32 // TIOCINQ is FIONREAD: on a socket, the bytes queued to read
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&avail))); errno == 0 && avail > 0 {
		d.pr.n, d.pr.st = int(avail), probeData
		return
	}
	if !peekReady(fd) {
		d.pr.st = probeQuiet
	}
}

// peekReady reports whether a read on fd would return at once (data, EOF
// or an error), peeking at one byte without taking it.
func peekReady(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}

// waitBriefly waits up to copyBound, holding the goroutine, for d's
// source to become readable, and reports whether it did. A stream with
// short gaps thus never parks; only a direction quiet for copyBound does.
func (d *tcpDir) waitBriefly() bool {
	d.src.SetReadDeadline(time.Now().Add(copyBound))
	err := d.rc.Read(peekReady)
	d.src.SetReadDeadline(time.Time{})
	return err == nil
}
