package tlspolicy_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"testing"

	"github.com/lbkit/lbkit/tlspolicy"
)

func TestMutualTLS(t *testing.T) {
	f := pki(t)
	clientCA := newCA(t, "client root")
	otherCA := newCA(t, "other root")
	pool, err := tlspolicy.LoadCAPool(clientCA.pem)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, "p256")
	goodDER := clientCA.issue(t, "alice", key.Public(), true)
	good := tls.Certificate{Certificate: [][]byte{goodDER}, PrivateKey: key}
	bad := tls.Certificate{Certificate: [][]byte{otherCA.issue(t, "mallory", key.Public(), true)}, PrivateKey: key}

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
			if err != nil {
				t.Fatal(err)
			}
			srv := p.Config()
			srv.Certificates = []tls.Certificate{f.ecdsa}
			tlspolicy.RequireClientCert(srv, pool)
			seen := make(chan tlspolicy.ClientCert, 1)
			addr := startServer(t, srv, func(cs tls.ConnectionState) { seen <- tlspolicy.DescribeClientCert(cs) })

			for _, tc := range []struct {
				name  string
				certs []tls.Certificate
				ok    bool
			}{
				{"good client", []tls.Certificate{good}, true},
				{"no certificate", nil, false},
				{"other CA", []tls.Certificate{bad}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cli := f.clientConfig()
					cli.MinVersion, cli.MaxVersion = version, version
					cli.Certificates = tc.certs
					_, err := handshake(addr, cli)
					if tc.ok != (err == nil) {
						t.Fatalf("handshake = %v, want success %v", err, tc.ok)
					}
					if !tc.ok {
						return
					}
					d := <-seen
					sum := sha256.Sum256(goodDER)
					want := tlspolicy.ClientCert{
						Subject:     "CN=alice,O=lbkit test",
						Issuer:      "CN=client root,O=lbkit test",
						Fingerprint: hex.EncodeToString(sum[:]),
						Verify:      tlspolicy.VerifySuccess,
					}
					if d != want {
						t.Fatalf("DescribeClientCert = %+v, want %+v", d, want)
					}
				})
			}
		})
	}
}

func TestDescribeClientCertStates(t *testing.T) {
	if got := tlspolicy.DescribeClientCert(tls.ConnectionState{}); got != (tlspolicy.ClientCert{Verify: tlspolicy.VerifyNone}) {
		t.Errorf("no certificate: %+v", got)
	}
	f := pki(t)
	leaf := f.ecdsa.Leaf
	got := tlspolicy.DescribeClientCert(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}})
	if got.Verify != tlspolicy.VerifyFailed || got.Subject != leaf.Subject.String() {
		t.Errorf("unverified certificate: %+v, want Verify FAILED", got)
	}
}
