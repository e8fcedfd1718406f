package tlspolicy_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/tlspolicy"
)

var loadErrors = []error{tlspolicy.ErrNotPEM, tlspolicy.ErrDHParams, tlspolicy.ErrEncryptedKey,
	tlspolicy.ErrKeyMismatch, tlspolicy.ErrUnsupportedKey, tlspolicy.ErrNoCertificate,
	tlspolicy.ErrNoPrivateKey, tlspolicy.ErrMalformed}

// FuzzLoadCertificate feeds arbitrary certificate and key input to
// LoadCertificate and LoadCAPool: they must never panic, every error must
// be a ConfigError wrapping one of the sentinels, and a success must give
// a certificate whose key matches its leaf.
func FuzzLoadCertificate(f *testing.F) {
	fx := pki(f)
	key := testKey(f, "p256")
	certPEM := pemCert(fx.ca.issue(f, "localhost", key.Public(), false))
	keyPEM := pemKey(f, key, false)
	rsaKey := testKey(f, "rsa1024") // cheapest RSA to parse: keeps minimization fast
	rsaCert := pemCert(fx.ca.issue(f, "localhost", rsaKey.Public(), false))
	dh := pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x02}})
	enc := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1, 2, 3}})

	f.Add(certPEM, keyPEM)
	f.Add(rsaCert, pemKey(f, rsaKey, true))
	f.Add(append(bytes.Clone(certPEM), fx.ca.pem...), pemKey(f, key, true))
	f.Add(fx.ecdsa.Certificate[0], keyPEM)
	f.Add(certPEM, dh)
	f.Add(certPEM, enc)
	f.Add(certPEM, pemKey(f, rsaKey, false))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})

	f.Fuzz(func(t *testing.T, certIn, keyIn []byte) {
		cert, err := tlspolicy.LoadCertificate(certIn, keyIn, nil)
		checkLoadError(t, err)
		if err == nil {
			if cert.Leaf == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
				t.Fatalf("LoadCertificate succeeded with an incomplete certificate")
			}
			if _, err := tls.X509KeyPair(pemCert(cert.Certificate[0]), keyIn); err != nil && !strings.Contains(err.Error(), "PEM") {
				// crypto/tls's own check must agree the key matches.
				t.Fatalf("accepted a pair crypto/tls refuses: %v", err)
			}
		}
		_, err = tlspolicy.LoadCAPool(certIn)
		checkLoadError(t, err)
	})
}

func checkLoadError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ce *tlspolicy.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a ConfigError", err)
	}
	for _, s := range loadErrors {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps none of the sentinels", err)
}

// FuzzNew checks that New never panics and that any policy it
// accepts configures only suites crypto/tls has.
func FuzzNew(f *testing.F) {
	f.Add("1.2", "ECDHE-RSA-AES128-GCM-SHA256,AES128-SHA")
	f.Add("1.0,1.1,1.2", "DES-CBC3-SHA")
	f.Add("1.2,1.3", "ECDHE-ECDSA-AES128-SHA,TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,TLS_AES_128_CCM_SHA256")
	f.Add("TLSv1.3", "TLS_AES_128_GCM_SHA256")
	f.Add("1.0,1.2", "AES128-SHA")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, versions, suites string) {
		p, err := tlspolicy.New(tlspolicy.Config{Name: "fuzz", Versions: strings.Split(versions, ","), Suites: strings.Split(suites, ",")})
		if err != nil {
			var ce *tlspolicy.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a ConfigError", err)
			}
			return
		}
		cfg := p.Config()
		if cfg.MinVersion < tls.VersionTLS10 || cfg.MaxVersion > tls.VersionTLS13 || cfg.MinVersion > cfg.MaxVersion {
			t.Fatalf("versions %x–%x", cfg.MinVersion, cfg.MaxVersion)
		}
		if cfg.CipherSuites == nil || len(p.Suites) > tlspolicy.MaxCustomSuites {
			t.Fatalf("policy %+v", p)
		}
		for _, id := range cfg.CipherSuites {
			if strings.HasPrefix(tls.CipherSuiteName(id), "0x") {
				t.Fatalf("configured %#04x, unknown to crypto/tls", id)
			}
		}
	})
}
