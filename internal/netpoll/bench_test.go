//go:build linux

package netpoll

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chanWaker hands the reason to the benchmark's goroutine.
type chanWaker chan Reason

func (w chanWaker) Wake(r Reason) { w <- r }

// Park, a byte from the peer, Wake, read: the cycle of an idle keep-alive
// connection that receives its next request.
func BenchmarkParkWake(b *testing.B) {
	p, d := startBench(b)
	s, fd, c := d.pair()
	w := make(chanWaker, 1)
	deadline := time.Now().Add(time.Hour)
	msg, buf := []byte("x"), make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Park(fd, deadline, w); err != nil {
			b.Fatal(err)
		}
		c.Write(msg)
		if r := <-w; r != Readable {
			b.Fatalf("Wake(%v), want readable", r)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// The same cycle without the poller, for comparison: a goroutine blocked
// in Read, woken by the runtime's own poller.
func BenchmarkBlockedRead(b *testing.B) {
	_, d := startBench(b)
	s, _, c := d.pair()
	msg, buf := []byte("x"), make([]byte, 1)
	read := make(chan error)
	go func() {
		for {
			_, err := io.ReadFull(s, buf)
			read <- err
			if err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		c.Write(msg)
		if err := <-read; err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	<-read
}

// Park and Unpark: the poller's own bookkeeping and two epoll_ctl calls.
func BenchmarkParkUnpark(b *testing.B) {
	p, d := startBench(b)
	_, fd, _ := d.pair()
	w := make(chanWaker, 1)
	deadline := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		tk, err := p.Park(fd, deadline, w)
		if err != nil || !p.Unpark(tk) {
			b.Fatal(err)
		}
	}
}

// BenchmarkParkedMemory reports what an idle connection costs beyond its
// socket and its owner's struct: parked here (the poller's table, its
// heap of deadlines and the epoll registration) against a goroutine
// blocked in Read with a 4 KiB buffer, the way a server without a poller
// of its own waits. Heap bytes come from runtime.MemStats, RSS from
// /proc/self/statm; both are per connection, measured after the
// connections exist and before they are parked.
func BenchmarkParkedMemory(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		for _, mode := range []string{"poller", "goroutine"} {
			b.Run(fmt.Sprintf("mode=%s/n=%d", mode, n), func(b *testing.B) {
				var heap, rss float64
				for range b.N {
					h, r := parkedMemory(b, mode, n)
					heap += h
					rss += r
				}
				b.ReportMetric(heap/float64(b.N), "heap-B/conn")
				b.ReportMetric(rss/float64(b.N), "rss-B/conn")
			})
		}
	}
}

func parkedMemory(b *testing.B, mode string, n int) (heap, rss float64) {
	b.StopTimer()
	p, d := startBench(b)
	servers := make([]*net.TCPConn, n)
	fds := make([]int, n)
	clients := make([]*net.TCPConn, n)
	for i := range n {
		servers[i], fds[i], clients[i] = d.pair()
	}
	w := make(chanWaker, n)
	heap0, rss0 := memory(b)
	b.StartTimer()
	deadline := time.Now().Add(time.Hour)
	for i := range n {
		if mode == "poller" {
			if _, err := p.Park(fds[i], deadline, w); err != nil {
				b.Fatal(err)
			}
			continue
		}
		go func(c *net.TCPConn) {
			buf := make([]byte, 4096)
			c.SetReadDeadline(deadline)
			c.Read(buf)
			w <- Readable
		}(servers[i])
	}
	b.StopTimer()
	heap1, rss1 := memory(b)
	for _, c := range clients {
		c.Write([]byte("x"))
	}
	for range n {
		<-w
	}
	for i := range n {
		servers[i].Close()
		clients[i].Close()
	}
	p.Close()
	b.StartTimer()
	return (heap1 - heap0) / float64(n), (rss1 - rss0) / float64(n)
}

// memory returns the live heap and the resident set, in bytes, after a
// collection.
func memory(b *testing.B) (heap, rss float64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(statm))
	pages, err := strconv.Atoi(fields[1])
	if err != nil {
		b.Fatal(err)
	}
	return float64(ms.HeapAlloc + ms.StackInuse), float64(pages * os.Getpagesize())
}

// startBench is start for a benchmark.
func startBench(b *testing.B) (*Poller, *dialer) {
	b.Helper()
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p, newDialer(b)
}
