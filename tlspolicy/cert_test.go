package tlspolicy_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/internal/errtest"
	"github.com/lbkit/lbkit/tlspolicy"
)

// TestLoadCertificateAccepted loads every key type and size docs/model.md §9 allows,
// in both PKCS#8 and the legacy encodings, and handshakes with each.
func TestLoadCertificateAccepted(t *testing.T) {
	f := pki(t)
	kinds := []string{"rsa1024", "rsa2048", "rsa4096", "p256", "p384", "p521"}
	// Generate the slow keys side by side.
	var wg sync.WaitGroup
	for _, k := range kinds {
		wg.Go(func() { testKey(t, k) })
	}
	wg.Wait()
	for _, kind := range kinds {
		for _, legacy := range []bool{false, true} {
			name := kind + "/pkcs8"
			if legacy {
				name = kind + "/legacy"
			}
			t.Run(name, func(t *testing.T) {
				key := testKey(t, kind)
				certPEM := pemCert(f.ca.issue(t, "localhost", key.Public(), false))
				cert, err := tlspolicy.LoadCertificate(certPEM, pemKey(t, key, legacy), nil)
				if err != nil {
					t.Fatalf("LoadCertificate(%s) = %v", name, err)
				}
				if cert.Leaf == nil || len(cert.Certificate) != 1 {
					t.Fatalf("LoadCertificate(%s): Leaf %v, %d certificates", name, cert.Leaf != nil, len(cert.Certificate))
				}
				if legacy {
					return // one handshake per key is enough
				}
				srv := tlspolicy.Default().Config()
				srv.Certificates = []tls.Certificate{cert}
				addr := startServer(t, srv, nil)
				if _, err := handshake(addr, f.clientConfig()); err != nil {
					t.Fatalf("handshake with %s certificate: %v", kind, err)
				}
			})
		}
	}
}

func TestLoadCertificateChain(t *testing.T) {
	root := newCA(t, "chain root")
	inter := newCAWithKey(t, "chain intermediate", testKey(t, "p384"), root)
	key := testKey(t, "p256")
	leafPEM := pemCert(inter.issue(t, "localhost", key.Public(), false))
	keyPEM := pemKey(t, key, false)

	for _, tc := range []struct {
		name           string
		certPEM, chain []byte
		wantCerts      int
	}{
		{"separate chain", leafPEM, inter.pem, 2},
		{"chain in cert input", append(bytes.Clone(leafPEM), inter.pem...), nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tlspolicy.LoadCertificate(tc.certPEM, keyPEM, tc.chain)
			if err != nil {
				t.Fatal(err)
			}
			if len(cert.Certificate) != tc.wantCerts {
				t.Fatalf("%d certificates, want %d", len(cert.Certificate), tc.wantCerts)
			}
			srv := tlspolicy.Default().Config()
			srv.Certificates = []tls.Certificate{cert}
			addr := startServer(t, srv, nil)
			cli := &tls.Config{RootCAs: root.pool(), ServerName: "localhost"}
			if _, err := handshake(addr, cli); err != nil {
				t.Fatalf("handshake via intermediate: %v", err)
			}
		})
	}
}

func TestLoadCertificateRefused(t *testing.T) {
	f := pki(t)
	ecKey := testKey(t, "p256")
	certPEM := pemCert(f.ca.issue(t, "localhost", ecKey.Public(), false))
	keyPEM := pemKey(t, ecKey, false)
	certDER := f.ecdsa.Certificate[0]
	dh := pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x02}})
	legacyEnc := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   bytes.Repeat([]byte{0x5a}, 64)})
	pkcs8Enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: bytes.Repeat([]byte{0x5a}, 64)})
	// A PKCS#12 file is BER: a SEQUENCE with a long-form length.
	pkcs12 := append([]byte{0x30, 0x82, 0x09, 0x8f, 0x02, 0x01, 0x03}, bytes.Repeat([]byte{1}, 32)...)

	certFor := func(kind string) ([]byte, []byte) {
		k := testKey(t, kind)
		return pemCert(f.ca.issue(t, "localhost", k.Public(), false)), pemKey(t, k, false)
	}
	rsa3072Cert, rsa3072Key := certFor("rsa3072")
	p224Cert, p224Key := certFor("p224")
	edCert, edKey := certFor("ed25519")
	otherEC := pemKey(t, testKey(t, "p384"), false)
	rsaKey := pemKey(t, testKey(t, "rsa2048"), true)

	for _, tc := range []struct {
		name             string
		cert, key, chain []byte
		want             error
		field            string
		mention          string // the message must contain this
	}{
		{"DER certificate", certDER, keyPEM, nil, tlspolicy.ErrNotPEM, "Cert", "convert to PEM"},
		{"PKCS#12 certificate", pkcs12, keyPEM, nil, tlspolicy.ErrNotPEM, "Cert", "PKCS#12"},
		{"empty certificate", nil, keyPEM, nil, tlspolicy.ErrNotPEM, "Cert", "no PEM block"},
		{"DER key", certPEM, []byte{0x30, 0x81, 0x87, 0x02, 0x01}, nil, tlspolicy.ErrNotPEM, "Key", "convert to PEM"},
		{"text key", certPEM, []byte("hello"), nil, tlspolicy.ErrNotPEM, "Key", "no PEM block"},
		{"DH params in cert", append(bytes.Clone(certPEM), dh...), keyPEM, nil, tlspolicy.ErrDHParams, "Cert", "DH PARAMETERS"},
		{"DH params as key", certPEM, dh, nil, tlspolicy.ErrDHParams, "Key", "DH PARAMETERS"},
		{"DH params in chain", certPEM, keyPEM, dh, tlspolicy.ErrDHParams, "Chain", "DH PARAMETERS"},
		{"legacy encrypted key", certPEM, legacyEnc, nil, tlspolicy.ErrEncryptedKey, "Key", "decrypt"},
		{"PKCS#8 encrypted key", certPEM, pkcs8Enc, nil, tlspolicy.ErrEncryptedKey, "Key", "ENCRYPTED PRIVATE KEY"},
		{"key of another certificate", certPEM, otherEC, nil, tlspolicy.ErrKeyMismatch, "Key", "does not match"},
		{"RSA key for ECDSA certificate", certPEM, rsaKey, nil, tlspolicy.ErrKeyMismatch, "Key", "ECDSA P-256"},
		{"RSA 3072", rsa3072Cert, rsa3072Key, nil, tlspolicy.ErrUnsupportedKey, "Key", "RSA 3072"},
		{"ECDSA P-224", p224Cert, p224Key, nil, tlspolicy.ErrUnsupportedKey, "Key", "P-224"},
		{"Ed25519", edCert, edKey, nil, tlspolicy.ErrUnsupportedKey, "Key", "ed25519"},
		{"Ed25519 cert, ECDSA key", edCert, keyPEM, nil, tlspolicy.ErrUnsupportedKey, "Cert", "ed25519"},
		{"no certificate", keyPEM, keyPEM, nil, tlspolicy.ErrNoCertificate, "Cert", "no CERTIFICATE"},
		{"no key", certPEM, certPEM, nil, tlspolicy.ErrNoPrivateKey, "Key", "no PRIVATE KEY"},
		{"garbage certificate", pemCert([]byte{0x30, 0x00}), keyPEM, nil, tlspolicy.ErrMalformed, "Cert", "does not parse"},
		{"two keys", certPEM, append(bytes.Clone(keyPEM), keyPEM...), nil, tlspolicy.ErrMalformed, "Key", "second private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlspolicy.LoadCertificate(tc.cert, tc.key, tc.chain)
			if !errors.Is(err, tc.want) {
				t.Fatalf("LoadCertificate = %v, want %v", err, tc.want)
			}
			var ce *tlspolicy.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("LoadCertificate = %#v, want a ConfigError for %s", err, tc.field)
			}
			errtest.OnePrefix(t, "tlspolicy", map[string]error{tc.name: err})
			msg := err.Error()
			if !strings.HasPrefix(msg, "tlspolicy: "+tc.field) || !strings.Contains(msg, tc.mention) {
				t.Fatalf("message %q: want prefix %q and %q", msg, "tlspolicy: "+tc.field, tc.mention)
			}
			if b, _ := pem.Decode(tc.key); b != nil && len(b.Bytes) >= 12 {
				if strings.Contains(msg, base64.StdEncoding.EncodeToString(b.Bytes[:12])) {
					t.Fatalf("message %q contains key material", msg)
				}
			}
		})
	}
}

func TestLoadCAPool(t *testing.T) {
	a, b := newCA(t, "a"), newCA(t, "b")
	pool, err := tlspolicy.LoadCAPool(append(bytes.Clone(a.pem), b.pem...))
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Equal(func() *x509.CertPool { p := a.pool(); p.AddCert(b.cert); return p }()) {
		t.Error("pool does not hold both CAs")
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"DER", a.cert.Raw, tlspolicy.ErrNotPEM},
		{"DH", pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: []byte{1}}), tlspolicy.ErrDHParams},
		{"key only", pemKey(t, testKey(t, "p256"), false), tlspolicy.ErrNoCertificate},
	} {
		_, err := tlspolicy.LoadCAPool(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("LoadCAPool(%s) = %v, want %v", tc.name, err, tc.want)
		}
		errtest.OnePrefix(t, "tlspolicy", map[string]error{tc.name: err})
	}
}

// Refused non-PEM input is described in words, and messages point at
// nothing outside the repository.
func TestRefusedInputInWords(t *testing.T) {
	for _, tc := range []struct {
		name string
		cert []byte
		want string
	}{
		{"DER", []byte{0x30, 0x82, 0x03, 0x42, 0x30}, `tlspolicy: Cert "5 bytes of binary data": not PEM but binary DER`},
		{"text", []byte("hello"), `tlspolicy: Cert "5 bytes without a -----BEGIN line": no PEM block found`},
		{"empty", nil, `tlspolicy: Cert "empty input": no PEM block found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlspolicy.LoadCertificate(tc.cert, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("LoadCertificate = %v, want a message starting %q", err, tc.want)
			}
		})
	}
	_, err := tlspolicy.New(tlspolicy.Config{Name: "p", Versions: []string{"1.2"}, Suites: []string{"NOPE"}})
	if err == nil || strings.Contains(err.Error(), "SPEC") || !strings.Contains(err.Error(), "ECDHE-RSA-AES128-GCM-SHA256") {
		t.Errorf("New(NOPE) = %v, want a message naming a valid suite and no outside document", err)
	}
}
