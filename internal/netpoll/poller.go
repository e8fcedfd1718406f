//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"math"
	"sync"
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

// kickSlot marks the event of the poller's own eventfd, which Park and
// Close write to wake the poll loop early.
const kickSlot = -1

// noDue is the loop's sleepDue while it waits without a timeout.
const noDue = math.MaxInt64

// Poller watches idle connections without a goroutine each: one epoll
// set, one goroutine in epoll_wait, and a heap of deadlines swept by that
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
	epfd  int
	kick  int // an eventfd in the set, written to wake the loop
	now   func() time.Time
	epoch time.Time // deadlines are ticks since epoch, on its monotonic clock
	done  chan struct{}
	wakes sync.WaitGroup // Wake calls started and not yet returned

	mu       sync.Mutex
	closing  bool
	entries  []entry // by slot
	free     []int32 // slots not in use
	timers   deadlines
	sleepDue int64 // the tick the loop sleeps until, or noDue
	parked   int

	closeOnce sync.Once
	closeErr  error

	// afterWait, if set, runs in the loop between epoll_wait and
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
	kick, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: kickSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, kick, &ev); err != nil {
		unix.Close(kick)
		unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: epoll_ctl eventfd: %w", err)
	}
	p := &Poller{epfd: epfd, kick: kick, now: now, epoch: now(), done: make(chan struct{}), sleepDue: noDue}
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
		if due < p.sleepDue {
			p.wakeLoop() // the loop sleeps past this deadline
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
		p.wakeLoop()
	}
	p.mu.Unlock()
	<-p.done
	p.wakes.Wait()
	p.closeOnce.Do(func() {
		if err := errors.Join(unix.Close(p.epfd), unix.Close(p.kick)); err != nil {
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
	for {
		p.mu.Lock()
		timeout := p.sleep()
		p.mu.Unlock()
		n, err := unix.EpollWait(p.epfd, evs, timeout)
		if err == unix.EINTR {
			continue
		}
		p.mu.Lock()
		if hook := p.afterWait; hook != nil {
			p.mu.Unlock()
			hook()
			p.mu.Lock()
		}
		if err != nil {
			// The set is unusable (nothing but a closed epfd makes
			// epoll_wait fail): hand every connection back rather than
			// strand it.
			p.closing = true
		}
		for _, ev := range evs[:max(n, 0)] {
			if ev.Fd == kickSlot {
				p.drainKick()
				continue
			}
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

// sleep returns epoll_wait's timeout in milliseconds until the earliest
// deadline's tick (-1 for none) and records that tick, so a Park with an
// earlier one knows to wake the loop. Called with p.mu held.
func (p *Poller) sleep() int {
	due, ok := p.timers.next()
	if !ok || p.closing {
		p.sleepDue = noDue
		if p.closing {
			return 0
		}
		return -1
	}
	p.sleepDue = due
	left := time.Duration(due)*tick - p.now().Sub(p.epoch)
	if left <= 0 {
		return 0
	}
	// epoll_wait takes a C int; a deadline further off than that is
	// simply waited for in several sleeps.
	return int(min((left+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
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

// wakeLoop makes the loop's epoll_wait return. Called with p.mu held.
func (p *Poller) wakeLoop() {
	var one = [8]byte{1}
	// EAGAIN means the counter is full: the loop will wake anyway.
	_, _ = unix.Write(p.kick, one[:])
}

// drainKick resets the eventfd so that it stops being readable.
func (p *Poller) drainKick() {
	var buf [8]byte
	_, _ = unix.Read(p.kick, buf[:])
}
