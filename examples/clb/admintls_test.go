package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/testpki"
)

// Bad admin credential flags stop the start with every problem at once,
// each naming its flag and file.
func TestAdminTLSFlags(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops:short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "admin CA")
	var out, errb bytes.Buffer
	if code := run([]string{"-admin-tokens", tokens, "-admin-client-ca", ca.File, "-admin", "127.0.0.1:0"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, errb.String())
	}
	for _, want := range []string{
		`tokens:1: token of "ops" is 5 bytes, want at least 16`,
		`admin: -admin-client-ca "` + ca.File + `" needs -admin-cert and -admin-key: client certificates exist only over TLS`,
	} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// clb serves its admin server over HTTPS with -admin-cert and -admin-key
// and takes a client certificate of -admin-client-ca as a credential,
// which the audit line names; plain HTTP is not served there.
func TestAdminOverTLS(t *testing.T) {
	ca := testpki.NewCA(t, "admin CA")
	cert, key := ca.Server(t, "clb-admin")
	alice := ca.Client(t, "alice", pkix.Name{CommonName: "alice"})
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops:"+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startClb(t, "-config", writeTCPConfig(t, "a.yaml", "AdminAddress: 127.0.0.1:0\n"),
		"-admin-tokens", tokens, "-admin-cert", cert, "-admin-key", key, "-admin-client-ca", ca.File)
	defer p.stop(t)
	m := regexp.MustCompile(`Admin: https://(127\.0\.0\.1:[1-9][0-9]*)/`).FindStringSubmatch(p.stdout)
	if m == nil {
		t.Fatalf("clb's output lacks the https admin address:\n%s", p.stdout)
	}
	admin := m[1]
	client := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots, Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}

	resp, err := client().Get("https://" + admin + "/status.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /status.json over TLS without a certificate: %v %v, want 200", resp, err)
	}
	var name string
	if n := regexp.MustCompile(`"name":"(tcp_[0-9]+)"`).FindStringSubmatch(readAll(t, resp)); n != nil {
		name = n[1]
	} else {
		t.Fatal("status.json names no tcp listener")
	}

	for _, tc := range []struct {
		name   string
		client *http.Client
		want   int
	}{
		{"no certificate", client(), 401},
		{"alice's certificate", client(alice), 200},
	} {
		resp, err := tc.client.Post("https://"+admin+"/api/listeners/"+name+"/backends/a/weight", "application/json", strings.NewReader(`{"weight": 7}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if body := readAll(t, resp); resp.StatusCode != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	waitLog(t, p, "admin change", 1)
	if !strings.Contains(p.stderr.String(), "who=cert:alice") {
		t.Errorf("the audit line does not name alice's certificate:\n%s", p.stderr)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + admin + "/status.json"); err == nil {
		body := readAll(t, resp)
		if resp.StatusCode != 400 {
			t.Errorf("plain HTTP to the HTTPS admin server: %d %q, want 400", resp.StatusCode, body)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
