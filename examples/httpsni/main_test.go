package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/exampletest"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/tlspolicy"
)

// The example with and without mutual TLS: each SNI name gets the
// certificate of its extension domain or the default, a verifying client
// reaches the backend under both domains, the curl files are written, and
// under mutual TLS a client without a certificate is refused while one with
// the generated certificate is passed on with its subject.
func TestHTTPSNI(t *testing.T) {
	leakcheck.Check(t)
	for _, mtls := range []bool{false, true} {
		name := "tls"
		if mtls {
			name = "mtls"
		}
		t.Run(name, func(t *testing.T) {
			var out exampletest.Output
			info, stop := start(t, config{Listen: "127.0.0.1:0", MTLS: mtls, Policy: tlspolicy.Policy12StrictWith13}, &out)

			for _, want := range []string{
				"a.example.test     → CN=a.example.test\n",
				"x.b.example.test   → CN=*.b.example.test\n",
				"b.example.test     → CN=default.example.test\n",
				"www.other.test     → CN=default.example.test\n",
				"(no SNI)           → CN=default.example.test\n",
				"--resolve a.example.test:",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, &out)
				}
			}
			files := []string{"ca.pem"}
			if mtls {
				files = append(files, "client.pem", "client-key.pem")
			}
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(info.dir, f)); err != nil {
					t.Errorf("curl file: %v", err)
				}
			}
			// The client key file loads back as the certificate curl uses.
			if mtls {
				certPEM, _ := os.ReadFile(filepath.Join(info.dir, "client.pem"))
				keyPEM, _ := os.ReadFile(filepath.Join(info.dir, "client-key.pem"))
				if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
					t.Errorf("client.pem, client-key.pem: %v", err)
				}
			}

			for _, host := range []string{"a.example.test", "x.b.example.test"} {
				body, err := fetch(info, host, info.client)
				if err != nil {
					t.Errorf("GET https://%s/: %v", host, err)
					continue
				}
				want := "backend: host " + host
				if mtls {
					want = "client certificate CN=alice,O=lbkit demo (SUCCESS)"
				}
				if !strings.Contains(body, want) {
					t.Errorf("GET https://%s/ = %q, want %q in it", host, body, want)
				}
			}
			if mtls {
				if body, err := fetch(info, "a.example.test", nil); err == nil {
					t.Errorf("GET without a client certificate = %q, want refused", body)
				}
			}
			stop()
			if !strings.Contains(out.String(), "httpsni: stopping") {
				t.Errorf("output lacks the stop line:\n%s", &out)
			}
			if _, err := os.Stat(info.dir); !os.IsNotExist(err) {
				t.Errorf("temporary directory %s left behind: %v", info.dir, err)
			}
		})
	}
}

// fetch GETs https://host/ from the listener, verifying its certificate
// against the demo CA, optionally with a client certificate.
func fetch(info readyInfo, host string, client *tls.Certificate) (string, error) {
	conf := &tls.Config{RootCAs: info.ca.pool(), ServerName: host}
	if client != nil {
		conf.Certificates = []tls.Certificate{*client}
	}
	tr := &http.Transport{
		TLSClientConfig:   conf,
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, info.addr) // curl's --resolve
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// start runs the example in the background (see exampletest.Start).
func start(t *testing.T, cfg config, out io.Writer) (readyInfo, func()) {
	return exampletest.Start(t, func(ctx context.Context, ready func(readyInfo)) error {
		cfg.ready = ready
		return run(ctx, cfg, out)
	})
}
