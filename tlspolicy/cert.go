package tlspolicy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// LoadCertificate builds a server certificate from PEM input: certPEM holds
// the leaf certificate, optionally followed by intermediates; keyPEM holds
// its private key (PKCS#1, SEC 1 or PKCS#8); chainPEM, which may be nil,
// holds more intermediates, sent after those in certPEM.
//
// Accepted keys are RSA 1024, 2048 and 4096 bits and ECDSA P-256, P-384
// and P-521 (docs/model.md §9; the list is exhaustive, so RSA 3072, P-224
// and Ed25519 are refused). Errors are *ConfigError values naming the input
// (Field "Cert", "Key" or "Chain") and wrapping ErrNotPEM, ErrDHParams,
// ErrEncryptedKey, ErrKeyMismatch, ErrUnsupportedKey, ErrNoCertificate,
// ErrNoPrivateKey or ErrMalformed. No error message contains key material.
//
// The returned certificate has Leaf set.
func LoadCertificate(certPEM, keyPEM, chainPEM []byte) (tls.Certificate, error) {
	certs, err := parseCerts("Cert", certPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		chain, err := parseCerts("Chain", chainPEM)
		if err != nil {
			return tls.Certificate{}, err
		}
		certs = append(certs, chain...)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := certs[0]
	if err := checkKey("Cert", leaf.PublicKey); err != nil {
		return tls.Certificate{}, err
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, cfgerr.Wrap(pkg, "Key", keyDesc(key.Public()),
			fmt.Sprintf("does not match the certificate for %q (its key: %s)", leaf.Subject.String(), keyDesc(leaf.PublicKey)), ErrKeyMismatch)
	}
	out := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// LoadCAPool parses one or more PEM CA certificates into a pool for
// RequireClientCert. Errors are *ConfigError values with Field "CA"
// wrapping ErrNotPEM, ErrDHParams, ErrNoCertificate or ErrMalformed.
// Any certificate is accepted as a trust anchor, self-signed client
// certificates included.
func LoadCAPool(caPEM []byte) (*x509.CertPool, error) {
	certs, err := parseCerts("CA", caPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// decodeAll returns the PEM blocks of data, refusing non-PEM input and DH
// parameters up front.
func decodeAll(field string, data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.Contains(b.Type, "DH PARAMETERS") {
			return nil, cfgerr.Wrap(pkg, field, b.Type,
				"DH parameters are not a certificate or key; remove the block (Go does not use DH parameters)", ErrDHParams)
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, cfgerr.Wrap(pkg, field, describeRaw(data), notPEMReason(field, data), ErrNotPEM)
	}
	return blocks, nil
}

// describeRaw says in words what non-PEM input holds; the bytes
// themselves mean nothing to a reader (and may be key material).
func describeRaw(data []byte) string {
	switch {
	case len(data) == 0:
		return "empty input"
	case data[0] == 0x30:
		return fmt.Sprintf("%d bytes of binary data", len(data))
	}
	return fmt.Sprintf("%d bytes without a -----BEGIN line", len(data))
}

func notPEMReason(field string, data []byte) string {
	if len(data) > 0 && data[0] == 0x30 { // ASN.1 SEQUENCE: DER, PKCS#12, raw PKCS#8
		if field == "Key" {
			return "not PEM but binary DER (or PKCS#12); convert to PEM, e.g. openssl pkey -inform DER -in key.der -out key.pem"
		}
		return "not PEM but binary DER (or PKCS#12); convert to PEM, e.g. openssl x509 -inform DER -in cert.der -out cert.pem, or openssl pkcs12 -in cert.p12 -nodes -out cert.pem"
	}
	return "no PEM block found; want text starting -----BEGIN …-----"
}

func parseCerts(field string, data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodeAll(field, data)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue // e.g. a key kept in the same file
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, cfgerr.Wrap(pkg, field, fmt.Sprintf("certificate %d", len(certs)+1),
				"does not parse: "+err.Error(), ErrMalformed)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, cfgerr.Wrap(pkg, field, blockTypes(blocks), "no CERTIFICATE block", ErrNoCertificate)
	}
	return certs, nil
}

func blockTypes(blocks []*pem.Block) string {
	types := make([]string, len(blocks))
	for i, b := range blocks {
		types[i] = b.Type
	}
	return strings.Join(types, ", ")
}

func parseKey(data []byte) (crypto.Signer, error) {
	blocks, err := decodeAll("Key", data)
	if err != nil {
		return nil, err
	}
	var (
		key   any
		found string
	)
	for _, b := range blocks {
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, cfgerr.Wrap(pkg, "Key", b.Type,
				"is encrypted; decrypt it first, e.g. openssl pkey -in enc.pem -out key.pem", ErrEncryptedKey)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue // EC PARAMETERS, a certificate kept in the same file, …
		}
		if found != "" {
			return nil, cfgerr.Wrap(pkg, "Key", b.Type, "a second private key after "+found+"; give exactly one", ErrMalformed)
		}
		found = b.Type
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		default:
			return nil, cfgerr.Wrap(pkg, "Key", b.Type, "unsupported key type; want RSA or ECDSA", ErrUnsupportedKey)
		}
		if err != nil {
			if b.Type == "PRIVATE KEY" && strings.Contains(err.Error(), "unknown") {
				return nil, cfgerr.Wrap(pkg, "Key", b.Type, "unsupported key algorithm ("+err.Error()+"); want RSA or ECDSA", ErrUnsupportedKey)
			}
			return nil, cfgerr.Wrap(pkg, "Key", b.Type, "does not parse: "+err.Error(), ErrMalformed)
		}
	}
	if found == "" {
		return nil, cfgerr.Wrap(pkg, "Key", blockTypes(blocks), "no PRIVATE KEY block", ErrNoPrivateKey)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, cfgerr.Wrap(pkg, "Key", fmt.Sprintf("%T", key), "unsupported key type; want RSA or ECDSA", ErrUnsupportedKey)
	}
	if err := checkKey("Key", signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// checkKey enforces the CLB's list of key types and sizes (docs/model.md §9).
func checkKey(field string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024, 2048, 4096:
			return nil
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	}
	return cfgerr.Wrap(pkg, field, keyDesc(pub),
		"unsupported key; want RSA 1024/2048/4096 or ECDSA P-256/P-384/P-521", ErrUnsupportedKey)
}

func keyDesc(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", pub), "*")
}
