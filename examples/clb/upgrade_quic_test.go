package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/quic-go/quic-go/http3"
)

// TestUpgradeKeepsHTTP3: an HTTP/3 download and a slow request in
// flight on the old process's QUIC connection complete across a failed
// upgrade and then a successful one — the successor forwards their packets to the old process,
// which no longer reads the shared UDP socket. While the old process
// retires, a further upgrade is refused (its successor would share the
// old process's connection IDs); once it has exited, one succeeds.
func TestUpgradeKeepsHTTP3(t *testing.T) {
	leakcheck.Check(t)
	const size = h3BigSize
	b := newH3Backend()
	defer b.close()
	certFile, keyFile := tlsCertFiles(t)
	port, aport := configPort(t), configPort(t)
	path := writeConfig(t, fmt.Sprintf("AdminAddress: 127.0.0.1:%d\n", aport)+b.config(certFile, keyFile, port, ""))
	p := startUpgradable(t, "-config", path, "-access-log=false", "-drain-timeout", "60s")
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)

	resp, err := c.Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	// A failed upgrade leaves the pair's other end gone: the download
	// goes on, and the next upgrade makes a new pair.
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("Listeners: [{ListenerProtocol: nope}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade failed: this process keeps serving")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatalf("download after a failed upgrade: %v", err)
	}
	slow := getAsync(c, url+"/hold")
	<-b.held

	p.Signal(t, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade: the new process is ready")
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size-2<<20 {
		t.Fatalf("download after the upgrade: %d more octets, %v; want %d", n, err, size-2<<20)
	}
	pid, gen := processOf(t, fmt.Sprintf("127.0.0.1:%d", aport))
	if gen != 1 {
		t.Fatalf("generation %d after the upgrade, want 1", gen)
	}
	syscall.Kill(pid, syscall.SIGUSR2)
	p.WaitLine(t, "still retires its HTTP/3 connections")

	b.release()
	if r := <-slow; r.err != nil || r.body != "held" {
		t.Fatalf("slow request across the upgrade: %q, %v", r.body, r.err)
	}
	if err := p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	syscall.Kill(pid, syscall.SIGUSR2)
	p.WaitLine(t, "upgrade: the new process is ready")
	tr2 := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr2.Close()
	resp2, err := (&http.Client{Transport: tr2, Timeout: 10 * time.Second}).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.ProtoMajor != 3 {
		t.Errorf("after the second upgrade: %s, want HTTP/3", resp2.Proto)
	}
}

// h3BigSize is the length of h3Backend's /big.
const h3BigSize = 16 << 20

// config is the configuration of the HTTP/3 handoff tests: an https
// listener with HTTP/3 on port, to b, under the certificate in certFile
// and keyFile, with a fleet's stateless-reset key (so a lost connection
// shows as a reset); extra adds fields to the listener (", Field: v").
func (b *h3Backend) config(certFile, keyFile string, port int, extra string) string {
	return fmt.Sprintf("ServerCertificates: [{ServerCertificateId: c, CertificateFile: %s, PrivateKeyFile: %s}]\n"+
		"BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Fleet: {QuicStatelessResetKey: cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=}\n"+
		"Listeners: [{ListenerProtocol: https, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\", ServerCertificateId: c, EnableHttp3: \"on\", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3%s}]\n",
		certFile, keyFile, port, b.port, extra)
}

// h3Backend is the backend of the HTTP/3 handoff tests: /big sends
// h3BigSize octets, /hold closes held and answers "held" once released,
// others "ok".
type h3Backend struct {
	port string
	held chan struct{}
	srv  *httptest.Server
	once sync.Once
	rel  chan struct{}
}

func newH3Backend() *h3Backend {
	b := &h3Backend{held: make(chan struct{}), rel: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			chunk := strings.Repeat("x", 64<<10)
			for range h3BigSize / len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case "/hold":
			close(b.held)
			<-b.rel
			io.WriteString(w, "held")
		default:
			io.WriteString(w, "ok")
		}
	}))
	_, b.port, _ = strings.Cut(b.srv.URL, "127.0.0.1:")
	return b
}

// release lets /hold answer.
func (b *h3Backend) release() { b.once.Do(func() { close(b.rel) }) }

// close releases /hold and stops the backend.
func (b *h3Backend) close() {
	b.release()
	b.srv.Close()
}

// getResult is what getAsync's request got.
type getResult struct {
	body string
	err  error
}

// getAsync gets url with c in the background.
func getAsync(c *http.Client, url string) <-chan getResult {
	res := make(chan getResult, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			res <- getResult{"", err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- getResult{string(b), err}
	}()
	return res
}
