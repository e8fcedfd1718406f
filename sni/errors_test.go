package sni_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/lbkit/lbkit/internal/errtest"
	"github.com/lbkit/lbkit/sni"
)

// Every error the package returns names it once, including the
// handshake error that wraps ErrNoCertificate and the Update error a batch
// passes through.
func TestErrorsCarryOnePrefix(t *testing.T) {
	s, _ := sni.NewSelector(sni.SelectorConfig{})
	var kept *sni.Batch[*tls.Certificate]
	_ = s.Update(func(b *sni.Batch[*tls.Certificate]) error { kept = b; return nil })
	var tb sni.Table[int]
	unparsable := &tls.Certificate{Certificate: [][]byte{{0x30, 0x00}}, PrivateKey: struct{}{}}
	errs := map[string]error{
		"empty domain":      errtest.Err(sni.ParseDomain("")),
		"bare star":         errtest.Err(sni.ParseDomain("*")),
		"empty label":       errtest.Err(sni.ParseDomain("a..b")),
		"inner star":        errtest.Err(sni.ParseDomain("a.*.b")),
		"underscore":        errtest.Err(sni.ParseDomain("a_b.example")),
		"unusable default":  errtest.Err(sni.NewSelector(sni.SelectorConfig{Default: &tls.Certificate{}})),
		"nil certificate":   s.Set("a.example", nil),
		"not covered":       s.Set("a.example", mustCert("b.example")),
		"unparsable":        s.Set("a.example", unparsable),
		"bad table pattern": tb.Set("a..b", 1),
		"batch set passed through": s.Update(func(b *sni.Batch[*tls.Certificate]) error {
			return b.Set("a.example", mustCert("b.example"))
		}),
		"batch after update": kept.Set("a.example", mustCert("a.example")),
		"no certificate":     errtest.Err(s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example"})),
	}
	errtest.OnePrefix(t, "sni", errs)
	if !errors.Is(errs["no certificate"], sni.ErrNoCertificate) {
		t.Errorf("GetCertificate = %v, want ErrNoCertificate", errs["no certificate"])
	}
}
