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

// TestReloadHTTP3 reloads clb (SIGHUP) twice with a new
// Http3MaxHandshakes, which replaces the HTTPS listener on its port,
// while HTTP/3 clients keep requests in flight on the replaced
// listener's QUIC connections: the clients of TestUpgradeHTTP3, with
// the fleet's stateless-reset key, so a listener that took a packet of
// a connection it does not hold would reset it. Each replacement takes
// the other parity of connection IDs on the socket and forwards the
// replaced listener's packets to it: no request may fail.
func TestReloadHTTP3(t *testing.T) {
	h := startH3Load(t, 500)
	h.reload(t, 600)
	h.reload(t, 500)
	parts, failed := h.stop()
	if failed {
		t.Errorf("HTTP/3 requests failed across the reloads: %s", parts)
	}
	Record(t, "Reload with HTTP/3 in flight: clb (HTTPS listener with EnableHttp3, a Fleet stateless-reset key) reloaded twice with SIGHUP, each time with a new Http3MaxHandshakes, which replaces the listener on its port, while 10 http3.Transport clients, each on a keep-alive QUIC connection of its own, request in a loop: 4 quick GETs, 4 GETs the backend answers after 200 ms, 2 downloads of 1 MiB; each new listener takes the other parity of connection IDs and forwards the replaced one's packets to it",
		"%s; the replaced listeners retired in %s after the new one served", parts, strings.Join(h.retired, " and "))
}

// TestReloadUpgradeHTTP3 upgrades clb (SIGUSR2) after a reload that
// replaced its HTTP/3 listener, under the clients of TestUpgradeHTTP3:
// the reload gave the socket the other parity than the process's
// generation, so the successor must take the parity the handoff names
// for the socket, not its generation's, or it would share the old
// listener's connection IDs. No request may fail.
func TestReloadUpgradeHTTP3(t *testing.T) {
	h := startH3Load(t, 500)
	h.reload(t, 600)
	h.p.Signal(t, syscall.SIGUSR2)
	h.p.WaitLine(t, "upgrade: the new process is ready")
	if err := h.p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	h.underWay(t, "after the upgrade")
	parts, failed := h.stop()
	if failed {
		t.Errorf("HTTP/3 requests failed across the reload and the upgrade: %s", parts)
	}
	Record(t, "Upgrade after a reload, with HTTP/3 in flight: the clients of the HTTP/3 upgrade row; clb reloaded once with a new Http3MaxHandshakes (the listener replaced: its socket takes the other parity), then upgraded with SIGUSR2; the successor takes the other parity of the one the handoff names for the socket",
		"%s; the replaced listener retired in %s after the new one served", parts, h.retired[0])
}

// reload makes clb replace the listener with one of handshakes
// (SIGHUP), and waits until the replaced one has retired, noting how
// long that took after the new one served, and until every kind of
// client has been served again.
func (h *h3Load) reload(t *testing.T, handshakes int) {
	t.Helper()
	h.write(t, handshakes)
	h.p.Signal(t, syscall.SIGHUP)
	h.p.WaitLine(t, "reload: listener added")
	start := time.Now()
	h.p.WaitLine(t, "reloaded")
	h.retired = append(h.retired, time.Since(start).Round(time.Millisecond).String())
	if out := h.p.Output(); strings.Contains(out, "reload incomplete") || strings.Contains(out, "reload refused") {
		t.Fatalf("reload to %d handshakes: %s", handshakes, out)
	}
	h.underWay(t, fmt.Sprintf("after the reload to %d handshakes", handshakes))
}

// h3Load is clb serving one HTTPS listener with HTTP/3, and HTTP/3
// clients requesting from it in a loop: 4 quick GETs, 4 GETs whose
// backend answers after 200 ms, 2 downloads of h3LoadBig, each client on
// a QUIC connection of its own (keep-alive).
type h3Load struct {
	p       *proctest.Proc
	front   string // the listener's URL
	path    string // the configuration file
	conf    string // its text, with %d for Http3MaxHandshakes
	retired []string

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	counters []*counter
}

// h3LoadBig is the length of an h3Load download.
const h3LoadBig = 1 << 20

// startH3Load starts clb with Http3MaxHandshakes handshakes and its
// clients, and returns once every kind has been served a few times.
func startH3Load(t *testing.T, handshakes int) *h3Load {
	hb := startHTTP(t, "h", local, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond) // a backend that takes its time: the stream is in flight
		case "/big":
			io.WriteString(w, strings.Repeat("x", h3LoadBig))
		}
	})
	certFile, keyFile, pool := lbCertFiles(t)
	sp, ap := freePort(t), freePort(t)
	_, bport, _ := net.SplitHostPort(hb.addr)
	h := &h3Load{front: fmt.Sprintf("https://127.0.0.1:%d", sp), path: filepath.Join(t.TempDir(), "clb.yaml"),
		conf: fmt.Sprintf(`AdminAddress: 127.0.0.1:%d
ServerCertificates: [{ServerCertificateId: lb, CertificateFile: %s, PrivateKeyFile: %s}]
Fleet: {QuicStatelessResetKey: cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=}
VServerGroups:
  - {VServerGroupId: web, BackendServers: [{ServerId: h, ServerIp: 127.0.0.1, Port: %s}]}
Listeners:
  - {ListenerProtocol: https, ListenerPort: %d, VServerGroupId: web, HealthCheck: "off", ServerCertificateId: lb, EnableHttp3: "on", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3, Http3MaxHandshakes: %%d}
`, ap, certFile, keyFile, bport, sp)}
	h.write(t, handshakes)
	h.p = proctest.Start(t, clbBinary(t), "-config", h.path, "-access-log=false", "-drain-timeout", "10s")
	h.p.WaitLine(t, "clb: ready")

	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	t.Cleanup(func() { h.stop() })
	clients := func(name, path string, n, size int) {
		c := &counter{name: name}
		h.counters = append(h.counters, c)
		for range n {
			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "lb.test"},
				QUICConfig: &quic.Config{MaxIdleTimeout: 10 * time.Second}}
			client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			h.wg.Go(func() {
				defer tr.Close()
				for ctx.Err() == nil {
					c.add(h3get(client, h.front+path, size))
				}
			})
		}
	}
	clients("quick GET", "/", 4, 0)
	clients("200 ms GET", "/slow", 4, 0)
	clients("1 MiB GET", "/big", 2, h3LoadBig)
	h.underWay(t, "under way")
	return h
}

// write writes the configuration with handshakes.
func (h *h3Load) write(t *testing.T, handshakes int) {
	t.Helper()
	if err := os.WriteFile(h.path, fmt.Appendf(nil, h.conf, handshakes), 0o644); err != nil {
		t.Fatal(err)
	}
}

// underWay waits until every kind of client has been served 3 more
// times.
func (h *h3Load) underWay(t *testing.T, what string) {
	t.Helper()
	for _, c := range h.counters {
		n := c.ok.Load()
		eventually(t, 10*time.Second, c.name+" "+what, func() bool { return c.ok.Load() >= n+3 })
	}
}

// stop stops the clients and returns their counts, and whether any
// request failed.
func (h *h3Load) stop() (counts string, failed bool) {
	h.cancel()
	h.wg.Wait()
	var parts []string
	for _, c := range h.counters {
		parts = append(parts, c.String())
		failed = failed || c.fail.Load() > 0
	}
	return strings.Join(parts, ", "), failed
}
