package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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
	defer leakcheck.Check(t)
	const size = 16 << 20
	held, release := make(chan struct{}), make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			chunk := strings.Repeat("x", 64<<10)
			for range size / len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case "/hold":
			close(held)
			<-release
			io.WriteString(w, "held")
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer b.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	_, bport, _ := strings.Cut(b.URL, "127.0.0.1:")
	certFile, keyFile := tlsCertFiles(t)
	port, aport := configPort(t), configPort(t)
	path := writeConfig(t, fmt.Sprintf("AdminAddress: 127.0.0.1:%d\n"+
		"ServerCertificates: [{ServerCertificateId: c, CertificateFile: %s, PrivateKeyFile: %s}]\n"+
		"BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Fleet: {QuicStatelessResetKey: cmVzZXQga2V5IG9mIHRoZSBmbGVldCwgMzIgYnl0ZXM=}\n"+
		"Listeners: [{ListenerProtocol: https, ListenerPort: %d, BackendServerPort: %s, HealthCheck: \"off\", ServerCertificateId: c, EnableHttp3: \"on\", TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}]\n",
		aport, certFile, keyFile, port, bport))
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
	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := c.Get(url + "/hold")
		if err != nil {
			slow <- result{"", err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{string(b), err}
	}()
	<-held

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

	close(release)
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
