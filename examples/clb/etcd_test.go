package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestParseEtcdURL(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		endpoints []string
		prefix    string
	}{
		{"one", "etcd://127.0.0.1:2379/lb", []string{"http://127.0.0.1:2379"}, "/lb"},
		{"several, nested prefix", "etcd://a:1,b:2/fleet/eu/", []string{"http://a:1", "http://b:2"}, "/fleet/eu"},
		{"no prefix", "etcd://127.0.0.1:2379/", nil, ""},
		{"no host", "etcd:///lb", nil, ""},
		{"credentials", "etcd://u:p@127.0.0.1:2379/lb", nil, ""},
		{"a file", "lb.yaml", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps, prefix, err := parseEtcdURL(tc.url)
			if tc.endpoints == nil {
				if err == nil || !strings.Contains(err.Error(), strconv.Quote(tc.url)) {
					t.Errorf("parseEtcdURL(%q) = %v, %q, %v; want an error naming it", tc.url, eps, prefix, err)
				}
				return
			}
			if err != nil || fmt.Sprint(eps) != fmt.Sprint(tc.endpoints) || prefix != tc.prefix {
				t.Errorf("parseEtcdURL(%q) = %v, %q, %v; want %v, %q", tc.url, eps, prefix, err, tc.endpoints, tc.prefix)
			}
		})
	}
}

func TestEtcdKeysRead(t *testing.T) {
	k := &etcdKeys{prefix: "/lb", kv: map[string][]byte{"certs/web.pem": []byte("pem")}}
	for _, tc := range []struct{ name, want string }{
		{"certs/web.pem", ""},
		{"./certs/../certs/web.pem", ""},
		{"certs/other.pem", "no key /lb/certs/other.pem in etcd"},
		{"/etc/ssl/web.pem", "not a key under /lb/"},
		{"../web.pem", "not a key under /lb/"},
	} {
		v, err := k.read(tc.name)
		switch {
		case tc.want == "" && (err != nil || string(v) != "pem"):
			t.Errorf("read(%q) = %q, %v; want \"pem\"", tc.name, v, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("read(%q) error = %v; want one saying %q", tc.name, err, tc.want)
		}
	}
}

// etcdServer is a real etcd (Debian's etcd-server) on loopback ports
// with a temporary data directory, and a client to it (as root when
// authentication is on).
type etcdServer struct {
	addr string // host:port of its client URL
	cli  *clientv3.Client
}

// etcdOption changes how startEtcd runs etcd.
type etcdOption func(*etcdSetup)

// etcdSetup is what the options of startEtcd ask for. The zero value is
// plain TCP without authentication.
type etcdSetup struct {
	pki   *etcdPKI // serve clients over TLS, requiring a certificate signed by pki's CA
	users []etcdUser
}

// startEtcd starts etcd for one test and stops it when the test ends.
// Without the binary the test is skipped, or fails under CI=true.
func startEtcd(t *testing.T, opts ...etcdOption) *etcdServer {
	t.Helper()
	var o etcdSetup
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no etcd binary (apt-get install etcd-server): %v", err)
		}
		t.Skipf("skipping: no etcd binary (apt-get install etcd-server, or run with CI=true to make this a failure): %v", err)
	}
	client, peer := fmt.Sprintf("127.0.0.1:%d", configPort(t)), fmt.Sprintf("127.0.0.1:%d", configPort(t))
	scheme, cfg := "http://", clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	var tlsArgs []string
	if o.pki != nil {
		scheme, cfg.TLS = "https://", o.pki.client
		tlsArgs = []string{"--cert-file", o.pki.serverCert, "--key-file", o.pki.serverKey,
			"--client-cert-auth", "--trusted-ca-file", o.pki.CA}
	}
	cmd := exec.Command(bin, append([]string{"--name", "t", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", scheme + client, "--advertise-client-urls", scheme + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "t=http://" + peer, "--log-level", "warn"}, tlsArgs...)...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if _, err := cli.Get(ctx, "ready"); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("etcd not ready in 20s: %v\n%s", err, logs)
		}
	}
	e := &etcdServer{addr: client, cli: cli}
	if o.users != nil {
		e.enableAuth(t, cfg, o.users)
	}
	return e
}

// put writes key=value and returns the revision written.
func (e *etcdServer) put(t *testing.T, key, value string) int64 {
	t.Helper()
	resp, err := e.cli.Put(context.Background(), key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// linkProxy is a TCP proxy the test owns between clb replicas and etcd.
// Cut closes every connection through it and refuses new ones (accepts
// and closes them at once) until Restore.
type linkProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// Cut breaks the link: open connections are closed, new ones refused.
func (p *linkProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore lets connections through again.
func (p *linkProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *linkProxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// pemPair returns a PEM certificate for cn followed by its key, the
// form one etcd key holds so that a certificate swap is one put.
func pemPair(t *testing.T, cn string) string {
	t.Helper()
	c, err := selfSigned(cn, []string{cn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

// -check validates a configuration in etcd as it would a file: the
// document, and the certificates it names as keys under the prefix.
func TestEtcdCheck(t *testing.T) {
	leakcheck.Check(t)
	e := startEtcd(t)
	url := "etcd://" + e.addr + "/lb"
	doc := fmt.Sprintf("BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"ServerCertificates: [{ServerCertificateId: web, CertificateFile: certs/web.pem, PrivateKeyFile: certs/web.pem}]\n"+
		"Listeners: [{ListenerProtocol: https, ListenerPort: %d, BackendServerPort: 9, ServerCertificateId: web, HealthCheck: \"off\"}]\n", configPort(t))
	check := func() (int, string) {
		out, err := exec.Command(clbBinary(t), "-check", "-config", url).CombinedOutput()
		var ee *exec.ExitError
		if err == nil {
			return 0, string(out)
		} else if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return ee.ExitCode(), string(out)
	}
	if code, out := check(); code != 1 || !strings.Contains(out, "no key /lb/config") {
		t.Errorf("-check with no document: exit %d, %q; want 1 and the missing key", code, out)
	}
	e.put(t, "/lb/config", doc)
	if code, out := check(); code != 1 || !strings.Contains(out, url+"/config:2: ServerCertificates[0].CertificateFile: \"certs/web.pem\": no key /lb/certs/web.pem in etcd") {
		t.Errorf("-check with no certificate: exit %d, %q; want 1 and the missing key, at its line", code, out)
	}
	e.put(t, "/lb/certs/web.pem", pemPair(t, "web.example"))
	if out, err := exec.Command(clbBinary(t), "-check", "-config", url).CombinedOutput(); err != nil || string(out) != url+"/config: ok (1 listeners)\n" {
		t.Errorf("-check: %v, %q", err, out)
	}
}
