//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// guard bounds every wait, so a broken poller fails instead of hanging;
// no test asserts how long anything took.
const guard = 10 * time.Second

// recorder is a Waker that records its calls.
type recorder struct {
	calls   atomic.Int32
	reasons chan Reason
}

func newRecorder() *recorder { return &recorder{reasons: make(chan Reason, 16)} }

func (r *recorder) Wake(reason Reason) {
	r.calls.Add(1)
	r.reasons <- reason
}

func wantWake(t *testing.T, r *recorder, want Reason) {
	t.Helper()
	select {
	case got := <-r.reasons:
		if got != want {
			t.Fatalf("Wake(%v), want Wake(%v)", got, want)
		}
	case <-time.After(guard):
		t.Fatalf("no Wake within %v, want Wake(%v)", guard, want)
	}
}

// start begins a test of a Poller, closed when the test ends, and its
// connections, checked for leaked goroutines after both.
func start(t *testing.T) (*Poller, *dialer) {
	t.Helper()
	leakcheck.Check(t)
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, newDialer(t)
}

// dialer accepts and dials TCP connections on 127.0.0.1.
type dialer struct {
	t testing.TB
	l net.Listener
}

func newDialer(t testing.TB) *dialer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &dialer{t: t, l: l}
}

// pair returns the server side of a new connection, its descriptor, and
// the client side; both close when the test ends.
func (d *dialer) pair() (server *net.TCPConn, fd int, client *net.TCPConn) {
	d.t.Helper()
	return d.pairAfter(func() {})
}

// pairAfter is pair calling between after dialing and before accepting,
// so that a descriptor it frees is the one the server side gets.
func (d *dialer) pairAfter(between func()) (server *net.TCPConn, fd int, client *net.TCPConn) {
	d.t.Helper()
	c, err := net.Dial("tcp", d.l.Addr().String())
	if err != nil {
		d.t.Fatal(err)
	}
	between()
	s, err := d.l.Accept()
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close(); s.Close() })
	fd, err = FD(s.(*net.TCPConn))
	if err != nil {
		d.t.Fatal(err)
	}
	return s.(*net.TCPConn), fd, c.(*net.TCPConn)
}

func park(t *testing.T, p *Poller, fd int, deadline time.Time, w Waker) Ticket {
	t.Helper()
	tk, err := p.Park(fd, deadline, w)
	if err != nil {
		t.Fatalf("Park(fd %d) = %v", fd, err)
	}
	return tk
}

func TestWakeOnData(t *testing.T) {
	p, d := start(t)
	for _, name := range []string{"after park", "before park"} {
		t.Run(name, func(t *testing.T) {
			s, fd, c := d.pair()
			r := newRecorder()
			if name == "before park" {
				// Level-triggered: bytes already waiting fire at once.
				c.Write([]byte("x"))
				waitReadable(t, s)
			}
			park(t, p, fd, time.Time{}, r)
			if name == "after park" {
				c.Write([]byte("x"))
			}
			wantWake(t, r, Readable)
			if got := p.Len(); got != 0 {
				t.Errorf("Len() = %d after Wake, want 0", got)
			}
			buf := make([]byte, 1)
			if _, err := io.ReadFull(s, buf); err != nil || buf[0] != 'x' {
				t.Errorf("read after Wake = %q, %v, want \"x\"", buf, err)
			}
		})
	}
}

// waitReadable waits until s has a byte to read, without reading it.
func waitReadable(t *testing.T, s *net.TCPConn) {
	t.Helper()
	rc, _ := s.SyscallConn()
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK)
		return n > 0 || err != syscall.EAGAIN
	})
}

func TestWakeOnPeerClose(t *testing.T) {
	p, d := start(t)
	for _, tc := range []struct {
		name  string
		close func(*net.TCPConn)
		data  string // what the server reads before io.EOF
	}{
		{"close", func(c *net.TCPConn) { c.Close() }, ""},
		{"half close", func(c *net.TCPConn) { c.CloseWrite() }, ""},
		{"data then close", func(c *net.TCPConn) { c.Write([]byte("last")); c.Close() }, "last"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, fd, c := d.pair()
			r := newRecorder()
			park(t, p, fd, time.Time{}, r)
			tc.close(c)
			select {
			case got := <-r.reasons:
				// The data and the FIN may arrive as one event (Hangup)
				// or as two (Readable first).
				if got != Hangup && !(got == Readable && tc.data != "") {
					t.Fatalf("Wake(%v), want Wake(hangup)", got)
				}
			case <-time.After(guard):
				t.Fatalf("no Wake within %v", guard)
			}
			got, err := io.ReadAll(s)
			if string(got) != tc.data || err != nil {
				t.Errorf("read after Wake = %q, %v, want %q then io.EOF", got, err, tc.data)
			}
		})
	}
}

func TestWakeOnDeadline(t *testing.T) {
	p, d := start(t)
	for _, tc := range []struct {
		name     string
		deadline time.Time
	}{
		{"passed", time.Now().Add(-time.Second)},
		{"soon", time.Now().Add(10 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fd, _ := d.pair()
			r := newRecorder()
			park(t, p, fd, tc.deadline, r)
			wantWake(t, r, Expired)
		})
	}
}

// fakeClock is a clock the test moves; safe for concurrent use.
type fakeClock struct {
	base   time.Time
	offset atomic.Int64
}

func (c *fakeClock) now() time.Time          { return c.base.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// Deadlines on a fake clock: a connection is not expired by a sweep one
// nanosecond before its deadline, and is by the first sweep a tick after
// it.
// A marker parked with a deadline already passed makes the loop sweep
// (Park wakes it for an earlier deadline) and tells the test, by its
// Wake, that the sweep is done.
func TestDeadlineNeverEarly(t *testing.T) {
	leakcheck.Check(t)
	clock := &fakeClock{base: time.Now()}
	p, err := newPoller(clock.now)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d := newDialer(t)
	sweep := func() {
		t.Helper()
		_, fd, _ := d.pair()
		marker := newRecorder()
		park(t, p, fd, clock.now().Add(-time.Hour), marker)
		wantWake(t, marker, Expired)
	}
	_, fd, _ := d.pair()
	r := newRecorder()
	const idle = time.Hour + tick/3 // not on a tick: rounding must go up
	park(t, p, fd, clock.now().Add(idle), r)
	_, fdFar, _ := d.pair()
	park(t, p, fdFar, clock.now().AddDate(1000, 0, 0), newRecorder()) // beyond what Sub can measure

	clock.advance(idle - time.Nanosecond)
	sweep()
	// The loop takes a connection out before starting any Wake, so Len
	// tells, where r's own Wake might not have run yet.
	if got := p.Len(); got != 2 {
		t.Fatalf("Len() = %d after a sweep before the deadline, want 2 (still parked)", got)
	}
	clock.advance(tick + time.Nanosecond) // the deadline, rounded up to its tick
	sweep()
	wantWake(t, r, Expired)
	if got := p.Len(); got != 1 {
		t.Fatalf("Len() = %d, want 1: the connection parked for 1000 years expired", got)
	}
}

func TestCloseWakesAll(t *testing.T) {
	leakcheck.Check(t)
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(t)
	const n = 10
	release := make(chan struct{})
	var started, returned atomic.Int32
	w := blockingWaker{started: &started, returned: &returned, release: release, reasons: make(chan Reason, n)}
	for i := range n {
		_, fd, _ := d.pair()
		deadline := time.Time{}
		if i%2 == 0 {
			deadline = time.Now().Add(time.Hour)
		}
		park(t, p, fd, deadline, w)
	}
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	for range n {
		select {
		case got := <-w.reasons:
			if got != Closed {
				t.Fatalf("Wake(%v), want Wake(closed)", got)
			}
		case <-time.After(guard):
			t.Fatalf("Close woke %d connections, want %d", started.Load(), n)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned while Wake calls were running")
	default:
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got := returned.Load(); got != n {
		t.Errorf("Close returned with %d of %d Wake calls returned", got, n)
	}
	_, fd, _ := d.pair()
	if _, err := p.Park(fd, time.Time{}, w); !errors.Is(err, ErrClosed) {
		t.Errorf("Park after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// blockingWaker's Wake runs until release is closed.
type blockingWaker struct {
	started, returned *atomic.Int32
	release           chan struct{}
	reasons           chan Reason
}

func (w blockingWaker) Wake(r Reason) {
	w.started.Add(1)
	w.reasons <- r
	<-w.release
	w.returned.Add(1)
}

// Unpark against an arriving byte, many times: for each Park exactly one
// of Unpark and Wake hands the connection back.
func TestUnparkRacesWake(t *testing.T) {
	leakcheck.Check(t)
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(t)
	s, fd, c := d.pair()
	r := newRecorder()
	const rounds = 2000
	unparked := 0
	buf := make([]byte, 1)
	for i := range rounds {
		tk := park(t, p, fd, time.Time{}, r)
		wrote := make(chan error)
		go func() { _, err := c.Write([]byte("x")); wrote <- err }()
		if i%2 == 1 {
			<-wrote // let the byte arrive first half the time
		}
		if p.Unpark(tk) {
			unparked++
		} else {
			wantWake(t, r, Readable)
		}
		if i%2 == 0 {
			<-wrote
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	woken := int(r.calls.Load())
	if woken+unparked != rounds {
		t.Errorf("%d Wakes + %d Unparks = %d, want %d (one per Park)", woken, unparked, woken+unparked, rounds)
	}
	t.Logf("%d Unparks won, %d Wakes", unparked, woken)
}

// The descriptor-reuse hazard: a connection handed back (by Unpark or
// by Wake) and then closed frees its number, which the next accepted
// connection gets. The old Ticket must not take the new connection back,
// and the new connection's events must wake only its own Waker.
func TestDescriptorReuse(t *testing.T) {
	p, d := start(t)
	for _, tc := range []struct {
		name     string
		deadline time.Time
		handBack func(*testing.T, Ticket, *recorder)
	}{
		{"unpark", time.Time{}, func(t *testing.T, tk Ticket, _ *recorder) {
			if !p.Unpark(tk) {
				t.Fatal("Unpark = false for a parked connection")
			}
		}},
		{"wake", time.Now().Add(-time.Second), func(t *testing.T, _ Ticket, r *recorder) {
			wantWake(t, r, Expired)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, fdA, _ := d.pair()
			ra := newRecorder()
			tkA := park(t, p, fdA, tc.deadline, ra)
			tc.handBack(t, tkA, ra)
			_, fdB, cb := d.pairAfter(func() { a.Close() })
			if fdB != fdA {
				t.Fatalf("the new connection got descriptor %d, not the freed %d", fdB, fdA)
			}
			rb := newRecorder()
			park(t, p, fdB, time.Time{}, rb)
			if p.Unpark(tkA) {
				t.Fatal("Unpark(old ticket) = true: it took back the connection parked after it")
			}
			cb.Write([]byte("x"))
			wantWake(t, rb, Readable)
			if got := ra.calls.Load(); got > 1 {
				t.Errorf("the closed connection's Waker was called %d times", got)
			}
		})
	}
}

// Wake and a true Unpark come after the descriptor left the epoll set:
// parking it again at once must not find it still registered (EEXIST).
// This is the fast lane's cycle: serve, park, wake, serve.
func TestParkAgainAfterServe(t *testing.T) {
	p, d := start(t)
	s, fd, c := d.pair()
	srv := &echoConn{t: t, p: p, c: s, fd: fd, served: make(chan error, 1)}
	park(t, p, fd, time.Now().Add(time.Hour), srv)
	c.SetDeadline(time.Now().Add(guard)) // a server that stops answering fails the test
	buf := make([]byte, 4)
	const requests = 200
	for i := range requests {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("request %d: %q, %v, want \"pong\"", i, buf, err)
		}
	}
	c.Close()
	select {
	case err := <-srv.served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("the server did not see the client leave")
	}
	if got := srv.requests; got != requests {
		t.Errorf("served %d requests, want %d", got, requests)
	}

	// Unpark, then park again at once.
	s2, fd2, _ := d.pair()
	r := newRecorder()
	for range 3 {
		if !p.Unpark(park(t, p, fd2, time.Time{}, r)) {
			t.Fatal("Unpark = false for a parked connection")
		}
	}
	_ = s2
}

// echoConn serves "ping" with "pong" each time it is woken, then parks
// again, as the HTTP fast lane does after each response.
type echoConn struct {
	t        *testing.T
	p        *Poller
	c        *net.TCPConn
	fd       int
	buf      [4]byte
	requests int
	served   chan error // the end: nil when the client left
}

func (e *echoConn) Wake(r Reason) {
	if r != Readable {
		if r == Hangup {
			e.served <- nil
		} else {
			e.served <- errors.New("Wake(" + r.String() + "), want readable or hangup")
		}
		return
	}
	if _, err := io.ReadFull(e.c, e.buf[:]); err != nil {
		e.served <- err
		return
	}
	e.requests++
	if _, err := e.c.Write([]byte("pong")); err != nil {
		e.served <- err
		return
	}
	if _, err := e.p.Park(e.fd, time.Now().Add(time.Hour), e); err != nil {
		e.served <- err
	}
}

func TestParkErrors(t *testing.T) {
	p, d := start(t)
	_, fd, c := d.pair()
	r := newRecorder()
	if _, err := p.Park(fd, time.Time{}, nil); err == nil {
		t.Error("Park(nil Waker) = nil error")
	}
	park(t, p, fd, time.Time{}, r)
	if _, err := p.Park(fd, time.Time{}, newRecorder()); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("Park(fd already parked) = %v, want EEXIST", err)
	}
	if _, err := p.Park(-1, time.Time{}, r); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Park(-1) = %v, want EBADF", err)
	}
	if got := p.Len(); got != 1 {
		t.Errorf("Len() = %d after failed Parks, want 1", got)
	}
	c.Write([]byte("x"))
	wantWake(t, r, Readable)
	for _, tk := range []Ticket{0, ticket(1000, 1)} {
		if p.Unpark(tk) {
			t.Errorf("Unpark(%#x) = true for a ticket never issued", tk)
		}
	}
}

// 2,000 idle connections parked cost no goroutine each, and all wake.
func TestManyParked(t *testing.T) {
	p, d := start(t)
	const n = 2000
	r := &recorder{reasons: make(chan Reason, n)}
	fds := make([]int, n)
	clients := make([]*net.TCPConn, n)
	for i := range n {
		_, fds[i], clients[i] = d.pair()
	}
	before := runtime.NumGoroutine()
	for i := range n {
		park(t, p, fds[i], time.Now().Add(time.Hour), r)
	}
	if got := p.Len(); got != n {
		t.Fatalf("Len() = %d, want %d", got, n)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines: %d before parking %d connections, %d after", before, n, after)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.Write([]byte("x")) })
	}
	wg.Wait()
	for range n {
		wantWake(t, r, Readable)
	}
	if got := p.Len(); got != 0 {
		t.Errorf("Len() = %d after every connection woke, want 0", got)
	}
}

// An event the loop has taken from epoll_wait but not yet handled may
// lose to Unpark, and the slot may be parked again, with another
// connection, before the loop gets to it: the stale event must not wake
// the new Park.
func TestStaleEvent(t *testing.T) {
	p, d := start(t)
	_, fdA, ca := d.pair()
	_, fdB, _ := d.pair()
	ra, rb := newRecorder(), newRecorder()
	parkedA := make(chan Ticket, 1)
	parkedB := make(chan Ticket, 1)
	p.mu.Lock()
	p.afterWait = func() {
		tkA := <-parkedA
		p.mu.Lock()
		p.afterWait = nil // once
		p.mu.Unlock()
		if !p.Unpark(tkA) {
			t.Error("Unpark(A) = false, want true: the loop has not handled A's event yet")
		}
		tkB, err := p.Park(fdB, time.Time{}, rb)
		if err != nil {
			t.Errorf("Park(B) = %v", err)
		} else if tkB.slot() != tkA.slot() {
			t.Errorf("B parked in slot %d, want A's freed slot %d", tkB.slot(), tkA.slot())
		}
		parkedB <- tkB
	}
	p.mu.Unlock()
	parkedA <- park(t, p, fdA, time.Time{}, ra)
	ca.Write([]byte("x"))
	tkB := <-parkedB
	// A marker makes the loop go round once more, so the stale event has
	// been handled when its Wake arrives.
	_, fdM, cm := d.pair()
	marker := newRecorder()
	park(t, p, fdM, time.Time{}, marker)
	cm.Write([]byte("x"))
	wantWake(t, marker, Readable)
	if !p.Unpark(tkB) {
		t.Errorf("Unpark(B) = false: the stale event of A woke B (Wake calls: %d)", rb.calls.Load())
	}
	if got := ra.calls.Load(); got != 0 {
		t.Errorf("A's Waker was called %d times after Unpark won", got)
	}
}

// Park and Unpark allocate nothing once the table has grown.
func TestParkAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, d := start(t)
	_, fd, _ := d.pair()
	w := newRecorder()
	deadline := time.Now().Add(time.Hour)
	allocs := testing.AllocsPerRun(1000, func() {
		tk, err := p.Park(fd, deadline, w)
		if err != nil || !p.Unpark(tk) {
			t.Fatalf("Park = %v, or Unpark = false", err)
		}
	})
	if allocs != 0 {
		t.Errorf("Park and Unpark: %v allocations, want 0", allocs)
	}
}

// Close while other goroutines park and unpark: every Park that
// succeeded is handed back exactly once, by Unpark or by Wake, and every
// Park after Close fails with ErrClosed.
func TestCloseRacesPark(t *testing.T) {
	p, d := start(t)
	const parkers = 8
	var parks, unparks atomic.Int64
	r := &recorder{reasons: make(chan Reason, 1<<16)}
	var wg sync.WaitGroup
	for range parkers {
		_, fd, _ := d.pair()
		back := make(chan Reason, 1)
		wg.Go(func() {
			w := chanWaker(back)
			for {
				tk, err := p.Park(fd, time.Time{}, w)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				parks.Add(1)
				if p.Unpark(tk) {
					unparks.Add(1)
					continue
				}
				r.Wake(<-back) // Close won: wait for the hand-back before parking again
			}
		})
	}
	for parks.Load() < 1000 {
		runtime.Gosched()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got, want := unparks.Load()+int64(r.calls.Load()), parks.Load(); got != want {
		t.Errorf("%d Unparks + %d Wakes = %d, want one per Park (%d)", unparks.Load(), r.calls.Load(), got, want)
	}
	for range r.calls.Load() {
		if got := <-r.reasons; got != Closed {
			t.Errorf("Wake(%v), want Wake(closed)", got)
		}
	}
}
