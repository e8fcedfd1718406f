package listener

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// echoBackend is a TCP backend that sends its name and a newline on
// accept, then echoes.
type echoBackend struct {
	name     string
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool // nil once closed
}

func startEcho(t *testing.T, name string) *echoBackend {
	t.Helper()
	return startEchoOn(t, name, "127.0.0.1:0")
}

func startEchoOn(t *testing.T, name, addr string) *echoBackend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &echoBackend{name: name, ln: ln, conns: map[net.Conn]bool{}}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.mu.Lock()
			if b.conns == nil { // accepted as close ran: its copy would wait forever
				b.mu.Unlock()
				c.Close()
				return
			}
			b.conns[c] = true
			b.mu.Unlock()
			b.wg.Go(func() {
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(b.close)
	return b
}

func (b *echoBackend) addr() string { return b.ln.Addr().String() }

func (b *echoBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *echoBackend) backend(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.addr(), Weight: weight}
}

// acceptOnce starts a backend on loopback that accepts one connection and
// runs handle on it, closing it afterwards; it returns the backend's
// address. The listening socket closes when the test ends.
func acceptOnce(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		handle(c)
	}()
	return ln.Addr().String()
}

func newGroup(t *testing.T, sched balancer.Scheduler, bs ...balancer.Backend) *balancer.Group {
	t.Helper()
	g, err := balancer.New(balancer.Config{Scheduler: sched}, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func newInstance(t *testing.T) *Instance {
	t.Helper()
	in, err := NewInstance(InstanceConfig{ID: "lb-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	return in
}

// addListener adds cfg on 127.0.0.1 (unless cfg sets a Host), on a port
// the system picks unless cfg sets one.
func addListener(t *testing.T, in *Instance, cfg Config) *Listener {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	l, err := in.Add(cfg)
	if err != nil {
		t.Fatalf("Add(%+v): %v", cfg, err)
	}
	return l
}

func listenerAddr(l *Listener) string {
	return net.JoinHostPort(l.cfg.Host, strconv.Itoa(l.Port()))
}

// dialName connects through addr and returns the connection and the
// backend name the backend greeted it with.
func dialName(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("reading greeting via %s: %v", addr, err)
	}
	return c, r, strings.TrimSpace(name)
}

// echoOnce sends msg and expects it back.
func echoOnce(c net.Conn, r *bufio.Reader, msg string) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != msg {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

// eventually polls cond every 10 ms until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leaks(t *testing.T) { leakcheck.Check(t) }

// recvWithin returns the next value from ch, failing the test if none
// comes within d: a lost event fails the test instead of hanging the run.
func recvWithin[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}

// within returns a context that ends d from now, for a Stop, Apply or
// Remove that must fail the test rather than hang it; it is cancelled
// when the test ends.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
