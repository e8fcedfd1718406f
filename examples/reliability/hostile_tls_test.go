package reliability_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/internal/testpki"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An HTTPS listener refuses clients below its policy's versions or
// suites and, under mutual TLS, clients without a trusted certificate;
// it closes connections that do not speak TLS; and none of it leaves a
// goroutine behind.
func TestHTTPSHostileClients(t *testing.T) {
	server, client := testpki.LoopbackTLS(t, "http/1.1")
	b := startBackend(t, "b")
	l := addListener(t, listener.Config{Protocol: listener.HTTPS, Group: newGroup(t, b),
		HTTP: listener.HTTPOptions{Certificate: &server.Certificates[0], HeaderTimeout: time.Second}})
	with := func(f func(*tls.Config)) *tls.Config { c := client.Clone(); f(c); return c }
	tls11 := with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 })
	require.NoError(t, tlsGet(addr(l), tls11), "TLS 1.1 under the default policy, tls_cipher_policy_1_0")
	before := measure()

	policy, err := tlspolicy.New(tlspolicy.Config{Name: "hostile", Versions: []string{"1.2"}, Suites: []string{"ECDHE-ECDSA-AES256-GCM-SHA384"}})
	require.NoError(t, err)
	require.NoError(t, l.SetTLSPolicy(policy))
	trusted, untrusted := clientCert(t, "trusted"), clientCert(t, "untrusted")
	suites := func(ids ...uint16) func(*tls.Config) {
		return func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, ids }
	}
	tests := []struct {
		name string
		mtls bool // client CAs set
		cfg  *tls.Config
		ok   bool
	}{
		{"TLS 1.2 with the policy's suite", false, with(suites(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)), true},
		{"TLS 1.3 client", false, client, true},
		{"capped at TLS 1.1", false, tls11, false},
		{"capped at TLS 1.0", false, with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }), false},
		{"only suites the policy forbids", false, with(suites(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305)), false},
		{"mTLS: trusted certificate", true, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{trusted} }), true},
		{"mTLS: no certificate", true, client, false},
		{"mTLS: untrusted certificate", true, with(func(c *tls.Config) { c.Certificates = []tls.Certificate{untrusted} }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cas *x509.CertPool
			if tt.mtls {
				cas = x509.NewCertPool()
				cas.AddCert(trusted.Leaf)
			}
			require.NoError(t, l.SetClientCAs(cas))
			seen := len(b.seen())
			err := tlsGet(addr(l), tt.cfg)
			reached := len(b.seen()) - seen
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
			assert.Equal(t, tt.ok, reached == 1, "backend reached %d times", reached)
			reliability.Record(t, "a GET over TLS, policy hostile (TLS 1.2, ECDHE-ECDSA-AES256-GCM-SHA384): "+tt.name,
				"error %v, backend reached %d times", err, reached)
		})
	}

	hello := append([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), make([]byte, 32)...)
	raw := []struct{ name, bytes string }{
		{"garbage bytes", "\x00\xffhostile garbage\r\n\r\n"},
		{"truncated ClientHello", string(hello)},
		{"plain HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"record longer than TLS allows", "\x16\x03\x01\xff\xff" + string(make([]byte, 64))},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			status, closed := rawRequest(t, addr(l), tt.bytes)
			took := time.Since(start)
			assert.True(t, closed, "connection closed")
			assert.NotEqual(t, 200, status)
			reliability.Record(t, fmt.Sprintf("%q on the TLS port (HeaderTimeout 1s)", tt.bytes), "HTTP status %d, closed after %v", status, took.Round(time.Millisecond))
		})
	}
	after := settle(before.goroutines)
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after the hostile clients")
	reliability.Record(t, "all of the above on one HTTPS listener", "goroutines %d before, %d after; fds %d before, %d after",
		before.goroutines, after.goroutines, before.fds, after.fds)
}

// tlsGet sends one GET over TLS to addr and wants a 200.
func tlsGet(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// clientCert returns a self-signed ECDSA client certificate for cn.
func clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
