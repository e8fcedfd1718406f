package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/proctest"
)

// The operations tests run the real clb binary, as an operator does:
// configured by a file, signalled, driven through its admin server.

// clbBinary builds the clb binary once per test run and returns its
// path.
func clbBinary(t *testing.T) string {
	t.Helper()
	return proctest.Build(t, "github.com/lbkit/lbkit/examples/clb")
}

// logBuffer holds a process's log and wakes whoever waits for a line.
type logBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // a token after each write
}

func newLogBuffer() *logBuffer { return &logBuffer{wrote: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A logLine is one line of clb's JSON log (-log-format json).
type logLine struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
	Err  string    `json:"err"`
}

// lines returns the log lines whose msg is msg.
func (l *logBuffer) lines(msg string) []logLine {
	var out []logLine
	for _, s := range strings.Split(l.String(), "\n") {
		var ll logLine
		if json.Unmarshal([]byte(s), &ll) == nil && ll.Msg == msg {
			out = append(out, ll)
		}
	}
	return out
}

// clbProc is a running clb process.
type clbProc struct {
	cmd    *exec.Cmd
	stdout string // up to "clb: ready"
	log    *logBuffer
	admin  string        // host:port of the admin server
	exited chan struct{} // closed once the process has exited
	err    error         // its exit error, once exited
}

var adminLine = regexp.MustCompile(`Admin: http://([^/]+)/`)

// startCLB runs clb with a JSON log, no access log and args, waits
// (bounded) until it prints "clb: ready", and stops it when the test
// ends.
func startCLB(t *testing.T, args ...string) *clbProc {
	t.Helper()
	cmd := exec.Command(clbBinary(t), append([]string{"-log-format", "json", "-access-log=false", "-drain-timeout", "5s"}, args...)...)
	p := &clbProc{cmd: cmd, log: newLogBuffer(), exited: make(chan struct{})}
	cmd.Stderr = p.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if sc.Text() == "clb: ready" {
				ready <- b.String()
			}
		}
		io.Copy(io.Discard, out)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case p.stdout = <-ready:
	case <-p.exited:
		t.Fatalf("clb exited before ready: %v\nlog:\n%s", p.err, p.log)
	case <-time.After(20 * time.Second):
		t.Fatalf("clb not ready after 20s\nlog:\n%s", p.log)
	}
	if m := adminLine.FindStringSubmatch(p.stdout); m != nil {
		p.admin = m[1]
	}
	return p
}

// stop sends SIGTERM and waits for the exit, killing the process after
// 10 s. It may be called more than once.
func (p *clbProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("clb exit: %v\nlog:\n%s", p.err, p.log)
		}
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("clb did not exit 10s after SIGTERM\nlog:\n%s", p.log)
	}
}

// waitLog waits until the log holds n lines with msg and returns them;
// it wakes on each write of the process, and fails the test after 10 s.
func (p *clbProc) waitLog(t *testing.T, msg string, n int) []logLine {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if ls := p.log.lines(msg); len(ls) >= n {
			return ls
		}
		select {
		case <-p.log.wrote:
		case <-deadline:
			t.Fatalf("no %d %q lines logged in 10s:\n%s", n, msg, p.log)
		}
	}
}

// adminDo sends a request to the admin server with the Authorization
// header auth (none if ""), returning the status and the body.
func (p *clbProc) adminDo(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	return adminDoAt(t, p.admin, method, path, auth, body)
}

// adminClient is the admin tests' client: no keep-alive, so a test ends
// with no idle connection.
var adminClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func adminDoAt(t *testing.T, addr, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// status fetches /status.json with auth.
func (p *clbProc) status(t *testing.T, auth string) admin.Status {
	t.Helper()
	code, body := p.adminDo(t, "GET", "/status.json", auth, "")
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("status.json: %d %v: %s", code, err, body)
	}
	return st
}

// shape is what a configuration decides of a status: each listener's
// name, port and state and its members' weights and states, sorted;
// counters left out.
func shape(st admin.Status) string {
	var ls []string
	for _, l := range st.Listeners {
		s := fmt.Sprintf("%s port %d %s:", l.Name, l.Port, l.State)
		for _, b := range l.Backends {
			if b.Member {
				s += fmt.Sprintf(" %s=%d/%s", b.ID, b.Weight, b.State)
			}
		}
		ls = append(ls, s)
	}
	sort.Strings(ls)
	return strings.Join(ls, "; ")
}

// metric returns the value of the sample of /metrics named series
// (name and labels, as written), 0 if absent, reading with auth.
func (p *clbProc) metric(t *testing.T, series, auth string) float64 {
	t.Helper()
	code, body := p.adminDo(t, "GET", "/metrics", auth, "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1 a
// moment ago: a clb file must name its listeners' ports.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// startUDPEcho starts a UDP backend on loopback that echoes each
// datagram, and returns its port.
func startUDPEcho(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
