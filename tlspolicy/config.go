package tlspolicy

import "crypto/tls"

// Apply sets cfg's MinVersion, MaxVersion and CipherSuites to the policy,
// leaving every other field alone. CipherSuites gets exactly the policy's
// configurable suites, never nil, so crypto/tls's own default list (which
// changes between Go releases) never applies; TLS 1.0, TLS 1.1, 3DES and
// the RSA-key-exchange suites work wherever the policy allows them without
// any GODEBUG setting, because they are configured explicitly.
//
// The TLS 1.3 suites are not configurable in crypto/tls: when the policy
// allows TLS 1.3, Go enables TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384
// and TLS_CHACHA20_POLY1305_SHA256, and nothing else.
func (p *Policy) Apply(cfg *tls.Config) {
	p = p.orDefault()
	cfg.MinVersion = p.Versions[0]
	cfg.MaxVersion = p.Versions[len(p.Versions)-1]
	cfg.CipherSuites = p.CipherSuiteIDs()
}

// Config returns a new server tls.Config for the policy: Apply plus session
// resumption limited to SessionLifetime (see LimitSessionLifetime). The
// caller adds certificates (Certificates or GetCertificate) and, for mutual
// TLS, RequireClientCert.
func (p *Policy) Config() *tls.Config {
	cfg := &tls.Config{}
	p.Apply(cfg)
	// SessionLifetime is in range, so this cannot fail.
	_ = LimitSessionLifetime(cfg, SessionLifetime)
	return cfg
}
