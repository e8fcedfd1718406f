package sni

import (
	"errors"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// ConfigError reports a refused domain or certificate binding: Field is
// "Domain" (or "Certificate"), Value the input as given, Reason why. Every
// error returned by ParseDomain, Table and Selector writers is a
// *ConfigError, except an error returned by the caller's own Update
// function, which is passed through, and the error of a Batch used after
// its Update returned. Test with errors.As.
type ConfigError = cfgerr.Error

// ErrNoCertificate is returned (wrapped) by [Selector.GetCertificate] when
// no bound domain matches the client's server name and the selector has no
// default certificate.
var ErrNoCertificate = errors.New("sni: no certificate for server name")

// errBatchDone is returned by a Batch used after its Update returned.
var errBatchDone = errors.New("sni: batch used after Update returned")

func configErr(field string, value any, reason string) error {
	return cfgerr.New("sni", field, value, reason)
}
