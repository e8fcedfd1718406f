package admin

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// TLSFiles names the PEM files of the admin server's TLS, as clb's
// -admin-cert, -admin-key and -admin-client-ca flags do.
type TLSFiles struct {
	// Cert and Key are the server's certificate chain and private key.
	// Both or neither: neither serves plain HTTP.
	Cert, Key string
	// ClientCA is a bundle of CA certificates. A client certificate
	// that verifies against it is a credential (see Server); one that
	// does not fails the TLS handshake. Clients without a certificate
	// still connect, so tokens and the login page keep working. It needs
	// Cert and Key: without TLS there are no client certificates.
	ClientCA string
}

// LoadTLS returns the TLS configuration of files for Options.TLS, or nil
// if files names none. Every problem is reported at once, naming the
// flag and the file.
func LoadTLS(files TLSFiles) (*tls.Config, error) {
	if files == (TLSFiles{}) {
		return nil, nil
	}
	var errs []error
	switch {
	case files.Cert == "" && files.ClientCA != "":
		errs = append(errs, fmt.Errorf("admin: -admin-client-ca %q needs -admin-cert and -admin-key: client certificates exist only over TLS", files.ClientCA))
	case files.Cert == "":
		errs = append(errs, fmt.Errorf("admin: -admin-key %q needs -admin-cert", files.Key))
	case files.Key == "":
		errs = append(errs, fmt.Errorf("admin: -admin-cert %q needs -admin-key", files.Cert))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if files.Cert != "" && files.Key != "" {
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("admin: -admin-cert %q, -admin-key %q: %w", files.Cert, files.Key, err))
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if files.ClientCA != "" {
		pool, err := loadCAs(files.ClientCA)
		if err != nil {
			errs = append(errs, err)
		}
		// Only with a pool of our own: with a nil ClientCAs crypto/tls
		// would verify client certificates against the system's roots,
		// making any public certificate a credential.
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// loadCAs reads the -admin-client-ca bundle.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin: -admin-client-ca %q: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("admin: -admin-client-ca %q: no PEM certificate in it", path)
	}
	return pool, nil
}

// certWho names the client of r by its verified certificate, as
// "cert:NAME" with NAME the subject's common name, else its first DNS or
// URI name, else its serial number; ok is false without a verified one.
func certWho(r *http.Request) (who string, ok bool) {
	// VerifiedChains, not PeerCertificates: a configuration that
	// requests certificates without verifying them leaves it empty.
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	c := r.TLS.VerifiedChains[0][0]
	switch {
	case c.Subject.CommonName != "":
		return "cert:" + c.Subject.CommonName, true
	case len(c.DNSNames) > 0:
		return "cert:" + c.DNSNames[0], true
	case len(c.URIs) > 0:
		return "cert:" + c.URIs[0].String(), true
	}
	return "cert:serial-" + hex.EncodeToString(c.SerialNumber.Bytes()), true
}
