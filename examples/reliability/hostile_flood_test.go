package reliability_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Slowloris: clients that trickle a request header a byte at a time, and
// clients that connect and send nothing, are cut at HeaderTimeout, cost
// a bounded number of goroutines and bytes while they last, leave nothing
// behind, and a normal client keeps being served meanwhile.
func TestHTTPSlowloris(t *testing.T) {
	const trickling, idle, headerTimeout = 200, 200, 3 * time.Second
	b := startBackend(t, "b")
	l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, b),
		HTTP: listener.HTTPOptions{HeaderTimeout: headerTimeout}})
	c := newClient(t)
	require.Equal(t, 200, fetch(c, addr(l)))
	before := measure()

	cuts := make([]time.Duration, trickling+idle)
	var wg sync.WaitGroup
	for i := range cuts {
		start := time.Now()
		conn, err := net.DialTimeout("tcp", addr(l), 5*time.Second)
		require.NoError(t, err)
		wg.Go(func() {
			defer conn.Close()
			cuts[i] = hold(conn, i < trickling, start, 20*headerTimeout)
		})
	}
	attack := make(chan struct{})
	go func() { wg.Wait(); close(attack) }()
	waitFor(t, "the listener to accept every connection", func() bool { return l.Stats().Active > trickling+idle })
	during := measure()

	var served, failed int
	var slowest time.Duration
	for running := true; running && served+failed < 2000; {
		select {
		case <-attack:
			running = false
		case <-time.After(20 * time.Millisecond):
			t0 := time.Now()
			if fetch(c, addr(l)) == 200 {
				served++
			} else {
				failed++
			}
			slowest = max(slowest, time.Since(t0))
		}
	}
	<-attack
	c.CloseIdleConnections()
	after := settle(before.goroutines)

	slices.Sort(cuts)
	assert.Positive(t, cuts[0], "every connection cut by the listener (within %v)", 20*headerTimeout)
	assert.GreaterOrEqual(t, cuts[0], headerTimeout, "no connection cut before HeaderTimeout")
	assert.Positive(t, served)
	assert.Zero(t, failed, "requests of the normal client that failed during the attack")
	n := trickling + idle
	perConn := (int64(during.heap) - int64(before.heap)) / int64(n)
	assert.Less(t, during.goroutines-before.goroutines, 3*n, "goroutines for %d connections", n)
	assert.Less(t, perConn, int64(256<<10), "heap per connection")
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after the attack")
	reliability.Record(t, fmt.Sprintf("%d clients trickling a header byte every 100 ms and %d idle clients, HeaderTimeout %v; a normal client fetching every 20 ms meanwhile", trickling, idle, headerTimeout),
		"cut after %v–%v; normal client %d×200, %d failed, slowest %v; goroutines %d → %d → %d; heap %s → %s → %s (%d KiB per connection, client side included); fds %d → %d → %d",
		cuts[0].Round(time.Millisecond), cuts[n-1].Round(time.Millisecond), served, failed, slowest.Round(time.Millisecond),
		before.goroutines, during.goroutines, after.goroutines, mib(before.heap), mib(during.heap), mib(after.heap), perConn>>10, before.fds, during.fds, after.fds)
}

// hold keeps c, dialed at start, open, trickling a header byte every
// 100 ms if trickle is set, until the listener closes it; it returns how
// long after start that was, or 0 if limit passed first.
func hold(c net.Conn, trickle bool, start time.Time, limit time.Duration) time.Duration {
	if trickle {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	buf := make([]byte, 1)
	for time.Since(start) < limit {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); !isTimeout(err) {
			return time.Since(start)
		}
		if trickle {
			c.Write([]byte{'x'})
		}
	}
	return 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

const idleEnv = "LBKIT_IDLE_CLIENTS" // "addr,count" for TestIdleClientsChild

// 10,000 idle connections do not stop the HTTP listener serving new
// requests. The idle clients live in a child process (this test binary
// running TestIdleClientsChild): the process's 20,000-descriptor limit
// cannot hold both ends.
func TestHTTPIdleFlood(t *testing.T) {
	const idle, requests = 10000, 200
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < idle+512 {
		t.Skipf("needs %d file descriptors for the listener's side; this machine's hard limit is %d", idle+512, lim.Max)
	}
	b := startBackend(t, "b")
	l := addListener(t, listener.Config{Protocol: listener.HTTP, Group: newGroup(t, b),
		HTTP: listener.HTTPOptions{HeaderTimeout: time.Minute}})
	c := newClient(t)
	require.Equal(t, 200, fetch(c, addr(l)))
	before := measure()

	exe, err := os.Executable()
	require.NoError(t, err)
	child := exec.Command(exe, "-test.run=^TestIdleClientsChild$")
	child.Env = append(os.Environ(), "LBKIT_RELIABILITY_REPORT=", fmt.Sprintf("%s=%s,%d", idleEnv, addr(l), idle))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe() // the child also ends if we do
	require.NoError(t, err)
	defer stdin.Close()
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	defer func() { child.Process.Kill(); child.Wait() }()
	opened := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "open ") {
				opened <- s.Text()
			}
		}
	}()
	var line string
	select {
	case line = <-opened:
	case <-time.After(2 * time.Minute):
		t.Fatal("the child did not open its connections in 2 minutes")
	}
	waitFor(t, "the listener to accept every idle connection", func() bool { return l.Stats().Active > idle })
	during := measure()

	var lat []time.Duration
	for range requests {
		t0 := time.Now()
		require.Equal(t, 200, fetch(c, addr(l)), "request during the idle flood")
		lat = append(lat, time.Since(t0))
	}
	child.Process.Kill()
	child.Wait()
	waitFor(t, "the idle connections to close", func() bool { return l.Stats().Active <= 1 })
	c.CloseIdleConnections()
	after := settle(before.goroutines)
	assert.Less(t, during.goroutines-before.goroutines, 2*idle, "goroutines for %d idle connections", idle)
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after the flood")
	slices.Sort(lat)
	reliability.Record(t, fmt.Sprintf("a child process holds %d idle connections to the HTTP listener; %d requests meanwhile", idle, requests),
		"child: %s; %d×200, latency median %v, max %v; goroutines %d → %d → %d; heap %s → %s → %s; fds %d → %d → %d",
		line, requests, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond),
		before.goroutines, during.goroutines, after.goroutines, mib(before.heap), mib(during.heap), mib(after.heap),
		before.fds, during.fds, after.fds)
}

// TestIdleClientsChild is TestHTTPIdleFlood's child: it opens the
// connections, says so on stdout and holds them until killed or until
// its stdin closes.
func TestIdleClientsChild(t *testing.T) {
	spec := os.Getenv(idleEnv)
	if spec == "" {
		t.Skip("runs only as TestHTTPIdleFlood's child")
	}
	a, n, _ := strings.Cut(spec, ",")
	count, err := strconv.Atoi(n)
	require.NoError(t, err)
	start := time.Now()
	for range count {
		c, err := net.DialTimeout("tcp", a, 10*time.Second)
		require.NoError(t, err)
		defer c.Close()
	}
	fmt.Printf("open %d connections in %v\n", count, time.Since(start).Round(time.Millisecond))
	io.Copy(io.Discard, os.Stdin)
}

// newClient returns an HTTP client whose idle connections close when the
// test ends.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch GETs / from addr and returns the status, 0 on error.
func fetch(c *http.Client, addr string) int {
	status, _ := get(c, "http://"+addr+"/")
	return status
}

// get GETs url with the header fields hdr (name, value, ...) and returns
// the status and header of the response; status 0 on error.
func get(c *http.Client, url string, hdr ...string) (int, http.Header) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// waitFor polls cond every 10 ms until it holds, failing after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// usage is a snapshot of the process's goroutines (less the test
// framework's), heap in use and open file descriptors.
type usage struct {
	goroutines int
	heap       uint64 // bytes
	fds        int
}

func measure() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return usage{leakcheck.Count(), ms.HeapInuse, len(fds)}
}

// settle waits up to 15 s for the goroutine count to come back to at
// most want and returns what it measured last. Most settle at once;
// quic-go's connection timers, under -race on loaded cores, once needed
// more than 5 s.
func settle(want int) usage {
	deadline := time.Now().Add(15 * time.Second)
	for {
		u := measure()
		if u.goroutines <= want || time.Now().After(deadline) {
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mib formats a byte count in MiB.
func mib(n uint64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
