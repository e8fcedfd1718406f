package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/proctest"
	"github.com/lbkit/lbkit/internal/syncbuf"
)

func TestMain(m *testing.M) {
	proctest.HoldPortChild()
	os.Exit(m.Run())
}

// clbBinary returns the path of the clb binary, building it once (on
// first use, so runs that need none, as fuzz workers, skip the build).
func clbBinary(t *testing.T) string {
	t.Helper()
	return proctest.Build(t, "github.com/lbkit/lbkit/examples/clb")
}

// portBase finds a -port-base whose demo ports are all free on 127.0.0.1.
func portBase(t *testing.T) int {
	t.Helper()
	offs := []int{offHTTP, offRedirect, offAdmin, offHTTPS, offTCP, offUDP,
		offBackendHTTP, offBackendHTTP + 1, offBackendHTTP + 2, offBackendEcho, offBackendEcho + 1, offBackendEcho + 2}
	for range 50 {
		base := 20000 + rand.IntN(400)*100
		free := true
		for _, off := range offs {
			addr := "127.0.0.1:" + strconv.Itoa(base+off)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				free = false
				break
			}
			ln.Close()
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				free = false
				break
			}
			pc.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port base")
	return 0
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer = syncbuf.Buffer

// proc is a running clb.
type proc struct {
	cmd    *exec.Cmd
	stdout string
	stderr *syncBuffer
	done   chan error
}

// startClb runs the binary and waits (bounded) for "clb: ready".
func startClb(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(clbBinary(t), args...)
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
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
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.stdout = <-ready:
	case err := <-p.done:
		t.Fatalf("clb exited before ready: %v\nstderr:\n%s", err, p.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("clb not ready after 20s\nstderr:\n%s", p.stderr)
	}
	return p
}

// stop sends SIGTERM and wants a clean exit within 10 s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("clb exit: %v\nstderr:\n%s", err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("clb did not exit 10s after SIGTERM\nstderr:\n%s", p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("no graceful stop logged:\n%s", p.stderr)
	}
}

// firstLine GETs url with c and returns the status and the body's first
// line.
func firstLine(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, body := getBody(t, c, url)
	line, _, _ := strings.Cut(body, "\n")
	return resp, line
}

// getBody GETs url with c and returns the response and its whole body.
func getBody(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func isBackend(name string) bool {
	return name == "backend-a" || name == "backend-b" || name == "backend-c"
}

// echoTCP writes msg on c and reads it back.
func echoTCP(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("tcp write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("tcp echo = %q, %v; want %q", buf, err, msg)
	}
}

func TestDemoBinary(t *testing.T) {
	base := portBase(t)
	p := startClb(t, "-port-base", strconv.Itoa(base))
	url := func(off int, scheme string) string {
		return fmt.Sprintf("%s://127.0.0.1:%d/", scheme, base+off)
	}
	for _, want := range []string{"http_" + strconv.Itoa(base+offHTTP), "curl -c jar " + url(offHTTP, "http"), "curl -k " + url(offHTTPS, "https")} {
		if !strings.Contains(p.stdout, want) {
			t.Errorf("startup output lacks %q:\n%s", want, p.stdout)
		}
	}

	t.Run("http", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, name := firstLine(t, c, url(offHTTP, "http"))
		if resp.StatusCode != 200 || !isBackend(name) {
			t.Fatalf("GET = %d %q, want 200 and a backend name", resp.StatusCode, name)
		}
		if _, name := firstLine(t, c, url(offHTTP, "http")+"api/x"); name != "backend-c" {
			t.Errorf("GET /api/x went to %q, want backend-c (forwarding rule)", name)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Timeout: 5 * time.Second, Jar: jar}
		defer c.CloseIdleConnections()
		resp, first := firstLine(t, c, url(offHTTP, "http"))
		if len(resp.Cookies()) == 0 || resp.Cookies()[0].Name != "SERVERID" {
			t.Fatalf("no SERVERID cookie: %v", resp.Header["Set-Cookie"])
		}
		for i := range 6 {
			if _, name := firstLine(t, c, url(offHTTP, "http")); name != first {
				t.Fatalf("request %d with the cookie went to %q, want %q", i, name, first)
			}
		}
		// Without the cookie, requests spread.
		seen := map[string]bool{}
		plain := &http.Client{Timeout: 5 * time.Second}
		defer plain.CloseIdleConnections()
		for range 6 {
			_, name := firstLine(t, plain, url(offHTTP, "http"))
			seen[name] = true
		}
		if len(seen) < 2 {
			t.Errorf("without a cookie every request went to %v", seen)
		}
	})
	// The https listener over HTTP/2 and HTTP/3 alike: the generated
	// certificate, the extension domain's by SNI, X-Forwarded-Proto at
	// the backend, a POST; HTTP/2 responses advertise HTTP/3.
	for _, proto := range []string{"https", "http3"} {
		t.Run(proto, func(t *testing.T) {
			wantMajor := map[string]int{"https": 2, "http3": 3}[proto]
			c := tlsClient(t, proto == "http3", "")
			resp, body := getBody(t, c, url(offHTTPS, "https"))
			name, _, _ := strings.Cut(body, "\n")
			if resp.StatusCode != 200 || !isBackend(name) || resp.ProtoMajor != wantMajor {
				t.Fatalf("GET = %d %s %q, want 200 over HTTP/%d from a backend", resp.StatusCode, resp.Proto, name, wantMajor)
			}
			if !strings.Contains(body, "\nGET / HTTP/1.1\n") || !strings.Contains(body, "\nX-Forwarded-Proto: https\n") {
				t.Errorf("the backend saw:\n%s\nwant GET / over HTTP/1.1 with X-Forwarded-Proto: https", body)
			}
			cert := resp.TLS.PeerCertificates[0]
			if cert.Subject.CommonName != "localhost" || len(cert.IPAddresses) == 0 {
				t.Errorf("certificate %v %v, want the generated localhost one", cert.Subject, cert.IPAddresses)
			}
			if resp.TLS.Version != tls.VersionTLS13 {
				t.Errorf("TLS version %x, want 1.3 under tls_cipher_policy_1_2_strict_with_1_3", resp.TLS.Version)
			}
			alt := resp.Header.Get("Alt-Svc")
			if want := fmt.Sprintf(`h3=":%d"; ma=86400`, base+offHTTPS); proto == "https" && alt != want {
				t.Errorf("Alt-Svc %q, want %q", alt, want)
			}
			if proto == "http3" && alt != "" {
				t.Errorf("an HTTP/3 response advertises Alt-Svc %q", alt)
			}
			post, err := c.Post(url(offHTTPS, "https")+"form", "text/plain", strings.NewReader("a body to forward"))
			if err != nil {
				t.Fatal(err)
			}
			pbody, _ := io.ReadAll(post.Body)
			post.Body.Close()
			if post.StatusCode != 200 || post.ProtoMajor != wantMajor || !strings.Contains(string(pbody), "\nPOST /form HTTP/1.1\n") ||
				!strings.Contains(string(pbody), "\nX-Forwarded-Proto: https\n") {
				t.Errorf("POST = %d %s, the backend saw:\n%s\nwant POST /form over HTTP/1.1 with X-Forwarded-Proto: https", post.StatusCode, post.Proto, pbody)
			}
			// The extension domain's certificate, by SNI.
			resp, _ = firstLine(t, tlsClient(t, proto == "http3", demoShopDomain), url(offHTTPS, "https"))
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != demoShopDomain || resp.ProtoMajor != wantMajor {
				t.Errorf("SNI %s over %s: certificate %q, want %s's", demoShopDomain, resp.Proto, cn, demoShopDomain)
			}
		})
	}
	t.Run("redirect", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		defer c.CloseIdleConnections()
		resp, _ := firstLine(t, c, url(offRedirect, "http")+"x?y=1")
		if want := url(offHTTPS, "https") + "x?y=1"; resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("redirect = %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", base+offTCP), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		echoTCP(t, c, "hello over tcp\n")
	})
	t.Run("udp", func(t *testing.T) {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", base+offUDP))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 100)
		for try := range 5 {
			c.Write([]byte("hello over udp"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err == nil && string(buf[:n]) == "hello over udp" {
				return
			}
			t.Logf("udp try %d: %q %v", try, buf[:n], err)
		}
		t.Fatal("no udp echo")
	})
	t.Run("admin", func(t *testing.T) {
		if !strings.Contains(p.stdout, fmt.Sprintf("Admin: http://127.0.0.1:%d/", base+offAdmin)) {
			t.Errorf("startup output does not name the admin address:\n%s", p.stdout)
		}
		c := &http.Client{Timeout: 5 * time.Second}
		for _, path := range []string{"", "status.json", "metrics"} {
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/%s", base+offAdmin, path))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "http_"+strconv.Itoa(base+offHTTP)) {
				t.Errorf("admin /%s = %d, want 200 naming the HTTP listener:\n%.300s", path, resp.StatusCode, body)
			}
		}
	})
	p.stop(t)
}

func TestPortTaken(t *testing.T) {
	base := portBase(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+offHTTPS))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec.Command(clbBinary(t), "-port-base", strconv.Itoa(base)).CombinedOutput()
	if err == nil {
		t.Fatal("clb started with its https port taken")
	}
	want := fmt.Sprintf("clb: listener https_%d (https port %d): ", base+offHTTPS, base+offHTTPS)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "address already in use") {
		t.Errorf("output lacks %q and the bind error:\n%s", want, out)
	}
}

const reloadConfig = `LoadBalancerId: lb-reload
BackendServers:
  - {ServerId: backend-a, ServerIp: 127.0.0.1}
VServerGroups:
  - VServerGroupId: web
    BackendServers:
      - {ServerId: backend-a, ServerIp: 127.0.0.1, Port: BH1, Weight: WA}
      - {ServerId: backend-b, ServerIp: 127.0.0.1, Port: BH2, Weight: 100}
      - {ServerId: backend-c, ServerIp: 127.0.0.1, Port: BH3, Weight: 100}
Listeners:
  - {ListenerProtocol: http, ListenerPort: HTTP, VServerGroupId: web, Scheduler: wrr, HealthCheck: "off"}
  - {ListenerProtocol: tcp, ListenerPort: TCP, BackendServerPort: BE, HealthCheck: "off"}
`

func TestReload(t *testing.T) {
	base := portBase(t)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	write := func(wa string, extra string) {
		t.Helper()
		s := strings.NewReplacer("WA", wa, "HTTP", strconv.Itoa(base+offHTTP), "BH1", strconv.Itoa(base+offBackendHTTP), "BH2", strconv.Itoa(base+offBackendHTTP+1), "BH3", strconv.Itoa(base+offBackendHTTP+2),
			"TCP", strconv.Itoa(base+offTCP), "BE", strconv.Itoa(base+offBackendEcho)).Replace(reloadConfig) + extra
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("100", "")
	p := startClb(t, "-config", path, "-demo-backends", "-port-base", strconv.Itoa(base))

	tcp, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", base+offTCP), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	echoTCP(t, tcp, "before reload\n")

	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	web := fmt.Sprintf("http://127.0.0.1:%d/", base+offHTTP)
	names := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			_, name := firstLine(t, c, web)
			seen[name]++
		}
		return seen
	}
	if seen := names(9); seen["backend-a"] == 0 {
		t.Fatalf("before reload backend-a got nothing: %v", seen)
	}

	// Weight 0 drains backend-a: no new requests after the reload.
	write("0", "")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "msg=reloaded", 1)
	if seen := names(12); seen["backend-a"] != 0 || seen["backend-b"] == 0 || seen["backend-c"] == 0 {
		t.Errorf("after weight 0 for backend-a: %v", seen)
	}
	echoTCP(t, tcp, "after reload\n")

	// A bad configuration is refused and the old one keeps running.
	write("0", "  - {ListenerProtocol: udp, ListenerPort: 4789, BackendServerPort: 1, HealthCheck: \"off\"}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "reload refused", 1)
	if !strings.Contains(p.stderr.String(), "ListenerPort: 4789 reserved for udp") {
		t.Errorf("refusal does not say why:\n%s", p.stderr)
	}
	if seen := names(3); seen["backend-a"] != 0 {
		t.Errorf("after a refused reload: %v", seen)
	}
	echoTCP(t, tcp, "after refused reload\n")

	// A new listener is added; the TCP one is untouched.
	write("100", fmt.Sprintf("  - {ListenerProtocol: udp, ListenerPort: %d, BackendServerPort: %d, HealthCheck: \"off\"}\n", base+offUDP, base+offBackendEcho))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "msg=reloaded", 2)
	if seen := names(9); seen["backend-a"] == 0 {
		t.Errorf("backend-a back at weight 100 got nothing: %v", seen)
	}
	echoTCP(t, tcp, "after second reload\n")
	tcp.Close()
	p.stop(t)
}

// waitLog waits (bounded) until the process logged msg n times.
func waitLog(t *testing.T, p *proc, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.stderr.String(), msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q (%d) logged in 10s:\n%s", msg, n, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A clb http listener with the hash scheduler and HashBy header keeps
// each X-User on one backend, over new connections too, and spreads the
// users over the backends; requests without the header stay on one
// backend (the client's source IP).
func TestHashByHeader(t *testing.T) {
	base := portBase(t)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	cfg := strings.NewReplacer("HTTP", strconv.Itoa(base+offHTTP), "BH1", strconv.Itoa(base+offBackendHTTP),
		"BH2", strconv.Itoa(base+offBackendHTTP+1), "BH3", strconv.Itoa(base+offBackendHTTP+2), "TCP", strconv.Itoa(base+offTCP),
		"BE", strconv.Itoa(base+offBackendEcho)).Replace(reloadConfig)
	cfg = strings.Replace(cfg, "Scheduler: wrr,", "Scheduler: hash, HashBy: header, HashKey: X-User,", 1)
	cfg = strings.Replace(cfg, "Weight: WA", "Weight: 100", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startClb(t, "-config", path, "-demo-backends", "-port-base", strconv.Itoa(base))
	web := fmt.Sprintf("http://127.0.0.1:%d/", base+offHTTP)
	backend := func(user string) string {
		t.Helper()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest(http.MethodGet, web, nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		name, _, _ := strings.Cut(string(body), "\n")
		if !isBackend(name) {
			t.Fatalf("X-User %q: answered %d %q", user, resp.StatusCode, body)
		}
		return name
	}
	first := map[string]string{}
	spread := map[string]int{}
	for round := range 3 {
		for i := range 12 {
			user := fmt.Sprintf("user-%d", i)
			got := backend(user)
			if round == 0 {
				first[user] = got
				spread[got]++
			} else if got != first[user] {
				t.Fatalf("round %d: %s went to %s, before to %s", round, user, got, first[user])
			}
		}
		if round == 0 {
			first[""] = backend("")
		} else if got := backend(""); got != first[""] {
			t.Fatalf("round %d: no X-User went to %s, before to %s", round, got, first[""])
		}
	}
	if len(spread) < 2 {
		t.Errorf("12 users all went to %v, want them spread", spread)
	}
	p.stop(t)
}

const probedConfig = `LoadBalancerId: lb-probed
VServerGroups:
  - VServerGroupId: web
    BackendServers:
      - {ServerId: live, ServerIp: 127.0.0.1, Port: LIVE, Weight: 100}
      - {ServerId: dead, ServerIp: 127.0.0.1, Port: DEAD, Weight: 100}
Listeners:
  - ListenerProtocol: http
    ListenerPort: HTTP
    VServerGroupId: web
    Scheduler: rr
    HealthCheck: "on"
    HealthCheckType: http
    HealthCheckURI: /health
    HealthCheckInterval: 5
    HealthCheckConnectTimeout: 2
`

// clb says "ready" only after the first round of health checks: by then
// every backend has been probed, and the one that passed takes requests at
// once while the dead one is never tried.
func TestReadyAfterFirstProbe(t *testing.T) {
	var probes, requests atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			probes.Add(1)
			return
		}
		requests.Add(1)
		fmt.Fprintln(w, "live")
	}))
	defer live.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	base := portBase(t)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	cfg := strings.NewReplacer("LIVE", strconv.Itoa(live.Listener.Addr().(*net.TCPAddr).Port), "DEAD", strconv.Itoa(deadPort),
		"HTTP", strconv.Itoa(base+offHTTP)).Replace(probedConfig)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startClb(t, "-config", path, "-port-base", strconv.Itoa(base))
	if n := probes.Load(); n == 0 {
		t.Fatal(`"clb: ready" before the live backend's first health probe`)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	for i := range 4 {
		resp, name := firstLine(t, c, fmt.Sprintf("http://127.0.0.1:%d/", base+offHTTP))
		if resp.StatusCode != http.StatusOK || name != "live" {
			t.Fatalf("request %d right after ready = %d %q, want 200 from live", i, resp.StatusCode, name)
		}
	}
	p.stop(t)
}
