// Package dnstest runs a real DNS server for tests: Debian's dnsmasq on
// a loopback port, serving address records from a hosts file and SRV
// records from its configuration, both of which the test rewrites.
package dnstest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Domain is the zone the server answers for itself: names under it that
// it has no records for are NXDOMAIN, never forwarded.
const Domain = "svc.test"

// readyTimeout bounds the wait for dnsmasq to (re)read its files; it is
// a bound on a broken setup, not a timing the tests rely on.
const readyTimeout = 10 * time.Second

// Dnsmasq is a running dnsmasq. Addr is its address (UDP and TCP).
type Dnsmasq struct {
	Addr string

	t     testing.TB
	dir   string
	ttl   int
	srv   []string
	cmd   *exec.Cmd
	lines chan string
}

// binary finds dnsmasq, or skips the test (fails it under CI, where
// .ci/run installs it).
func binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"dnsmasq", "/usr/sbin/dnsmasq"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "dnsmasq not installed (apt-get install dnsmasq-base): the test against a real DNS server cannot run"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs dnsmasq on a free loopback port with every record's TTL
// ttl seconds, serving hosts (lines of a hosts file: "127.0.0.1
// web.svc.test") and srv (dnsmasq srv-host values:
// "_http._tcp.svc.test,web.svc.test,8001,10,60" — name, target, port,
// priority, weight). It is stopped when the test ends.
func Start(t testing.TB, ttl int, hosts string, srv ...string) *Dnsmasq {
	t.Helper()
	bin := binary(t)
	m := &Dnsmasq{t: t, dir: t.TempDir(), ttl: ttl, srv: srv}
	m.writeHosts(hosts)
	var err error
	for range 5 { // the free port found may be taken before dnsmasq binds it
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		if err = m.start(bin, port); err == nil {
			t.Cleanup(m.stop)
			return m
		}
	}
	t.Fatalf("dnsmasq: %v", err)
	return nil
}

func (m *Dnsmasq) hostsFile() string { return filepath.Join(m.dir, "hosts") }

func (m *Dnsmasq) writeHosts(hosts string) {
	m.t.Helper()
	if err := os.WriteFile(m.hostsFile(), []byte(hosts), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *Dnsmasq) start(bin string, port int) error {
	var conf strings.Builder
	for _, s := range m.srv {
		fmt.Fprintf(&conf, "srv-host=%s\n", s)
	}
	confFile := filepath.Join(m.dir, "dnsmasq.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	args := []string{
		"--keep-in-foreground", "--log-facility=-", "--pid-file=",
		"--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--local=/" + Domain + "/",
		"--addn-hosts=" + m.hostsFile(), "--conf-file=" + confFile,
		"--local-ttl=" + strconv.Itoa(m.ttl), "--cache-size=0",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // else it drops to nobody, who may not read the test's files
	}
	cmd := exec.Command(bin, args...)
	var err error
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd, m.Addr = cmd, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	m.lines = make(chan string, 64)
	go func() {
		defer close(m.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case m.lines <- sc.Text():
			default: // nobody waiting for this line
			}
		}
	}()
	if err := m.waitRead(); err != nil {
		m.stop()
		return err
	}
	return nil
}

// waitRead waits for dnsmasq to say it has read the hosts file: at
// start, it also means it is listening; after SIGHUP, that it answers
// from the new file.
func (m *Dnsmasq) waitRead() error {
	timeout := time.After(readyTimeout)
	var seen []string
	for {
		select {
		case line, ok := <-m.lines:
			if !ok {
				return fmt.Errorf("exited: %s", strings.Join(seen, "; "))
			}
			seen = append(seen, line)
			if strings.Contains(line, "read "+m.hostsFile()) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("did not read %s within %v: %s", m.hostsFile(), readyTimeout, strings.Join(seen, "; "))
		}
	}
}

func (m *Dnsmasq) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	for range m.lines { // the reader ends with the pipe
	}
	m.cmd = nil
}

// SetHosts rewrites the hosts file and has dnsmasq reread it (SIGHUP),
// returning once it answers from the new one.
func (m *Dnsmasq) SetHosts(hosts string) {
	m.t.Helper()
	m.writeHosts(hosts)
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		m.t.Fatal(err)
	}
	if err := m.waitRead(); err != nil {
		m.t.Fatalf("dnsmasq after SIGHUP: %v", err)
	}
}

// SetSRV replaces the SRV records: dnsmasq reads them from its
// configuration only at start, so it is restarted, on the same port.
// Queries meanwhile fail, as they would during a real restart.
func (m *Dnsmasq) SetSRV(srv ...string) {
	m.t.Helper()
	_, portStr, _ := net.SplitHostPort(m.Addr)
	port, _ := strconv.Atoi(portStr)
	m.stop()
	m.srv = srv
	bin := binary(m.t)
	var err error
	for range 5 {
		if err = m.start(bin, port); err == nil {
			return
		}
	}
	m.t.Fatalf("dnsmasq restart: %v", err)
}

// freePort returns a loopback port free for UDP and TCP just now.
func freePort() (int, error) {
	var err error
	for range 20 { // a free UDP port may be taken for TCP: try another
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		var ln net.Listener
		ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, err
}
