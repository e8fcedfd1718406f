// Command idleconns holds many idle connections open through a proxy, for
// bench/run.sh's idle suite, which reads the proxy's RSS before and after.
//
//	idleconns echo -listen 127.0.0.1:15401
//	idleconns hold -target 127.0.0.1:19080 -n 4000 -mode http -path /1k
//	idleconns hold -target 127.0.0.1:19180 -n 4000 -mode tcp
//
// echo is a TCP echo server (the idle tcp scenario's backend). hold opens
// -n connections to -target (-parallel at a time), and on each either sends
// one HTTP/1.1 GET and reads the whole response (mode http: the connection
// is then an idle keep-alive connection) or sends one byte and reads it back
// (mode tcp: the proxy has connected to the backend and relayed both ways).
// It then prints "ready N" on stdout and holds every connection until it
// gets SIGTERM or SIGINT, so the caller measures while the connections exist
// and are idle; then it prints "closed-by-peer N", the connections the proxy
// closed meanwhile (a figure over closed connections would be wrong). Any
// failure ends it with exit status 1 before "ready".
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: idleconns echo|hold [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "echo":
		echo(os.Args[2:])
	case "hold":
		hold(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: idleconns echo|hold [flags]")
		os.Exit(2)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "idleconns:", err)
	os.Exit(1)
}

func echo(args []string) {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:15401", "listen `address`")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func hold(args []string) {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	target := fs.String("target", "127.0.0.1:19080", "proxy `host:port`")
	n := fs.Int("n", 4000, "connections to open")
	mode := fs.String("mode", "http", "http (one GET each) or tcp (one byte echoed each)")
	path := fs.String("path", "/1k", "request path (mode http)")
	parallel := fs.Int("parallel", 64, "connections being opened at once")
	_ = fs.Parse(args)
	var once func(net.Conn) error
	switch *mode {
	case "http":
		req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *target + "\r\nUser-Agent: idleconns\r\n\r\n")
		once = func(c net.Conn) error { return get(c, req) }
	case "tcp":
		once = echoOne
	default:
		fail(fmt.Errorf("-mode %q: want http or tcp", *mode))
	}

	conns := make([]net.Conn, *n)
	errs := make(chan error, *n)
	sem := make(chan struct{}, max(*parallel, 1))
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := net.DialTimeout("tcp", *target, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := once(c); err != nil {
				c.Close()
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			_ = c.SetDeadline(time.Time{})
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fail(fmt.Errorf("%w (%d connections failed)", err, len(errs)+1))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("ready %d\n", len(conns))
	<-sig
	// A connection the proxy closed reads EOF at once; an open idle one
	// reaches the deadline.
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now())
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
		c.Close()
	}
	fmt.Printf("closed-by-peer %d\n", closed)
}

// get sends req and reads one whole response, leaving the connection idle.
func get(c net.Conn, req []byte) error {
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		return errors.New("the proxy closes the connection after one request")
	}
	return nil
}

// echoOne sends one byte and reads it back.
func echoOne(c net.Conn) error {
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}
