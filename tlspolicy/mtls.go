package tlspolicy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
)

// RequireClientCert turns on mutual TLS on the server cfg: every client
// must present a certificate that chains to one in cas, or the handshake
// fails. Build cas with LoadCAPool.
func RequireClientCert(cfg *tls.Config, cas *x509.CertPool) {
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = cas
}

// Verification results of ClientCert, named like nginx's $ssl_client_verify.
const (
	VerifySuccess = "SUCCESS" // a certificate was presented and verified
	VerifyFailed  = "FAILED"  // a certificate was presented but not verified
	VerifyNone    = "NONE"    // no certificate was presented
)

// ClientCert describes a client certificate for the headers a listener
// sends to backends under mutual TLS (docs/model.md §9).
type ClientCert struct {
	Subject     string // subject DN, RFC 2253 form, e.g. "CN=alice,O=Example"
	Issuer      string // issuer DN, RFC 2253 form
	Fingerprint string // SHA-256 of the DER certificate, lowercase hex
	Verify      string // VerifySuccess, VerifyFailed or VerifyNone
}

// DescribeClientCert describes the leaf client certificate of a server-side
// connection state; with no client certificate only Verify is set (NONE).
func DescribeClientCert(cs tls.ConnectionState) ClientCert {
	if len(cs.PeerCertificates) == 0 {
		return ClientCert{Verify: VerifyNone}
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	d := ClientCert{
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		Fingerprint: hex.EncodeToString(sum[:]),
		Verify:      VerifyFailed,
	}
	if len(cs.VerifiedChains) > 0 {
		d.Verify = VerifySuccess
	}
	return d
}
