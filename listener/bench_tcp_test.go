package listener

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// sinkBackend accepts connections and discards what they send; each
// connection reports its byte count on done when it ends.
func sinkBackend(b *testing.B) (addr string, done chan int64, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done = make(chan int64, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Read in large pieces, as a bulk receiver would, so
				// that the sink's syscalls do not dominate.
				buf := make([]byte, 1<<20)
				var n int64
				for {
					k, err := c.Read(buf)
					n += int64(k)
					if err != nil {
						break
					}
				}
				c.Close()
				done <- n
			}()
		}
	}()
	return ln.Addr().String(), done, func() { ln.Close() }
}

func benchListener(b *testing.B, cfg Config) (*Listener, func()) {
	b.Helper()
	in, err := NewInstance(InstanceConfig{ID: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	cfg.Host = "127.0.0.1"
	l, err := in.Add(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return l, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Stop(ctx)
	}
}

// BenchmarkTCPThroughput streams 256 KiB writes over one connection,
// through the listener and directly, in the same run: compare the MB/s.
func BenchmarkTCPThroughput(b *testing.B) {
	const size = 256 << 10
	run := func(b *testing.B, addr string, done chan int64) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, size)
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		if n := <-done; n != int64(b.N)*size {
			b.Fatalf("backend got %d bytes, want %d", n, int64(b.N)*size)
		}
		b.StopTimer()
		c.Close()
	}
	b.Run("direct", func(b *testing.B) {
		addr, done, stop := sinkBackend(b)
		defer stop()
		run(b, addr, done)
	})
	b.Run("lbkit", func(b *testing.B) {
		addr, done, stop := sinkBackend(b)
		defer stop()
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "sink", Addr: addr, Weight: 100})
		l, stopL := benchListener(b, Config{Protocol: TCP, Group: g})
		defer stopL()
		run(b, listenerAddr(l), done)
	})
	// The floor any Go proxy starts from: two goroutines doing io.Copy
	// (splice on Linux), no idle timeout, no counters.
	b.Run("iocopy", func(b *testing.B) {
		addr, done, stop := sinkBackend(b)
		defer stop()
		proxy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer proxy.Close()
		go func() {
			for {
				c, err := proxy.Accept()
				if err != nil {
					return
				}
				go func() {
					u, err := net.Dial("tcp", addr)
					if err != nil {
						c.Close()
						return
					}
					go func() {
						io.Copy(c, u)
						c.(*net.TCPConn).CloseWrite()
					}()
					io.Copy(u, c)
					u.(*net.TCPConn).CloseWrite()
				}()
			}
		}()
		run(b, proxy.Addr().String(), done)
	})
}

// BenchmarkTCPConnect opens, uses and closes proxied connections: the
// client reads the backend's one-byte greeting each time.
func BenchmarkTCPConnect(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{'!'})
			c.Close()
		}
	}()
	run := func(b *testing.B, addr string) {
		buf := make([]byte, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	}
	b.Run("direct", func(b *testing.B) { run(b, ln.Addr().String()) })
	b.Run("lbkit", func(b *testing.B) {
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: ln.Addr().String(), Weight: 100})
		l, stop := benchListener(b, Config{Protocol: TCP, Group: g})
		defer stop()
		run(b, listenerAddr(l))
	})
}

// BenchmarkTCPIdleMemory opens 5,000 connections directly and 5,000
// through the listener, echoes one byte over each (so the proxy has
// connected and relayed both ways, as bench/run.sh's idle suite does),
// and reports what the proxy itself spends per idle connection: heap and
// goroutine stacks after a GC, in KiB, and apart, and its goroutines per
// connection. It also reports the growth of the memory the runtime holds
// from the OS (Sys - HeapReleased, from a start with everything free
// released) over the open phase, in KiB: that figure follows the phase's
// peak, as the suite's RSS growth does, since freed memory is returned
// to the OS only slowly. It fails nothing. Run with -benchtime=1x.
func BenchmarkTCPIdleMemory(b *testing.B) {
	// 5,000 proxied connections hold about 20,000 descriptors here
	// (client, both sides of the proxy, backend): raise the limit, as
	// root may, or measure fewer.
	n := 5000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 4*uint64(n)+1000 {
		want := syscall.Rlimit{Cur: 4*uint64(n) + 1000, Max: max(lim.Max, 4*uint64(n)+1000)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			n = int(lim.Cur-1000) / 4
			b.Logf("cannot raise the descriptor limit (%v): measuring %d connections", err, n)
		}
	}
	// Each phase gets its own backend listener: the direct phase leaves
	// thousands of sockets in TIME_WAIT towards its backend, which would
	// make every later connect() to that port search for a free
	// ephemeral port. The backend echoes one byte on each connection in
	// its accept loop, so that it adds no goroutine per connection.
	backend := func() (net.Listener, chan net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, n)
		go func() {
			buf := make([]byte, 1)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(buf)
				}
				accepted <- c
			}
		}()
		return ln, accepted
	}
	open := func(addr string, accepted chan net.Conn) (used mem, cleanup func()) {
		debug.FreeOSMemory() // so that the phase's growth starts from what is live
		before := memInUse()
		conns := make([]net.Conn, 0, n)
		backends := make([]net.Conn, 0, n)
		buf := []byte{'!'}
		for i := range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatalf("conn %d: %v", i, err)
			}
			conns = append(conns, c)
			if _, err := c.Write(buf); err != nil {
				b.Fatalf("conn %d: %v", i, err)
			}
			backends = append(backends, <-accepted)
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatalf("conn %d: echo: %v", i, err)
			}
		}
		// Let the proxy's copies find the connections quiet (parkAfter)
		// and settle.
		time.Sleep(2 * copyBound)
		used = memInUse().minus(before)
		return used, func() {
			for _, c := range conns {
				c.Close()
			}
			for _, c := range backends {
				c.Close()
			}
		}
	}
	for range b.N {
		ln, accepted := backend()
		direct, cleanup := open(ln.Addr().String(), accepted)
		cleanup()
		ln.Close()

		ln, accepted = backend()
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "b", Addr: ln.Addr().String(), Weight: 100})
		l, stop := benchListener(b, Config{Protocol: TCP, Group: g})
		proxied, cleanup := open(listenerAddr(l), accepted)
		cost := proxied.minus(direct)
		per := func(v int64) float64 { return float64(v) / float64(n) }
		b.ReportMetric(per(cost.heap+cost.stack)/1024, "KiB/idle-conn")
		b.ReportMetric(per(cost.sys)/1024, "sys-KiB/idle-conn")
		b.ReportMetric(per(cost.heap), "heap-B/idle-conn")
		b.ReportMetric(per(cost.stack), "stack-B/idle-conn")
		b.ReportMetric(per(cost.goroutines), "goroutines/idle-conn")
		cleanup()
		stop()
		ln.Close()
	}
}

// mem is the memory and goroutines in use, or a difference of two such:
// sys is what the runtime holds from the OS and has not released.
type mem struct{ heap, stack, sys, goroutines int64 }

func (m mem) minus(o mem) mem {
	return mem{m.heap - o.heap, m.stack - o.stack, m.sys - o.sys, m.goroutines - o.goroutines}
}

// memInUse collects the garbage first, as the figure is what stays.
func memInUse() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{int64(ms.HeapInuse), int64(ms.StackInuse), int64(ms.Sys - ms.HeapReleased), int64(runtime.NumGoroutine())}
}
