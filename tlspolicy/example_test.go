package tlspolicy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lbkit/lbkit/tlspolicy"
)

// exampleCert makes a throwaway P-256 certificate for localhost signed by
// parent (self-signed when parent is nil) and returns it and its key as PEM.
func exampleCert(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (certPEM, keyPEM []byte, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		log.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), cert, key
}

// serveOnce accepts connections on a loopback listener with cfg, handing
// each handshaken connection's state to onConn; stop ends it.
func serveOnce(cfg *tls.Config, onConn func(tls.ConnectionState)) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				tc := tls.Server(c, cfg)
				defer tc.Close()
				if tc.Handshake() == nil {
					if onConn != nil {
						onConn(tc.ConnectionState())
					}
					_, _ = tc.Write([]byte("k"))
				}
			})
		}
	})
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

// dialOnce handshakes with addr and waits for the server's byte.
func dialOnce(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_, err = io.ReadFull(c, make([]byte, 1))
	return c.ConnectionState(), err
}

// Example serves a policy on loopback and shows what a client that also
// speaks older TLS gets, and that TLS 1.1 is refused.
func Example() {
	certPEM, keyPEM, leaf, _ := exampleCert("localhost", nil, nil, false)
	cert, err := tlspolicy.LoadCertificate(certPEM, keyPEM, nil)
	if err != nil {
		log.Fatal(err)
	}
	policy, err := tlspolicy.Lookup("tls_cipher_policy_1_2_strict")
	if err != nil {
		log.Fatal(err)
	}
	srv := policy.Config()
	srv.Certificates = []tls.Certificate{cert}
	addr, stop := serveOnce(srv, nil)
	defer stop()

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	cli := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS10,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}}
	cs, err := dialOnce(addr, cli)
	fmt.Println(tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), err)

	cli.MaxVersion = tls.VersionTLS11
	_, err = dialOnce(addr, cli)
	fmt.Println("TLS 1.1 refused:", err != nil)
	// Output:
	// TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 <nil>
	// TLS 1.1 refused: true
}

// ExampleLookup prints a policy's table, marking what Go cannot offer.
func ExampleLookup() {
	p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p)
	for _, s := range p.Suites {
		fmt.Printf("%-30s %#04x  %v\n", s.Name, s.ID, s.Support)
	}
	_, err = tlspolicy.Lookup("tls_cipher_policy_2_0")
	fmt.Println(err)
	// Output:
	// tls_cipher_policy_1_2_strict_with_1_3 (TLS 1.2, TLS 1.3)
	// ECDHE-ECDSA-AES128-GCM-SHA256  0xc02b  configurable
	// ECDHE-ECDSA-AES256-GCM-SHA384  0xc02c  configurable
	// ECDHE-ECDSA-AES128-SHA256      0xc023  configurable
	// ECDHE-ECDSA-AES256-SHA384      0xc024  not offered by Go
	// ECDHE-RSA-AES128-GCM-SHA256    0xc02f  configurable
	// ECDHE-RSA-AES256-GCM-SHA384    0xc030  configurable
	// ECDHE-RSA-AES128-SHA256        0xc027  configurable
	// ECDHE-RSA-AES256-SHA384        0xc028  not offered by Go
	// ECDHE-ECDSA-AES128-SHA         0xc009  configurable
	// ECDHE-ECDSA-AES256-SHA         0xc00a  configurable
	// ECDHE-RSA-AES128-SHA           0xc013  configurable
	// ECDHE-RSA-AES256-SHA           0xc014  configurable
	// TLS_AES_128_GCM_SHA256         0x1301  fixed (TLS 1.3)
	// TLS_AES_256_GCM_SHA384         0x1302  fixed (TLS 1.3)
	// TLS_CHACHA20_POLY1305_SHA256   0x1303  fixed (TLS 1.3)
	// TLS_AES_128_CCM_SHA256         0x1304  not offered by Go
	// TLS_AES_128_CCM_8_SHA256       0x1305  not offered by Go
	// tlspolicy: Policy "tls_cipher_policy_2_0": unknown policy; want one of tls_cipher_policy_1_0, tls_cipher_policy_1_1, tls_cipher_policy_1_2, tls_cipher_policy_1_2_strict, tls_cipher_policy_1_2_strict_with_1_3
}

func ExampleDefault() {
	p := tlspolicy.Default()
	fmt.Println(p, len(p.Suites), "suites,", len(p.CipherSuiteIDs()), "configured")
	// Output:
	// tls_cipher_policy_1_0 (TLS 1.0, TLS 1.1, TLS 1.2) 19 suites, 16 configured
}

func ExamplePolicies() {
	for _, p := range tlspolicy.Policies() {
		fmt.Printf("%s: %d suites, %d not offered by Go\n", p, len(p.Suites), len(p.Unsupported()))
	}
	// Output:
	// tls_cipher_policy_1_0 (TLS 1.0, TLS 1.1, TLS 1.2): 19 suites, 3 not offered by Go
	// tls_cipher_policy_1_1 (TLS 1.1, TLS 1.2): 19 suites, 3 not offered by Go
	// tls_cipher_policy_1_2 (TLS 1.2): 19 suites, 3 not offered by Go
	// tls_cipher_policy_1_2_strict (TLS 1.2): 12 suites, 2 not offered by Go
	// tls_cipher_policy_1_2_strict_with_1_3 (TLS 1.2, TLS 1.3): 17 suites, 4 not offered by Go
}

func ExampleNew() {
	p, err := tlspolicy.New(tlspolicy.Config{
		Name:     "modern",
		Versions: []string{"1.2", "1.3"},
		Suites: []string{
			"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
			"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
		},
	})
	fmt.Println(p, err)

	_, err = tlspolicy.New(tlspolicy.Config{Name: "bad", Versions: []string{"1.2"}, Suites: []string{"ECDHE-RSA-CHACHA20-POLY1305"}})
	var ce *tlspolicy.ConfigError
	if errors.As(err, &ce) {
		fmt.Println(ce.Field, ce.Value)
	}
	// Output:
	// modern (TLS 1.2, TLS 1.3) <nil>
	// Suites "ECDHE-RSA-CHACHA20-POLY1305"
}

func ExampleSuites() {
	n := map[tlspolicy.Support]int{}
	for _, s := range tlspolicy.Suites() {
		n[s.Support]++
	}
	fmt.Println(n[tlspolicy.Configurable], "configurable,", n[tlspolicy.FixedTLS13], "fixed TLS 1.3,", n[tlspolicy.NotOffered], "not offered by Go")
	// Output:
	// 16 configurable, 3 fixed TLS 1.3, 5 not offered by Go
}

func ExampleUnsupported() {
	for _, s := range tlspolicy.Unsupported() {
		fmt.Println(s.Name, s.IANAName)
	}
	// Output:
	// ECDHE-ECDSA-AES256-SHA384 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
	// ECDHE-RSA-AES256-SHA384 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
	// AES256-SHA256 TLS_RSA_WITH_AES_256_CBC_SHA256
	// TLS_AES_128_CCM_SHA256 TLS_AES_128_CCM_SHA256
	// TLS_AES_128_CCM_8_SHA256 TLS_AES_128_CCM_8_SHA256
}

func ExampleSupport_String() {
	fmt.Println(tlspolicy.Configurable, "|", tlspolicy.FixedTLS13, "|", tlspolicy.NotOffered)
	// Output:
	// configurable | fixed (TLS 1.3) | not offered by Go
}

func ExamplePolicy_Apply() {
	cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	p, _ := tlspolicy.Lookup(tlspolicy.Policy11)
	p.Apply(cfg)
	fmt.Println(tls.VersionName(cfg.MinVersion), "–", tls.VersionName(cfg.MaxVersion), len(cfg.CipherSuites), cfg.NextProtos)
	// Output:
	// TLS 1.1 – TLS 1.2 16 [h2 http/1.1]
}

func ExamplePolicy_Config() {
	cfg := tlspolicy.Default().Config()
	fmt.Println(tls.VersionName(cfg.MinVersion), cfg.WrapSession != nil, cfg.UnwrapSession != nil)
	// Output:
	// TLS 1.0 true true
}

func ExamplePolicy_AllowsVersion() {
	p, _ := tlspolicy.Lookup(tlspolicy.Policy12Strict)
	fmt.Println(p.AllowsVersion(tls.VersionTLS12), p.AllowsVersion(tls.VersionTLS13))
	fmt.Println(p.AllowsSuite("ECDHE-RSA-AES128-SHA"), p.AllowsSuite("AES128-SHA"))
	// Output:
	// true false
	// true false
}

func ExamplePolicy_Unsupported() {
	p, _ := tlspolicy.Lookup(tlspolicy.Policy12Strict)
	for _, s := range p.Unsupported() {
		fmt.Println(s.Name, s.Offered())
	}
	// Output:
	// ECDHE-ECDSA-AES256-SHA384 false
	// ECDHE-RSA-AES256-SHA384 false
}

func ExamplePolicy_String() {
	fmt.Println(tlspolicy.Default().String())
	// Output:
	// tls_cipher_policy_1_0 (TLS 1.0, TLS 1.1, TLS 1.2)
}

func ExampleLoadCertificate() {
	certPEM, keyPEM, _, _ := exampleCert("www.example.com", nil, nil, false)
	cert, err := tlspolicy.LoadCertificate(certPEM, keyPEM, nil)
	fmt.Println(cert.Leaf.Subject, err)

	_, err = tlspolicy.LoadCertificate(certPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), nil)
	fmt.Println(errors.Is(err, tlspolicy.ErrEncryptedKey))

	block, _ := pem.Decode(certPEM)
	_, err = tlspolicy.LoadCertificate(block.Bytes, keyPEM, nil) // DER
	fmt.Println(errors.Is(err, tlspolicy.ErrNotPEM), strings.Contains(err.Error(), "convert to PEM"))
	// Output:
	// CN=www.example.com <nil>
	// true
	// true true
}

// ExampleRequireClientCert runs mutual TLS on loopback and describes the
// verified client certificate as a listener would for backend headers.
func ExampleRequireClientCert() {
	caPEM, _, ca, caKey := exampleCert("Example Client CA", nil, nil, true)
	clientPEM, clientKeyPEM, _, _ := exampleCert("alice", ca, caKey, false)
	srvPEM, srvKeyPEM, srvLeaf, _ := exampleCert("localhost", nil, nil, false)

	pool, err := tlspolicy.LoadCAPool(caPEM)
	if err != nil {
		log.Fatal(err)
	}
	serverCert, _ := tlspolicy.LoadCertificate(srvPEM, srvKeyPEM, nil)
	srv := tlspolicy.Default().Config()
	srv.Certificates = []tls.Certificate{serverCert}
	tlspolicy.RequireClientCert(srv, pool)
	seen := make(chan tlspolicy.ClientCert, 1)
	addr, stop := serveOnce(srv, func(cs tls.ConnectionState) { seen <- tlspolicy.DescribeClientCert(cs) })
	defer stop()

	roots := x509.NewCertPool()
	roots.AddCert(srvLeaf)
	clientCert, _ := tls.X509KeyPair(clientPEM, clientKeyPEM)
	_, err = dialOnce(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	fmt.Println("without a certificate refused:", err != nil)
	_, err = dialOnce(addr, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
	d := <-seen
	fmt.Println(err, d.Subject, "|", d.Issuer, "|", d.Verify, len(d.Fingerprint))
	// Output:
	// without a certificate refused: true
	// <nil> CN=alice | CN=Example Client CA | SUCCESS 64
}

func ExampleLoadCAPool() {
	caPEM, _, _, _ := exampleCert("Example CA", nil, nil, true)
	pool, err := tlspolicy.LoadCAPool(caPEM)
	fmt.Println(pool != nil, err)
	_, err = tlspolicy.LoadCAPool([]byte("-----BEGIN DH PARAMETERS-----\nMAYCAQICAQI=\n-----END DH PARAMETERS-----\n"))
	fmt.Println(errors.Is(err, tlspolicy.ErrDHParams))
	// Output:
	// true <nil>
	// true
}

func ExampleDescribeClientCert() {
	fmt.Printf("%+v\n", tlspolicy.DescribeClientCert(tls.ConnectionState{}))
	// Output:
	// {Subject: Issuer: Fingerprint: Verify:NONE}
}

// ExampleLimitSessionLifetime resumes a session 299 s and 301 s after the
// full handshake, with the clock injected through tls.Config.Time.
func ExampleLimitSessionLifetime() {
	certPEM, keyPEM, leaf, _ := exampleCert("localhost", nil, nil, false)
	cert, _ := tlspolicy.LoadCertificate(certPEM, keyPEM, nil)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	srv := &tls.Config{Certificates: []tls.Certificate{cert}, Time: clock}
	if err := tlspolicy.LimitSessionLifetime(srv, tlspolicy.SessionLifetime); err != nil {
		log.Fatal(err)
	}
	addr, stop := serveOnce(srv, nil)
	defer stop()

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, wait := range []time.Duration{299 * time.Second, 301 * time.Second} {
		cli := &tls.Config{RootCAs: roots, ServerName: "localhost", Time: clock,
			ClientSessionCache: tls.NewLRUClientSessionCache(1)}
		first, _ := dialOnce(addr, cli)
		advance(wait)
		again, _ := dialOnce(addr, cli)
		fmt.Printf("after %v: first resumed %v, resumed %v\n", wait, first.DidResume, again.DidResume)
	}
	// Output:
	// after 4m59s: first resumed false, resumed true
	// after 5m1s: first resumed false, resumed false
}
