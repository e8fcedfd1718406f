// Command udpload measures UDP proxies for bench/run.sh's udp suite.
//
//	udpload echo -listen 127.0.0.1:15301
//	udpload load -target 127.0.0.1:19280 -flows 16 -window 8 -size 64 -d 5s
//
// echo answers every datagram with itself. load opens -flows sockets (one
// flow each, as a proxy sees them), keeps -window datagrams in flight on
// each, and prints one JSON line: the replies received, the seconds, and the
// datagrams sent. A reply is a datagram that went through the proxy twice
// (client → backend, backend → client); a window that sees no reply for
// 20 ms is refilled, so a lost datagram costs 20 ms of one flow, not the run.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: udpload echo|load [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "echo":
		echo(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: udpload echo|load [flags]")
		os.Exit(2)
	}
}

func echo(args []string) {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:15301", "listen `address`")
	_ = fs.Parse(args)
	c, err := net.ListenPacket("udp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpload:", err)
		os.Exit(1)
	}
	buf := make([]byte, 65536)
	for {
		n, a, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		_, _ = c.WriteTo(buf[:n], a)
	}
}

// Result is what load prints.
type Result struct {
	Target  string  `json:"target"`
	Replies int64   `json:"replies"`
	Sent    int64   `json:"sent"`
	Seconds float64 `json:"seconds"`
	Flows   int     `json:"flows"`
	Window  int     `json:"window"`
	Size    int     `json:"size"`
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "127.0.0.1:19280", "proxy `address`")
	flows := fs.Int("flows", 16, "client sockets (flows)")
	window := fs.Int("window", 8, "datagrams in flight per flow")
	size := fs.Int("size", 64, "datagram payload `bytes`")
	d := fs.Duration("d", 5*time.Second, "duration")
	_ = fs.Parse(args)

	var replies, sent atomic.Int64
	start := time.Now()
	deadline := start.Add(*d)
	var wg sync.WaitGroup
	for range *flows {
		c, err := net.Dial("udp", *target)
		if err != nil {
			fmt.Fprintln(os.Stderr, "udpload:", err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := make([]byte, *size)
			buf := make([]byte, 65536)
			var r, s int64
			inflight := 0
			for time.Now().Before(deadline) {
				for inflight < *window {
					if _, err := c.Write(msg); err == nil {
						s++
					}
					inflight++
				}
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						inflight = 0 // refill the window
					}
					continue
				}
				r++
				inflight--
			}
			replies.Add(r)
			sent.Add(s)
		}()
	}
	wg.Wait()
	res := Result{Target: *target, Replies: replies.Load(), Sent: sent.Load(),
		Seconds: time.Since(start).Seconds(), Flows: *flows, Window: *window, Size: *size}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
