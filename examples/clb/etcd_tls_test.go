package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/testpki"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdPKI is the certificates of an etcd serving its clients over TLS
// and requiring a client certificate, as PEM files: a CA, etcd's server
// certificate and a client certificate it signed, and another CA that
// signed nothing here.
type etcdPKI struct {
	CA, Cert, Key         string // the CA; clb's client certificate and key
	OtherCA               string // a CA that signed neither certificate
	serverCert, serverKey string
	client                *tls.Config // the test's own client: CA and client certificate
}

// newEtcdPKI writes a fresh CA, server and client certificate (ECDSA
// P-256, valid for an hour) under a temporary directory.
func newEtcdPKI(t *testing.T) *etcdPKI {
	t.Helper()
	dir := t.TempDir()
	p := &etcdPKI{
		CA: filepath.Join(dir, "ca.pem"), OtherCA: filepath.Join(dir, "other-ca.pem"),
		Cert: filepath.Join(dir, "clb.pem"), Key: filepath.Join(dir, "clb-key.pem"),
		serverCert: filepath.Join(dir, "etcd.pem"), serverKey: filepath.Join(dir, "etcd-key.pem"),
	}
	ca, caKey := testpki.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "etcd test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil, p.CA, "")
	testpki.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "other CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil, p.OtherCA, "")
	testpki.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, caKey, p.serverCert, p.serverKey)
	testpki.Issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "clb"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		ca, caKey, p.Cert, p.Key)
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	p.client = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
	return p
}

// withClientTLS makes etcd serve its clients over TLS with pki's server
// certificate and require a client certificate signed by pki's CA.
func withClientTLS(pki *etcdPKI) etcdOption { return func(s *etcdSetup) { s.pki = pki } }

// etcdUser is an etcd user allowed to read the keys under Read.
type etcdUser struct{ Name, Password, Read string }

// etcdRootPassword is the password of the root user withAuth creates;
// the test's client uses it.
const etcdRootPassword = "root-secret"

// withAuth turns etcd's authentication on, with a root user and users,
// each with a role that reads only its prefix.
func withAuth(users ...etcdUser) etcdOption {
	return func(s *etcdSetup) { s.users = append([]etcdUser{}, users...) }
}

// enableAuth adds root and users, turns authentication on and switches
// e's client to root; cfg is how that client reaches etcd.
func (e *etcdServer) enableAuth(t *testing.T, cfg clientv3.Config, users []etcdUser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.cli.UserAdd(ctx, "root", etcdRootPassword))
	must(e.cli.UserGrantRole(ctx, "root", "root"))
	for _, u := range users {
		role := "read-" + u.Name
		must(e.cli.RoleAdd(ctx, role))
		must(e.cli.RoleGrantPermission(ctx, role, u.Read, clientv3.GetPrefixRangeEnd(u.Read), clientv3.PermissionType(clientv3.PermRead)))
		must(e.cli.UserAdd(ctx, u.Name, u.Password))
		must(e.cli.UserGrantRole(ctx, u.Name, role))
	}
	must(e.cli.AuthEnable(ctx))
	cfg.Username, cfg.Password = "root", etcdRootPassword
	root, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	e.cli = root
}

// checkEtcd runs clb -check on the configuration at url with args, the
// password password and a 1 s -etcd-timeout, and wants it to pass if
// want is "", else to fail saying want.
func checkEtcd(t *testing.T, url, password, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(clbBinary(t), append([]string{"-check", "-config", url, "-etcd-timeout", "1s"}, args...)...)
	cmd.Env = append(os.Environ(), "CLB_ETCD_PASSWORD="+password)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("-check: %v after %v: %s", err, time.Since(start).Round(time.Millisecond), out)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	switch {
	case want == "" && (err != nil || string(out) != url+"/config: ok (1 listeners)\n"):
		t.Errorf("-check: %v, %q; want it to pass", err, out)
	case want != "" && (err == nil || !strings.Contains(string(out), want)):
		t.Errorf("-check: %v, %q; want a failure saying %q", err, out, want)
	}
}

// tcpDoc is a one-listener configuration on port.
func tcpDoc(port int) string {
	return fmt.Sprintf("BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Listeners: [{ListenerProtocol: tcp, ListenerPort: %d, BackendServerPort: 9, HealthCheck: \"off\"}]\n", port)
}

// backendDoc starts an HTTP backend answering "backend" (stopped with
// the test) and returns httpDoc for it.
func backendDoc(t *testing.T) func(port int) string {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend\n") }))
	t.Cleanup(backend.Close)
	bport := backend.Listener.Addr().(*net.TCPAddr).Port
	return func(port int) string { return httpDoc(port, bport) }
}

// httpDoc is a configuration of one http listener on port to the
// backend on 127.0.0.1:bport.
func httpDoc(port, bport int) string {
	return fmt.Sprintf("BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Listeners: [{ListenerProtocol: http, ListenerPort: %d, BackendServerPort: %d, HealthCheck: \"off\"}]\n", port, bport)
}

// follows starts clb with args on a one-listener configuration in e
// under /lb, then moves the listener with one put, and checks that the
// running clb follows: its status reaches the put's revision and the
// new port serves the backend.
func follows(t *testing.T, e *etcdServer, args ...string) {
	t.Helper()
	doc := backendDoc(t)
	first, second := configPort(t), configPort(t)
	e.put(t, "/lb/config", doc(first))
	p := startClb(t, append([]string{"-admin", "127.0.0.1:0", "-etcd-probe", "200ms"}, args...)...)
	r := asReplica(t, p, "127.0.0.1")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, line := firstLine(t, c, fmt.Sprintf("http://127.0.0.1:%d/", first)); line != "backend" {
		t.Errorf("the listener read from etcd answered %q", line)
	}
	rev := e.put(t, "/lb/config", doc(second))
	fleet{r}.applied(t, rev)
	if _, line := firstLine(t, c, fmt.Sprintf("http://127.0.0.1:%d/", second)); line != "backend" {
		t.Errorf("the listener moved through etcd at revision %d answered %q", rev, line)
	}
	if cs := r.status(t).Config; !cs.Connected || cs.Error != "" {
		t.Errorf("status after the move: %+v", cs)
	}
	p.stop(t)
}

// Over TLS with a client certificate, clb -check and a running clb read
// the configuration and follow it; a wrong CA, a missing client
// certificate or plain TCP to a TLS etcd fail with an error naming the
// flag to fix.
func TestEtcdTLS(t *testing.T) {
	leakcheck.Check(t)
	pki := newEtcdPKI(t)
	e := startEtcd(t, withClientTLS(pki))
	url := "etcd://" + e.addr + "/lb"
	e.put(t, "/lb/config", tcpDoc(configPort(t)))

	for _, tc := range []struct {
		name string
		args []string
		want string // "" for success
	}{
		{"CA and client certificate", []string{"-etcd-cacert", pki.CA, "-etcd-cert", pki.Cert, "-etcd-key", pki.Key}, ""},
		{"wrong CA", []string{"-etcd-cacert", pki.OtherCA, "-etcd-cert", pki.Cert, "-etcd-key", pki.Key}, "-etcd-cacert " + pki.OtherCA + " does not hold the CA of its certificate"},
		{"no client certificate", []string{"-etcd-cacert", pki.CA}, "it wants a client certificate, give one with -etcd-cert and -etcd-key"},
		{"plain TCP", nil, "serves TLS: give the CA of its certificate with -etcd-cacert"},
		// The client authenticates as it connects, so the error comes from another call.
		{"wrong CA, with a user", []string{"-etcd-cacert", pki.OtherCA, "-etcd-cert", pki.Cert, "-etcd-key", pki.Key, "-etcd-user", "clb"}, "-etcd-cacert " + pki.OtherCA + " does not hold"},
		{"certificate without key", []string{"-etcd-cacert", pki.CA, "-etcd-cert", pki.Cert}, "-etcd-cert and -etcd-key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkEtcd(t, url, "secret", tc.want, tc.args...) })
	}
	follows(t, e, "-config", url, "-etcd-cacert", pki.CA, "-etcd-cert", pki.Cert, "-etcd-key", pki.Key)
}

// With authentication on, clb reads and follows the configuration as a
// user whose role reads the prefix, the password from
// $CLB_ETCD_PASSWORD; a wrong password, no user, or a user who may not
// read the prefix fail with an error saying so.
func TestEtcdAuth(t *testing.T) {
	leakcheck.Check(t)
	e := startEtcd(t, withAuth(etcdUser{"clb", "clb-secret", "/lb/"}, etcdUser{"other", "other-secret", "/other/"}))
	url := "etcd://" + e.addr + "/lb"
	e.put(t, "/lb/config", tcpDoc(configPort(t)))

	for _, tc := range []struct {
		name, user, password string
		want                 string // "" for success
	}{
		{"user and password", "clb", "clb-secret", ""},
		{"wrong password", "clb", "wrong", `-etcd-user "clb" and $CLB_ETCD_PASSWORD: etcdserver: authentication failed`},
		{"no password", "clb", "", `-etcd-user "clb": $CLB_ETCD_PASSWORD is empty`},
		{"no user", "", "", "etcd requires authentication (set -etcd-user and $CLB_ETCD_PASSWORD)"},
		{"no read permission", "other", "other-secret", `permission denied: etcd user "other" may not read /lb/`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkEtcd(t, url, tc.password, tc.want, "-etcd-user", tc.user) })
	}
	t.Setenv("CLB_ETCD_PASSWORD", "clb-secret")
	follows(t, e, "-config", url, "-etcd-user", "clb")
}

// linkProblem names the flag to fix for each way a link to etcd fails
// that the tests with a real etcd do not reach.
func TestEtcdLinkProblem(t *testing.T) {
	leakcheck.Check(t)
	pki := newEtcdPKI(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.EnableHTTP2 = true // etcd's ALPN
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS() // with a certificate for example.com and 127.0.0.1
	defer tlsSrv.Close()
	closed := fmt.Sprintf("127.0.0.1:%d", configPort(t))
	_, port, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	flags := etcdOptions{CACert: pki.CA, Cert: pki.Cert, Key: pki.Key, Timeout: 5 * time.Second}
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	for _, tc := range []struct {
		name, host string
		tls        *tls.Config
		systemCAs  bool // no -etcd-cacert
		want       string
	}{
		{"nothing listens", closed, pki.client, false, "connection refused"},
		{"TLS flags, plain etcd", plain.Listener.Addr().String(), pki.client, false, "does not serve TLS: drop -etcd-cacert, -etcd-cert and -etcd-key"},
		{"certificate for another name", "localhost:" + port, &tls.Config{RootCAs: roots}, false, "its certificate does not name the address in -config"},
		{"system CAs", tlsSrv.Listener.Addr().String(), &tls.Config{}, true, "give the CA of its certificate with -etcd-cacert"},
		{"a good link", tlsSrv.Listener.Addr().String(), &tls.Config{RootCAs: roots}, false, ""},
		{"plain to plain", plain.Listener.Addr().String(), nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := flags
			if tc.systemCAs {
				o.CACert = ""
			}
			got := o.linkProblem(tc.host, tc.tls)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("linkProblem(%s) = %q, want one saying %q", tc.host, got, tc.want)
			}
		})
	}
}
