//go:build linux

package netpoll

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tick is the resolution of deadlines: a parked connection expires
// within one tick after its deadline, never before, and deadlines that
// fall in the same tick are swept by one wakeup of the poll loop. Idle
// timeouts are seconds long, so a quarter second is invisible to them.
const tick = 250 * time.Millisecond

// events is how many readiness events one epoll_wait returns at most.
const events = 256

// The loop's armed tick while no deadline is set on the epoll file, and
// once the one set has passed: a passed deadline keeps the file's reads
// failing at once, so arm must set another or clear it.
const (
	noDue = math.MaxInt64
	spent = -1
)

// Poller watches idle connections without a goroutine each: one epoll
// set, one goroutine waiting for it, and a heap of deadlines swept by that
// goroutine. Park hands it a connection's descriptor and a Waker; when the
// connection becomes readable, hangs up or errors, or its deadline passes,
// the poller removes it from the set and calls Wake on a new goroutine.
// Unpark takes a connection back first. The package doc states the rule
// that makes this safe: the owner neither reads nor closes a parked
// connection.
//
// A Poller is made by New; the zero value is not usable. Park and Unpark
// are what callers use per connection (Example shows the cycle); Close
// ends the poller.
//
// Park returns ErrClosed after Close (or after the epoll set failed, when
// every parked connection is handed back with Closed), or the epoll_ctl
// error (for instance syscall.EEXIST for a descriptor already parked).
// New returns the error of creating the epoll set; on systems other than
// Linux it returns an error wrapping errors.ErrUnsupported.
//
// A Poller is safe for concurrent use.
type Poller struct {
	ep    *os.File        // the epoll set, non-blocking, waited on in Go's netpoller
	rc    syscall.RawConn // ep's
	epfd  int
	now   func() time.Time
	epoch time.Time // deadlines are ticks since epoch, on its monotonic clock
	done  chan struct{}
	wakes sync.WaitGroup // Wake calls started and not yet returned

	mu      sync.Mutex
	closing bool
	entries []entry // by slot
	free    []int32 // slots not in use
	timers  deadlines
	armed   int64 // the tick of the read deadline set on ep, noDue or spent
	parked  int

	closeOnce sync.Once
	closeErr  error

	// afterWait, if set, runs in the loop between the wait and
	// handling its events, without p.mu: a test seam for the race with
	// Unpark.
	afterWait func()
}

// entry is one slot of the poller's table: a parked connection, or a free
// slot when w is nil.
type entry struct {
	w   Waker
	fd  int32
	gen uint32 // changes each time the slot is freed, so old tickets and events miss
}

// New starts a Poller: it creates the epoll set and the goroutine that
// waits on it.
func New() (*Poller, error) { return newPoller(time.Now) }

// newPoller is New with a clock, so tests can move deadlines.
func newPoller(now func() time.Time) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	// An epoll set is itself pollable: made non-blocking, os.NewFile
	// hands it to Go's netpoller, so the loop waits for it as a
	// goroutine blocked in Read does, without a thread of its own, and
	// the file's read deadline is the loop's one timer.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err == nil {
		// Fails when the runtime could not take the set into its
		// netpoller: the loop could then neither wait nor time out.
		err = ep.SetReadDeadline(time.Time{})
	}
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("netpoll: epoll set in the runtime poller: %w", err)
	}
	p := &Poller{ep: ep, rc: rc, epfd: epfd, now: now, epoch: now(), done: make(chan struct{}), armed: noDue}
	go p.loop()
	return p, nil
}

// Park registers descriptor fd (from FD) until it becomes readable, hangs
// up or errors, or deadline passes, and returns at once; then the poller
// calls w.Wake once, on a new goroutine, with the reason. A zero deadline
// means none; a deadline already past expires the connection at once.
//
// Until Wake, or a successful Unpark with the returned Ticket, the
// connection belongs to the poller: its owner must not read it, and must
// not close it, since a new connection could be given the same
// descriptor number.
//
// Park allocates nothing once the poller's table has grown to the number
// of connections parked at once.
func (p *Poller) Park(fd int, deadline time.Time, w Waker) (Ticket, error) {
	if w == nil {
		return 0, errors.New("netpoll: park: nil Waker")
	}
	var due int64 = noDue
	if !deadline.IsZero() {
		due = p.dueTick(deadline)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return 0, ErrClosed
	}
	slot := p.alloc()
	e := &p.entries[slot]
	// One-shot: the first event disarms the descriptor, so the loop sees
	// it once however much more arrives before it removes it. Level
	// triggering lets data that arrived before Park fire at once.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: slot, Pad: int32(e.gen)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(slot)
		return 0, fmt.Errorf("netpoll: park fd %d: %w", fd, err)
	}
	e.w, e.fd = w, int32(fd)
	p.parked++
	if due != noDue {
		p.timers.add(slot, due)
		if due < p.armed {
			p.setDeadline(due) // the loop would wait past this deadline
		}
	}
	return ticket(slot, e.gen), nil
}

// Unpark takes the connection of t back from the poller and reports
// whether it was still parked. If it reports false, Wake for t has been
// or will be called instead: exactly one of the two wins. A true return
// leaves the connection to its owner at once, to read, park again or
// close.
func (p *Poller) Unpark(t Ticket) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := t.slot()
	if t == 0 || int(slot) >= len(p.entries) {
		return false
	}
	if p.entries[slot].gen != t.gen() {
		return false // already handed back: release moved the generation on
	}
	p.remove(slot)
	return true
}

// Len returns the number of connections parked now.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked
}

// Close wakes every parked connection with Closed, ends the poll
// goroutine, waits until every Wake the poller started has returned, and
// releases the epoll set. Park fails with ErrClosed from the moment Close
// is called. Close must not be called from Wake, which it would wait for.
// Calling Close again waits likewise and returns the first call's result.
func (p *Poller) Close() error {
	p.mu.Lock()
	first := !p.closing
	p.closing = true
	if first {
		p.setDeadline(0) // a deadline long past ends the loop's wait at once
	}
	p.mu.Unlock()
	<-p.done
	p.wakes.Wait()
	p.closeOnce.Do(func() {
		if err := p.ep.Close(); err != nil {
			p.closeErr = fmt.Errorf("netpoll: close: %w", err)
		}
	})
	return p.closeErr
}

// loop is the poll goroutine: it waits for events or the earliest
// deadline, takes the connections that are ready or due out of the set
// under the mutex, and starts their Wakes after releasing it.
func (p *Poller) loop() {
	defer close(p.done)
	evs := make([]unix.EpollEvent, events)
	var ready []wake
	var n int
	var waitErr error
	// collect takes what is ready without blocking; when nothing is, it
	// returns false and rc.Read parks the loop in Go's netpoller until
	// the set becomes readable or its deadline passes.
	collect := func(fd uintptr) bool {
		for {
			n, waitErr = unix.EpollWait(int(fd), evs, 0)
			if waitErr != unix.EINTR {
				return n > 0 || waitErr != nil
			}
		}
	}
	for {
		p.mu.Lock()
		p.arm()
		p.mu.Unlock()
		n, waitErr = 0, nil
		err := p.rc.Read(collect)
		p.mu.Lock()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
			p.armed = spent
		}
		if hook := p.afterWait; hook != nil {
			p.mu.Unlock()
			hook()
			p.mu.Lock()
		}
		if err = cmp.Or(err, waitErr); err != nil {
			// The set is unusable (nothing but a closed epfd makes
			// the wait fail): hand every connection back rather than
			// strand it.
			p.closing = true
		}
		for _, ev := range evs[:max(n, 0)] {
			slot := ev.Fd
			e := &p.entries[slot]
			if e.gen != uint32(ev.Pad) {
				continue // Unpark won, and the slot may be parked again since
			}
			r := Readable
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
				r = Hangup
			}
			ready = append(ready, wake{e.w, r})
			p.remove(slot)
		}
		now := p.nowTick()
		for {
			slot, ok := p.timers.popDue(now)
			if !ok {
				break
			}
			ready = append(ready, wake{p.entries[slot].w, Expired})
			p.remove(slot)
		}
		closing := p.closing
		if closing {
			for slot := range p.entries {
				if w := p.entries[slot].w; w != nil {
					ready = append(ready, wake{w, Closed})
					p.remove(int32(slot))
				}
			}
		}
		p.mu.Unlock()
		for i, r := range ready {
			p.wakes.Add(1)
			go p.wake(r)
			ready[i] = wake{}
		}
		ready = ready[:0]
		if closing {
			return
		}
	}
}

// wake is one hand-back the loop has decided on.
type wake struct {
	w Waker
	r Reason
}

func (p *Poller) wake(r wake) {
	defer p.wakes.Done()
	r.w.Wake(r.r)
}

// arm sets the epoll file's read deadline at the earliest parked
// deadline's tick, or clears it when none is parked, so that the loop's
// wait ends there; closing ends it at once. It leaves a deadline already
// set for that tick alone. Called with p.mu held.
func (p *Poller) arm() {
	due, ok := p.timers.next()
	switch {
	case p.closing:
		due = 0
	case !ok:
		due = noDue
	}
	if due != p.armed {
		p.setDeadline(due)
	}
}

// setDeadline sets the epoll file's read deadline at tick due (noDue
// clears it), converting from the poller's clock to the runtime's, which
// is what the deadline runs on. Called with p.mu held.
func (p *Poller) setDeadline(due int64) {
	p.armed = due
	var at time.Time
	if due != noDue {
		at = time.Now().Add(time.Duration(due)*tick - p.now().Sub(p.epoch))
	}
	// It fails only on a closed file, and Close closes it after the
	// loop has ended.
	_ = p.ep.SetReadDeadline(at)
}

// dueTick is the first tick at or after deadline. Deadlines more than a
// century away are a century away, so tick arithmetic cannot overflow.
func (p *Poller) dueTick(deadline time.Time) int64 {
	d := min(deadline.Sub(p.epoch), 100*365*24*time.Hour)
	if d <= 0 {
		return 0
	}
	return int64((d + tick - 1) / tick)
}

// nowTick is the last tick at or before now: a deadline due at it has
// passed.
func (p *Poller) nowTick() int64 {
	return int64(p.now().Sub(p.epoch) / tick)
}

// alloc returns a free slot, growing the table if none is. Called with
// p.mu held.
func (p *Poller) alloc() int32 {
	if n := len(p.free); n > 0 {
		slot := p.free[n-1]
		p.free = p.free[:n-1]
		return slot
	}
	p.entries = append(p.entries, entry{gen: 1})
	return int32(len(p.entries) - 1)
}

// release frees slot and moves its generation on. Called with p.mu held.
func (p *Poller) release(slot int32) {
	e := &p.entries[slot]
	e.w, e.fd = nil, -1
	if e.gen++; e.gen == 0 {
		e.gen = 1 // 0 never names a Park, so the zero Ticket misses
	}
	p.free = append(p.free, slot)
}

// remove takes a parked slot out of the epoll set and the deadlines, and
// frees it. The descriptor leaves the set here, before any Wake or
// Unpark's return lets the owner close it. Called with p.mu held.
func (p *Poller) remove(slot int32) {
	// An error means the owner broke the rule and closed the descriptor
	// while parked; there is nothing left to remove then.
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(p.entries[slot].fd), nil)
	p.timers.remove(slot)
	p.release(slot)
	p.parked--
}
