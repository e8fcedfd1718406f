package reliability

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/proctest"
	"github.com/quic-go/quic-go/http3"
)

// upgradeRig is a clb process with an HTTP listener (health-checked, so
// a successor is ready only after its first round), a TCP and a UDP
// listener in front of loopback backends, and an admin server.
type upgradeRig struct {
	p                            *proctest.Proc
	http, https, tcp, udp, admin string
	ca                           *x509.CertPool // of the https listener's certificate
}

func startUpgradeRig(t *testing.T, drain time.Duration) *upgradeRig {
	t.Helper()
	hb := startHTTP(t, "h", local, nil)
	tb := startEcho(t, "e", local)
	ub := startUDPEcho(t)
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	hp, sp, tp, up, ap := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	certFile, keyFile, pool := lbCertFiles(t)
	cfg := fmt.Sprintf(`AdminAddress: 127.0.0.1:%d
ServerCertificates: [{ServerCertificateId: lb, CertificateFile: %s, PrivateKeyFile: %s}]
VServerGroups:
  - {VServerGroupId: web, BackendServers: [{ServerId: h, ServerIp: 127.0.0.1, Port: %s}]}
  - {VServerGroupId: tcp, BackendServers: [{ServerId: e, ServerIp: 127.0.0.1, Port: %s}]}
  - {VServerGroupId: udp, BackendServers: [{ServerId: u, ServerIp: 127.0.0.1, Port: %s}]}
Listeners:
  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: "on", HealthCheckType: http, HealthCheckURI: %s, HealthCheckInterval: 1, HealthCheckConnectTimeout: 2}
  - {ListenerProtocol: https, ListenerPort: %d, VServerGroupId: web, HealthCheck: "off", ServerCertificateId: lb, EnableHttp2: "on", EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}
  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: tcp, HealthCheck: "off"}
  - {ListenerProtocol: udp, ListenerPort: %d, VServerGroupId: udp, HealthCheck: "off"}
`, ap, certFile, keyFile, port(hb.addr), port(tb.addr), strconv.Itoa(ub), hp, healthPath, sp, tp, up)
	path := filepath.Join(t.TempDir(), "clb.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, clbBinary(t), "-config", path, "-access-log=false", "-drain-timeout", drain.String())
	p.WaitLine(t, "clb: ready")
	a := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	return &upgradeRig{p: p, http: a(hp), https: a(sp), tcp: a(tp), udp: a(up), admin: a(ap), ca: pool}
}

// lbCertFiles writes a certificate for lb.test and its key to files,
// and returns them with a pool of its CA.
func lbCertFiles(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := newCert(t, nil, 1)
	cert := newCert(t, ca, 2, "lb.test")
	dir := t.TempDir()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, keyFile: {Type: "PRIVATE KEY", Bytes: key}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	return certFile, keyFile, pool
}

// upgrade sends SIGUSR2 and waits for the successor to be ready; it
// returns when that was logged.
func (r *upgradeRig) upgrade(t *testing.T) {
	t.Helper()
	r.p.Signal(t, syscall.SIGUSR2)
	r.p.WaitLine(t, "upgrade: the new process is ready")
}

// counter counts the operations of one kind of client and keeps the
// first errors.
type counter struct {
	name     string
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func (c *counter) add(err error) {
	if err == nil {
		c.ok.Add(1)
		return
	}
	c.fail.Add(1)
	c.mu.Lock()
	if len(c.errs) < 3 {
		c.errs = append(c.errs, err.Error())
	}
	c.mu.Unlock()
}

func (c *counter) String() string {
	s := fmt.Sprintf("%s %d/%d failed", c.name, c.fail.Load(), c.ok.Load()+c.fail.Load())
	if len(c.errs) > 0 {
		s += fmt.Sprintf(" %q", c.errs)
	}
	return s
}

// TestUpgradeUnderLoad upgrades clb (SIGUSR2) while clients use every
// listener: Go's HTTP client with keep-alive (GET, and POST, which it
// never retries) and with a new connection per request, new TCP
// connections, TCP streams opened before the upgrade, UDP flows; and
// wrk. None may fail; the streams end on the old process, which exits.
func TestUpgradeUnderLoad(t *testing.T) {
	t.Run("go clients", testUpgradeGoClients)
	t.Run("wrk", testUpgradeWrk)
}

func testUpgradeGoClients(t *testing.T) {
	r := startUpgradeRig(t, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var counters []*counter
	// worker runs each op in a loop on a goroutine of its own, all
	// counted as name.
	worker := func(name string, ops ...func() error) {
		c := &counter{name: name}
		counters = append(counters, c)
		for _, op := range ops {
			wg.Go(func() {
				for ctx.Err() == nil {
					c.add(op())
				}
			})
		}
	}
	httpOp := func(tr *http.Transport, url, method string) func() error {
		client := httpClient(t, tr)
		return func() error {
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader("payload")
			}
			req, _ := http.NewRequest(method, url, body)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != http.StatusOK || string(b) != "h") {
				err = fmt.Errorf("status %d, body %q", resp.StatusCode, b)
			}
			if err == nil && strings.HasPrefix(url, "https:") && resp.ProtoMajor != 2 {
				err = fmt.Errorf("%s, want HTTP/2", resp.Proto)
			}
			return err
		}
	}
	// each returns n ops of a Transport of their own: one keep-alive
	// connection each (HTTP/1.1), or one HTTP/2 connection for all.
	each := func(n int, url, method string, tr func() *http.Transport) []func() error {
		var ops []func() error
		for range n {
			ops = append(ops, httpOp(tr(), url, method))
		}
		return ops
	}
	plain := "http://" + r.http + "/"
	keepAlive := func() *http.Transport { return &http.Transport{MaxIdleConnsPerHost: 1} }
	worker("HTTP/1.1 keep-alive GET", each(4, plain, http.MethodGet, keepAlive)...)
	worker("HTTP/1.1 keep-alive POST", each(4, plain, http.MethodPost, keepAlive)...)
	worker("new-connection GET", each(2, plain, http.MethodGet, func() *http.Transport { return &http.Transport{DisableKeepAlives: true} })...)
	h2 := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: r.ca, ServerName: "lb.test"}}
	h2ops := each(2, "https://"+r.https+"/", http.MethodGet, func() *http.Transport { return h2 })
	worker("HTTP/2 GET and POST", append(h2ops, each(2, "https://"+r.https+"/", http.MethodPost, func() *http.Transport { return h2 })...)...)
	worker("new TCP connection", func() error { _, err := echo(r.tcp); return err }, func() error { _, err := echo(r.tcp); return err })
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: r.ca, ServerName: "lb.test"}}
	defer h3.Close()
	h3client := &http.Client{Transport: h3, Timeout: 20 * time.Second}
	get3 := func() error { return h3get(h3client, "https://"+r.https+"/", 0) }
	worker("HTTP/3 GET", get3, get3)
	udp := &counter{name: "UDP datagrams lost"}
	for range 2 {
		wg.Go(func() { udpFlow(ctx, r.udp, udp) })
	}

	// Streams opened before the upgrade, echoing until the successor
	// serves; they end on the old process, which exits after them.
	streams := &counter{name: "TCP streams opened before the upgrade"}
	var conns []net.Conn
	for range 4 {
		c, _, err := dialEcho(r.tcp)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	for _, c := range counters {
		eventually(t, 10*time.Second, c.name+" under way", func() bool { return c.ok.Load() >= 20 })
	}
	start := time.Now()
	r.upgrade(t)
	ready := time.Since(start)
	time.Sleep(500 * time.Millisecond) // load on the successor, streams on the old process
	for _, c := range conns {
		streams.add(ping(c))
		c.Close()
	}
	oldExit := time.Now()
	if err := r.p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	exited := time.Since(oldExit)
	time.Sleep(300 * time.Millisecond) // and on the successor alone
	cancel()
	wg.Wait()

	var parts []string
	failed := false
	for _, c := range append(counters, streams) {
		parts = append(parts, c.String())
		failed = failed || c.fail.Load() > 0
	}
	if failed {
		t.Errorf("failures across the upgrade: %s", strings.Join(parts, "; "))
	}
	pid, gen := processOf(t, r.admin)
	if pid == r.p.Cmd.Process.Pid || gen != 1 {
		t.Errorf("after the upgrade the admin server reports pid %d generation %d, want the successor's, generation 1", pid, gen)
	}
	Record(t, "Upgrade under load: clb (HTTP listener with HTTP health checks, HTTPS with HTTP/2 and HTTP/3, TCP and UDP listeners) upgraded with SIGUSR2 under load: 4 HTTP/1.1 keep-alive GET and 4 keep-alive POST clients (Go's net/http, one connection each; it never retries a POST), 2 new-connection GET clients, 4 HTTP/2 clients (GET and POST) on one connection, 2 HTTP/3 clients on one QUIC connection, 2 clients opening a TCP connection per echo, 4 TCP streams opened before the upgrade and used after it, 2 UDP flows sending a datagram and waiting 100 ms for its echo",
		"%s; UDP: %d of %d datagrams unanswered; successor ready %s after SIGUSR2 (its first health round included); old process exited %s after its last stream closed",
		strings.Join(parts, ", "), udp.fail.Load(), udp.ok.Load()+udp.fail.Load(), ready.Round(time.Millisecond), exited.Round(time.Millisecond))
}

// udpFlow sends a datagram on one flow and waits for its echo, counting
// the unanswered, until ctx ends.
func udpFlow(ctx context.Context, addr string, c *counter) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		c.add(err)
		return
	}
	defer conn.Close()
	buf := make([]byte, 64)
	for i := 0; ctx.Err() == nil; i++ {
		msg := strconv.Itoa(i)
		conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Write([]byte(msg)); err != nil {
			c.add(err)
			continue
		}
		// Skip late echoes of earlier datagrams.
		for {
			n, err := conn.Read(buf)
			if err != nil {
				c.add(fmt.Errorf("datagram %d: %w", i, err))
				break
			}
			if string(buf[:n]) == msg {
				c.add(nil)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processOf reads the PID and upgrade generation clb's admin server
// reports.
func processOf(t *testing.T, admin string) (pid, generation int) {
	t.Helper()
	c := httpClient(t, &http.Transport{DisableKeepAlives: true})
	_, body, err := get(c, "http://"+admin+"/status.json")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"pid":\s*(\d+).*?"generation":\s*(\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no process in /status.json: %.200s", body)
	}
	pid, _ = strconv.Atoi(m[1])
	generation, _ = strconv.Atoi(m[2])
	return pid, generation
}

// wrk is the path of wrk, or the test is skipped (failed under CI, where
// .ci/run installs it).
func wrk(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("wrk")
	if err == nil {
		return path
	}
	msg := "wrk not installed (apt-get install wrk): the upgrade under wrk's load cannot run"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func testUpgradeWrk(t *testing.T) {
	bin := wrk(t)
	r := startUpgradeRig(t, 10*time.Second)
	const conns, dur, at = 32, 4 * time.Second, 1500 * time.Millisecond
	cmd := exec.Command(bin, "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(dur.Seconds())), "http://"+r.http+"/")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(at)
	r.upgrade(t)
	if err := r.p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("wrk: %v\n%s", err, out.String())
	}
	requests, errs := parseWrk(out.String())
	if requests == 0 {
		t.Fatalf("wrk made no requests:\n%s", out.String())
	}
	if errs != "" {
		t.Errorf("wrk saw errors across the upgrade: %s\n%s", errs, out.String())
	}
	Record(t, fmt.Sprintf("Upgrade under load: wrk -t2 -c%d -d%s (keep-alive GETs) against clb's HTTP listener, SIGUSR2 after %s", conns, dur, at),
		"%d requests, errors: %s", requests, cmp.Or(errs, "none"))
}

// parseWrk returns the requests wrk made and its error lines ("" if it
// reported none: no socket errors, no non-2xx or 3xx responses).
func parseWrk(out string) (requests int, errs string) {
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
		requests, _ = strconv.Atoi(m[1])
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Socket errors:") || strings.HasPrefix(l, "Non-2xx or 3xx responses:") {
			lines = append(lines, l)
		}
	}
	return requests, strings.Join(lines, "; ")
}
