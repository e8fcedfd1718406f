package tlspolicy_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/errtest"
	"github.com/lbkit/lbkit/tlspolicy"
)

// Every policy error names the package once; the certificate errors,
// which wrap the package's own sentinels, are checked the same way in
// TestLoadCertificateRefused and TestLoadCAPool.
func TestErrorsCarryOnePrefix(t *testing.T) {
	newp := func(name string, versions, suites []string) error {
		_, err := tlspolicy.New(tlspolicy.Config{Name: name, Versions: versions, Suites: suites})
		return err
	}
	ecdhe := []string{"ECDHE-RSA-AES128-GCM-SHA256"}
	tls13 := []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
	many := make([]string, tlspolicy.MaxCustomSuites+1)
	errtest.OnePrefix(t, "tlspolicy", map[string]error{
		"unknown policy":    errtest.Err(tlspolicy.Lookup("tls_cipher_policy_9")),
		"built-in name":     newp(tlspolicy.Policy12, []string{"1.2"}, ecdhe),
		"no versions":       newp("p", nil, ecdhe),
		"unknown version":   newp("p", []string{"1.4"}, ecdhe),
		"repeated version":  newp("p", []string{"1.2", "1.2"}, ecdhe),
		"version gap":       newp("p", []string{"1.0", "1.2"}, ecdhe),
		"no suites":         newp("p", []string{"1.2"}, nil),
		"too many suites":   newp("p", []string{"1.2"}, many),
		"unknown suite":     newp("p", []string{"1.2"}, []string{"NOPE"}),
		"repeated suite":    newp("p", []string{"1.2"}, append(ecdhe, ecdhe...)),
		"1.3 without fixed": newp("p", []string{"1.2", "1.3"}, ecdhe),
		"1.3 suite no 1.3":  newp("p", []string{"1.2"}, append(ecdhe, tls13...)),
		"unusable version":  newp("p", []string{"1.2"}, []string{"ECDHE-RSA-AES256-SHA384"}),
		"session lifetime":  tlspolicy.LimitSessionLifetime(&tls.Config{}, time.Millisecond),
	})
}
