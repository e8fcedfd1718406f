package reliability

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/proctest"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestUpgradeHTTP3 upgrades clb (SIGUSR2) while HTTP/3 clients keep
// requests in flight on the old process's QUIC connections: quick
// GETs, GETs whose backend answers after 200 ms, and 1 MiB downloads,
// each client on a QUIC connection of its own (keep-alive). The fleet
// shares a stateless-reset key, so a process that took a packet of a
// connection it does not hold would reset it. The successor forwards
// the old generation's packets to the old process (package
// quichandoff): no request may fail but one the retiring server
// closes as idle just as the client sends it (closedIdle: measured,
// not held to 0).
func TestUpgradeHTTP3(t *testing.T) {
	const big = 1 << 20
	hb := startHTTP(t, "h", local, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond) // a backend that takes its time: the stream is in flight
		case "/big":
			io.WriteString(w, strings.Repeat("x", big))
		}
	})
	certFile, keyFile, pool := lbCertFiles(t)
	sp, ap := freePort(t), freePort(t)
	_, bport, _ := net.SplitHostPort(hb.addr)
	cfg := fmt.Sprintf(`AdminAddress: 127.0.0.1:%d
ServerCertificates: [{ServerCertificateId: lb, CertificateFile: %s, PrivateKeyFile: %s}]
Fleet: {QuicStatelessResetKey: cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=}
VServerGroups:
  - {VServerGroupId: web, BackendServers: [{ServerId: h, ServerIp: 127.0.0.1, Port: %s}]}
Listeners:
  - {ListenerProtocol: https, ListenerPort: %d, VServerGroupId: web, HealthCheck: "off", ServerCertificateId: lb, EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}
`, ap, certFile, keyFile, bport, sp)
	path := filepath.Join(t.TempDir(), "clb.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, clbBinary(t), "-config", path, "-access-log=false", "-drain-timeout", "10s")
	p.WaitLine(t, "clb: ready")
	front := fmt.Sprintf("https://127.0.0.1:%d", sp)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var counters []*counter
	// clients runs n clients of one kind, each on its own QUIC
	// connection, getting path in a loop.
	clients := func(name, path string, n, size int) {
		c := &counter{name: name}
		counters = append(counters, c)
		for range n {
			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "lb.test"},
				QUICConfig: &quic.Config{MaxIdleTimeout: 10 * time.Second}}
			client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			wg.Go(func() {
				defer tr.Close()
				for ctx.Err() == nil {
					c.add(h3get(client, front+path, size))
				}
			})
		}
	}
	clients("quick GET", "/", 4, 0)
	clients("200 ms GET", "/slow", 4, 0)
	clients("1 MiB GET", "/big", 2, big)
	for _, c := range counters {
		eventually(t, 10*time.Second, c.name+" under way", func() bool { return c.ok.Load() >= 3 })
	}
	p.Signal(t, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade: the new process is ready")
	oldExit := time.Now()
	if err := p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	exited := time.Since(oldExit)
	// A request whose packets no longer reach the old process stalls
	// until its drain deadline cuts the connection.
	cut := strings.Contains(p.Output(), "stopped with connections cut at the deadline")
	if cut {
		t.Errorf("the old process cut connections at its drain deadline (10s): packets of its connections did not reach it")
	}
	for _, c := range counters { // and on the successor alone
		n := c.ok.Load()
		eventually(t, 10*time.Second, c.name+" after the upgrade", func() bool { return c.ok.Load() >= n+3 })
	}
	cancel()
	wg.Wait()

	var parts []string
	failed := false
	for _, c := range counters {
		parts = append(parts, c.String())
		failed = failed || c.fail.Load() > 0
	}
	if failed {
		t.Errorf("HTTP/3 requests failed across the upgrade: %s", strings.Join(parts, "; "))
	}
	Record(t, "Upgrade with HTTP/3 in flight: clb (HTTPS listener with EnableHttp3, a Fleet stateless-reset key) upgraded with SIGUSR2 while 10 http3.Transport clients, each on a keep-alive QUIC connection of its own, request in a loop: 4 quick GETs, 4 GETs the backend answers after 200 ms, 2 downloads of 1 MiB; the successor forwards the old generation's packets to the old process, which reads only those once it retires and leaves its idle connections to their clients after the GOAWAY",
		"%s; old process exited %s after the successor was ready, connections cut at its drain deadline: %v", strings.Join(parts, ", "), exited.Round(time.Millisecond), cut)
}

// h3get gets url over HTTP/3 and checks the answer: "h" after size
// octets of the body.
func h3get(c *http.Client, url string, size int) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || len(b) != size+1 || resp.ProtoMajor != 3) {
		err = fmt.Errorf("%s %d, %d octets", resp.Proto, resp.StatusCode, len(b))
	}
	return err
}
