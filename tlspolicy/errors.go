package tlspolicy

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused configuration value: an unknown policy name,
// TLS version or cipher suite, a malformed custom policy, or certificate
// input that cannot be used. Read Field, Value and Reason with errors.As;
// for certificate input, errors.Is also matches one of the Err… sentinels.
type ConfigError = cfgerr.Error

// Sentinel errors for certificate and key input. The error a Load… function
// returns is a *ConfigError whose message names the input (Field is
// "Cert", "Key", "Chain" or "CA") and whose cause is one of these.
var (
	// ErrNotPEM: the input holds no PEM block, e.g. DER or PKCS#12 bytes.
	ErrNotPEM = errors.New("tlspolicy: input is not PEM")
	// ErrDHParams: the input holds a "BEGIN DH PARAMETERS" block.
	ErrDHParams = errors.New("tlspolicy: DH parameters are not a certificate or key")
	// ErrEncryptedKey: the private key is password-protected (legacy
	// "Proc-Type: 4,ENCRYPTED" or PKCS#8 "ENCRYPTED PRIVATE KEY").
	ErrEncryptedKey = errors.New("tlspolicy: encrypted private key")
	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("tlspolicy: private key does not match certificate")
	// ErrUnsupportedKey: a key type or size outside RSA 1024/2048/4096 and
	// ECDSA P-256/P-384/P-521.
	ErrUnsupportedKey = errors.New("tlspolicy: unsupported key type or size")
	// ErrNoCertificate: no CERTIFICATE block where one is required.
	ErrNoCertificate = errors.New("tlspolicy: no certificate")
	// ErrNoPrivateKey: no private key block in the key input.
	ErrNoPrivateKey = errors.New("tlspolicy: no private key")
	// ErrMalformed: a PEM block whose content does not parse.
	ErrMalformed = errors.New("tlspolicy: malformed certificate or key")
)

const pkg = "tlspolicy"
