package sni

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"iter"
	"strings"
	"sync/atomic"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// Selector picks an HTTPS listener's server certificate by the client's SNI
// name: the listener's extension domains. Each bound domain (exact or
// wildcard) has one certificate; a name is matched as in [Table] (exact,
// then the narrowest wildcard); a handshake without SNI, or whose name
// matches no domain, gets the default certificate.
//
// A certificate must cover the domain it is bound to, by the leaf's DNS
// SANs under x509 rules: an exact domain needs an exact or wildcard SAN
// that [x509.Certificate.VerifyHostname] accepts; a wildcard domain needs
// the same wildcard SAN. Note that a wildcard domain also serves names
// several labels deep ("a.b.example.com" gets the "*.example.com"
// certificate when nothing narrower is bound), which a verifying client
// refuses, as a TLS wildcard covers one label; bind "*.b.example.com" to
// serve those. Validity dates, key type and key match are not checked here.
//
// Bindings and the default change live: each change publishes a new
// snapshot, and [Selector.GetCertificate] only loads it, taking no lock
// and allocating nothing on a hit or on the default.
//
// The zero Selector has no domains and no default certificate, and is
// ready to use. Most callers want [NewSelector], [Selector.Set] and
// GetCertificate as [tls.Config.GetCertificate]. Writers return a
// *ConfigError naming the domain.
//
// A Selector is safe for concurrent use by multiple goroutines. It must not
// be copied after first use.
type Selector struct {
	def   atomic.Pointer[tls.Certificate]
	table Table[*tls.Certificate]
}

// SelectorConfig configures a [Selector].
type SelectorConfig struct {
	// Default is the certificate served to clients without SNI or whose
	// name matches no domain; it must hold a certificate chain and a
	// private key. If nil, such handshakes fail with [ErrNoCertificate].
	Default *tls.Certificate
}

// NewSelector returns a Selector configured by cfg, or a *ConfigError if
// cfg.Default is not usable (see [Selector.SetDefault]).
func NewSelector(cfg SelectorConfig) (*Selector, error) {
	s := &Selector{}
	if err := s.SetDefault(cfg.Default); err != nil {
		return nil, err
	}
	return s, nil
}

// SetDefault replaces the certificate served to clients without SNI or
// whose name matches no domain, live. nil removes it: such handshakes then
// fail with [ErrNoCertificate]. The default is not checked against any
// name; it must hold a certificate chain and a private key.
func (s *Selector) SetDefault(cert *tls.Certificate) error {
	if cert != nil {
		if err := usable(cert); err != "" {
			return configErr("Certificate", "default", err)
		}
	}
	s.def.Store(cert)
	return nil
}

// Default returns the default certificate, or nil.
func (s *Selector) Default() *tls.Certificate { return s.def.Load() }

// Set binds domain to cert, adding the domain or replacing its certificate
// (an edit). It returns a *ConfigError naming the domain, and changes
// nothing, if the domain is invalid or cert does not cover it.
func (s *Selector) Set(domain string, cert *tls.Certificate) error {
	return s.table.update(checkCovers, func(b *Batch[*tls.Certificate]) error { return b.Set(domain, cert) })
}

// Delete unbinds domain; its names get the next best match or the default
// from the next handshake on. Deleting a domain that is not bound is not an
// error.
func (s *Selector) Delete(domain string) error {
	return s.table.Delete(domain)
}

// Update applies several bindings as one step, all or nothing, with the
// same checks as [Selector.Set] on every b.Set. See [Table.Update].
func (s *Selector) Update(fn func(b *Batch[*tls.Certificate]) error) error {
	return s.table.update(checkCovers, fn)
}

// Get returns the certificate bound to exactly this domain, or nil.
func (s *Selector) Get(domain string) *tls.Certificate {
	c, _ := s.table.Get(domain)
	return c
}

// Len returns the number of bound domains.
func (s *Selector) Len() int { return s.table.Len() }

// All returns an iterator over the bound domains (canonical form) and
// their certificates, sorted by domain.
func (s *Selector) All() iter.Seq2[string, *tls.Certificate] { return s.table.All() }

// Certificate returns the certificate for a server name: the best matching
// domain's, else the default (nil if there is none). An empty name gets
// the default.
func (s *Selector) Certificate(name string) *tls.Certificate {
	if c, ok := s.table.Match(name); ok {
		return c
	}
	return s.def.Load()
}

// GetCertificate implements [tls.Config.GetCertificate]: it returns the
// certificate for hello.ServerName as [Selector.Certificate] does, or an
// error wrapping [ErrNoCertificate] if there is none, which fails the
// handshake.
func (s *Selector) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.Certificate(hello.ServerName); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w %q", ErrNoCertificate, hello.ServerName)
}

// usable returns why cert cannot be served, or "".
func usable(cert *tls.Certificate) string {
	switch {
	case len(cert.Certificate) == 0:
		return "certificate chain is empty"
	case cert.PrivateKey == nil:
		return "certificate has no private key"
	}
	return ""
}

// leaf returns cert's parsed leaf: cert.Leaf (tls.X509KeyPair fills it in
// since Go 1.23) or a fresh parse; cert is not modified.
func leaf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// checkCovers refuses a certificate that cannot serve d.
func checkCovers(d Domain, cert *tls.Certificate) error {
	if cert == nil {
		return configErr("Domain", d.s, "certificate is nil")
	}
	if why := usable(cert); why != "" {
		return configErr("Domain", d.s, why)
	}
	l, err := leaf(cert)
	if err != nil {
		return cfgerr.Wrap("sni", "Domain", d.s, "certificate does not parse", err)
	}
	if covers(l, d) {
		return nil
	}
	return configErr("Domain", d.s, fmt.Sprintf("certificate does not cover it (DNS SANs: %s)", sans(l)))
}

// covers applies x509 rules: VerifyHostname for an exact domain (exact or
// one-label wildcard SAN), an equal wildcard SAN for a wildcard domain.
func covers(l *x509.Certificate, d Domain) bool {
	if !d.wild {
		return l.VerifyHostname(d.s) == nil
	}
	for _, san := range l.DNSNames {
		if strings.EqualFold(strings.TrimSuffix(san, "."), d.s) {
			return true
		}
	}
	return false
}

func sans(l *x509.Certificate) string {
	if len(l.DNSNames) == 0 {
		return "none"
	}
	return strings.Join(l.DNSNames, ", ")
}
