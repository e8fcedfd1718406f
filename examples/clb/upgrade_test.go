package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/proctest"
)

// startUpgradable runs the clb binary with args and waits for its
// "clb: ready".
func startUpgradable(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	p := proctest.Start(t, clbBinary(t), args...)
	p.WaitLine(t, "clb: ready")
	return p
}

// upgrade sends SIGUSR2 and waits until the successor is ready and the
// old process has exited.
func upgrade(t *testing.T, p *proctest.Proc) {
	t.Helper()
	p.Signal(t, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade: the new process is ready")
	if err := p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
}

// writeConfig writes yaml to a new file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clb.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// okBackend is an HTTP backend answering "ok".
func okBackend(t *testing.T) (port string) {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	_, port, _ = strings.Cut(b.URL, "127.0.0.1:")
	return port
}

// oneListenerConfig writes a configuration with an admin server and one
// http listener in front of an "ok" backend, and returns its path and
// the listener's and the admin server's ports.
func oneListenerConfig(t *testing.T) (path string, port, aport int) {
	t.Helper()
	bport := okBackend(t)
	port, aport = configPort(t), configPort(t)
	path = writeConfig(t, fmt.Sprintf("AdminAddress: 127.0.0.1:%d\nBackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Listeners: [{ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\"}]\n", aport, port, bport))
	return path, port, aport
}

// processOf reads /status.json's process from the admin server.
func processOf(t *testing.T, adminAddr string) (pid, generation int) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + adminAddr + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Process struct{ PID, Generation int } `json:"process"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Process.PID, st.Process.Generation
}

// A successor that fails to start leaves the old process serving — and
// nothing of the attempt behind: a reload then removes a listener and
// frees its port, and adds it back.
func TestUpgradeFailingSuccessor(t *testing.T) {
	leakcheck.Check(t)
	bport := okBackend(t)
	port, port2, aport := configPort(t), configPort(t), configPort(t)
	two := fmt.Sprintf("AdminAddress: 127.0.0.1:%d\nBackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Listeners: [{ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\"},"+
		" {ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\"}]\n", aport, port, bport, port2, bport)
	path := writeConfig(t, two)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", aport)
	p := startUpgradable(t, "-config", path, "-access-log=false", "-upgrade-timeout", "1s")
	oldPID, _ := processOf(t, adminAddr)
	get := func(port int) error {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	t.Run("invalid configuration", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("Listeners: [{ListenerProtocol: nope}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p.Signal(t, syscall.SIGUSR2)
		line := p.WaitLine(t, "upgrade failed: this process keeps serving")
		if !strings.Contains(line, "exited: exit status 1") {
			t.Errorf("failure logged as %q, want the new process's exit named", line)
		}
	})
	t.Run("not ready in time", func(t *testing.T) {
		// A successor that cannot be ready within -upgrade-timeout: a
		// health check on a backend that never answers holds its first
		// round for the check's timeout.
		hold, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Close()
		_, hport, _ := net.SplitHostPort(hold.Addr().String())
		slow := strings.Replace(two, `BackendServerPort: `+bport+`, HealthCheck: "off"}]`,
			`BackendServerPort: `+hport+`, HealthCheck: "on", HealthCheckType: http, HealthCheckConnectTimeout: 5, HealthCheckInterval: 5}]`, 1)
		if err := os.WriteFile(path, []byte(slow), 0o644); err != nil {
			t.Fatal(err)
		}
		p.Signal(t, syscall.SIGUSR2)
		line := p.WaitLine(t, "upgrade failed: this process keeps serving")
		if !strings.Contains(line, "not ready after") {
			t.Errorf("failure logged as %q, want the timeout named", line)
		}
	})
	if pid, gen := processOf(t, adminAddr); pid != oldPID || gen != 0 {
		t.Fatalf("after failed upgrades: pid %d generation %d, want the old pid %d and generation 0", pid, gen, oldPID)
	}
	nonblocking(t, oldPID)
	if err := get(port); err != nil {
		t.Fatalf("after failed upgrades: %v", err)
	}
	// A reload without the second listener frees its port; one with it
	// binds it again.
	one := strings.Replace(two, fmt.Sprintf(", {ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\"}", port2, bport), "", 1)
	for i, cfg := range []string{one, two} {
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p.Signal(t, syscall.SIGHUP)
		p.WaitLine(t, "reloaded")
		err := get(port2)
		if i == 0 && err == nil {
			t.Error("the port of the listener a reload removed still answers after a failed upgrade")
		}
		if i == 1 && err != nil {
			t.Errorf("the listener added back: %v", err)
		}
	}
}

// tlsCertFiles writes a self-signed certificate for localhost and
// 127.0.0.1 and its key, and returns their paths.
func tlsCertFiles(t *testing.T) (cert, key string) {
	t.Helper()
	c, err := selfSigned("localhost", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePEM(t, cert, "CERTIFICATE", c.Certificate[0])
	writePEM(t, key, "PRIVATE KEY", der)
	return cert, key
}

// TestUpgradeKeepsSessions checks that what a client holds from before
// an upgrade still works after it: a SERVERID cookie picks the same
// backend (the successor has the cookie key), and a TLS session resumes
// (it has the session-ticket keys).
func TestUpgradeKeepsSessions(t *testing.T) {
	leakcheck.Check(t)
	var ports []string
	for _, name := range []string{"a", "b"} {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		defer b.Close()
		_, port, _ := strings.Cut(b.URL, "127.0.0.1:")
		ports = append(ports, port)
	}
	certFile, keyFile := tlsCertFiles(t)
	port, tport, aport := configPort(t), configPort(t), configPort(t)
	path := writeConfig(t, fmt.Sprintf("AdminAddress: 127.0.0.1:%d\n"+
		"ServerCertificates: [{ServerCertificateId: c, CertificateFile: %s, PrivateKeyFile: %s}]\n"+
		"VServerGroups: [{VServerGroupId: vg, BackendServers: [{ServerId: a, ServerIp: 127.0.0.1, Port: %s}, {ServerId: b, ServerIp: 127.0.0.1, Port: %s}]}]\n"+
		"Listeners: [{ListenerProtocol: http, ListenerPort: %d, VServerGroupId: vg, HealthCheck: \"off\", StickySession: \"on\", StickySessionType: insert, CookieTimeout: 3600},\n"+
		" {ListenerProtocol: https, ListenerPort: %d, VServerGroupId: vg, HealthCheck: \"off\", ServerCertificateId: c, TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}]\n",
		aport, certFile, keyFile, ports[0], ports[1], port, tport))
	front := fmt.Sprintf("http://127.0.0.1:%d/", port)
	p := startUpgradable(t, "-config", path, "-access-log=false", "-drain-timeout", "5s")
	tr := &http.Transport{DisableKeepAlives: true}
	get := func(cookie *http.Cookie) (string, []*http.Cookie) {
		t.Helper()
		req, _ := http.NewRequest("GET", front, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Cookies()
	}
	// One session cache per version: a session of one is not offered by
	// a client of the other.
	caches := map[uint16]tls.ClientSessionCache{}
	handshake := func(version uint16) bool {
		t.Helper()
		if caches[version] == nil {
			caches[version] = tls.NewLRUClientSessionCache(8)
		}
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tport), &tls.Config{
			InsecureSkipVerify: true, ClientSessionCache: caches[version], MinVersion: version, MaxVersion: version, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A TLS 1.3 ticket arrives after the handshake: a request and
		// its answer make sure the client has read it.
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		io.Copy(io.Discard, c)
		return c.ConnectionState().DidResume
	}
	first, cookies := get(nil)
	if len(cookies) == 0 {
		t.Fatal("no SERVERID cookie")
	}
	versions := map[string]uint16{"TLS 1.2": tls.VersionTLS12, "TLS 1.3": tls.VersionTLS13}
	for name, v := range versions {
		if handshake(v) {
			t.Fatalf("%s: the first handshake resumed", name)
		}
		if !handshake(v) {
			t.Fatalf("%s: no resumption before the upgrade", name)
		}
	}
	upgrade(t, p)
	for i := range 10 {
		if got, _ := get(cookies[0]); got != first {
			t.Fatalf("request %d with the cookie after the upgrade went to %s, want %s", i, got, first)
		}
	}
	for name, v := range versions {
		if !handshake(v) {
			t.Errorf("%s: a session from before the upgrade did not resume after it", name)
		}
	}
	// A second upgrade: the first successor's ticket key rotates to
	// second place, and still resumes.
	pid, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport))
	if gen != 1 {
		t.Fatalf("generation %d after the upgrade, want 1", gen)
	}
	syscall.Kill(pid, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade: the new process is ready")
	if !handshake(tls.VersionTLS13) {
		t.Error("a TLS session from the first successor did not resume with the second")
	}
	tr.CloseIdleConnections()
	if _, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport)); gen != 2 {
		t.Errorf("generation %d after the second upgrade, want 2", gen)
	}
}

// -pid-file names the process that serves: the successor rewrites it
// when it is ready.
func TestUpgradePIDFile(t *testing.T) {
	leakcheck.Check(t)
	path, _, aport := oneListenerConfig(t)
	pidFile := filepath.Join(t.TempDir(), "clb.pid")
	p := startUpgradable(t, "-config", path, "-access-log=false", "-pid-file", pidFile)
	read := func() int {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("pid file %q: %v", b, err)
		}
		return n
	}
	if got := read(); got != p.Cmd.Process.Pid {
		t.Fatalf("pid file says %d, want %d", got, p.Cmd.Process.Pid)
	}
	upgrade(t, p)
	pid, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport))
	if got := read(); got != pid || gen != 1 || pid == p.Cmd.Process.Pid {
		t.Errorf("after the upgrade: pid file %d, admin pid %d generation %d; want the new process's pid in both, generation 1", got, pid, gen)
	}
}

// A listener a reload added is handed over like the others: the
// successor serves its socket (binding it anew would fail while the old
// process holds it).
func TestUpgradeAfterReload(t *testing.T) {
	leakcheck.Check(t)
	bport := okBackend(t)
	port, port2, aport := configPort(t), configPort(t), configPort(t)
	listenerOn := func(port int) string {
		return fmt.Sprintf("{ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\"}", port, bport)
	}
	head := fmt.Sprintf("AdminAddress: 127.0.0.1:%d\nBackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n", aport)
	path := writeConfig(t, head+"Listeners: ["+listenerOn(port)+"]\n")
	p := startUpgradable(t, "-config", path, "-access-log=false")
	if err := os.WriteFile(path, []byte(head+"Listeners: ["+listenerOn(port)+", "+listenerOn(port2)+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGHUP)
	p.WaitLine(t, "reloaded")
	upgrade(t, p)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for _, port := range []int{port, port2} {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatalf("port %d after the upgrade: %v", port, err)
		}
		resp.Body.Close()
	}
	if _, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport)); gen != 1 {
		t.Errorf("generation %d after the upgrade, want 1", gen)
	}
}

// POST /api/upgrade upgrades as SIGUSR2 does, for a token holder, and
// answers with both PIDs once the new process serves.
func TestUpgradeThroughAPI(t *testing.T) {
	leakcheck.Check(t)
	path, _, aport := oneListenerConfig(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops:"+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startUpgradable(t, "-config", path, "-access-log=false", "-admin-tokens", tokens)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	post := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/upgrade", aport), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	old := p.Cmd.Process.Pid
	code, body := post(opsToken)
	if code != http.StatusOK {
		t.Fatalf("with the token: %d %s", code, body)
	}
	var ch struct{ What, Before, After string }
	if err := json.Unmarshal([]byte(body), &ch); err != nil || ch.What != "upgrade" || ch.Before != fmt.Sprintf("pid %d", old) {
		t.Fatalf("answer %s (%v), want the upgrade from pid %d", body, err, old)
	}
	if err := p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	pid, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport))
	if ch.After != fmt.Sprintf("pid %d", pid) || gen != 1 {
		t.Errorf("answer %s; the admin server now reports pid %d generation %d", body, pid, gen)
	}
	p.WaitLine(t, "who=ops")
}

// nonblocking checks, on Linux, that every socket of process pid is in
// non-blocking mode: an upgrade must not leave the sockets it handed to
// a successor blocking in the process that keeps serving them.
func nonblocking(t *testing.T, pid int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("no %s: %v", dir, err)
	}
	n := 0
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, _ := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if flags&syscall.O_NONBLOCK == 0 {
					t.Errorf("socket descriptor %s of process %d is blocking (flags %s)", fd.Name(), pid, strings.TrimSpace(v))
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatalf("no socket descriptors found in %s", dir)
	}
}
