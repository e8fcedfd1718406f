package tlspolicy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// Keys are generated once per test binary: RSA 4096 takes seconds.
var (
	keyMu    sync.Mutex
	keyCache = map[string]*keyOnce{}
)

type keyOnce struct {
	once sync.Once
	key  crypto.Signer
}

// testKey returns the cached key of the given kind: rsa1024, rsa2048,
// rsa3072, rsa4096, p224, p256, p384, p521 or ed25519.
func testKey(tb testing.TB, kind string) crypto.Signer {
	tb.Helper()
	keyMu.Lock()
	k, ok := keyCache[kind]
	if !ok {
		k = &keyOnce{}
		keyCache[kind] = k
	}
	keyMu.Unlock()
	k.once.Do(func() { k.key = newKey(kind) })
	if k.key == nil {
		tb.Fatalf("unknown key kind %q", kind)
	}
	return k.key
}

func newKey(kind string) crypto.Signer {
	var (
		key crypto.Signer
		err error
	)
	switch kind {
	case "rsa1024":
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case "p224":
		key, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil
	}
	if err != nil {
		panic(err)
	}
	return key
}

// authority is a throwaway CA made with crypto/x509.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var serial int64 = 1000
var serialMu sync.Mutex

func nextSerial() *big.Int {
	serialMu.Lock()
	defer serialMu.Unlock()
	serial++
	return big.NewInt(serial)
}

func newCA(tb testing.TB, name string) *authority {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return newCAWithKey(tb, name, key, nil)
}

// newCAWithKey makes a CA; parent nil means self-signed (a root).
func newCAWithKey(tb testing.TB, name string, key crypto.Signer, parent *authority) *authority {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"lbkit test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &authority{cert: cert, key: key, pem: pemCert(der)}
}

// issue signs a leaf certificate for pub: a server certificate for
// localhost and 127.0.0.1, or a client certificate.
func (ca *authority) issue(tb testing.TB, cn string, pub crypto.PublicKey, client bool) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"lbkit test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func (ca *authority) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// pemKey encodes key as PKCS#8, or in the legacy form (PKCS#1, SEC 1).
func pemKey(tb testing.TB, key crypto.Signer, legacy bool) []byte {
	tb.Helper()
	if legacy {
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				tb.Fatal(err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// fixture is the shared PKI of the handshake tests: one root, an RSA 2048
// and an ECDSA P-256 server certificate.
type fixture struct {
	ca         *authority
	rsa, ecdsa tls.Certificate
}

var (
	fixtureOnce sync.Once
	theFixture  *fixture
)

func pki(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() {
		ca := newCA(tb, "lbkit test root")
		mk := func(kind string) tls.Certificate {
			key := testKey(tb, kind)
			der := ca.issue(tb, "localhost "+kind, key.Public(), false)
			leaf, _ := x509.ParseCertificate(der)
			return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		}
		theFixture = &fixture{ca: ca, rsa: mk("rsa2048"), ecdsa: mk("p256")}
	})
	if theFixture == nil {
		tb.Fatal("PKI fixture failed")
	}
	return theFixture
}

// clientConfig trusts the fixture's root and talks to localhost.
func (f *fixture) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: f.ca.pool(), ServerName: "localhost"}
}

// startServer runs a TLS server on 127.0.0.1 until the test ends. After a
// successful handshake it calls onConn (if set), writes one byte and closes.
func startServer(tb testing.TB, cfg *tls.Config, onConn func(tls.ConnectionState)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveOne(tls.Server(c, cfg), onConn)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func serveOne(tc *tls.Conn, onConn func(tls.ConnectionState)) {
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return
	}
	if onConn != nil {
		onConn(tc.ConnectionState())
	}
	_, _ = tc.Write([]byte("k"))
}

// handshake dials addr, completes a handshake and reads the server's byte,
// so that failures the server reports after the client's side of the
// handshake (TLS 1.3 client certificates) and TLS 1.3 tickets are seen.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	tc := tls.Client(c, cfg)
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return tc.ConnectionState(), err
	}
	return tc.ConnectionState(), nil
}

func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
