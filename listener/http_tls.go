package listener

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lbkit/lbkit/internal/cfgerr"
	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// tlsState is an HTTPS listener's TLS material. Certificates live in the
// Selector, which the handshake reads through GetCertificate; the policy
// and client CAs are baked into a tls.Config rebuilt on each change and
// handed to new handshakes by GetConfigForClient. Both paths only load
// atomics, so changes apply to the next handshake without a restart.
type tlsState struct {
	sel   *sni.Selector
	http2 bool
	http3 bool // the policy must allow TLS 1.3

	mu     sync.Mutex // serializes rebuilds
	policy *tlspolicy.Policy
	cas    *x509.CertPool
	keys   [][32]byte // session-ticket keys; nil for crypto/tls's own
	cfg    atomic.Pointer[tls.Config]
}

func newTLSState(o *HTTPOptions) (*tlsState, error) {
	if o.Certificate == nil {
		return nil, configErr("HTTP.Certificate", "nil", "required for https")
	}
	sel, err := sni.NewSelector(sni.SelectorConfig{Default: o.Certificate})
	if err != nil {
		return nil, configErr("HTTP.Certificate", "default", cfgerr.Reason(err))
	}
	err = sel.Update(func(b *sni.Batch[*tls.Certificate]) error {
		for d, c := range o.Domains {
			if err := b.Set(d, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ts := &tlsState{sel: sel, http2: !o.NoHTTP2, http3: o.HTTP3, policy: o.TLSPolicy, cas: o.ClientCAs, keys: o.SessionTicketKeys}
	if err := ts.fits(o.TLSPolicy); err != nil {
		return nil, err
	}
	if err := ts.rebuild(); err != nil {
		return nil, err
	}
	return ts, nil
}

// rebuild publishes a tls.Config for the current policy and CAs. Called
// with mu held, or before ts is shared.
func (ts *tlsState) rebuild() error {
	p := ts.policy
	if p == nil {
		p = tlspolicy.Default()
	}
	cfg := p.Config()
	cfg.GetCertificate = ts.sel.GetCertificate
	if ts.http2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	} else {
		cfg.NextProtos = []string{"http/1.1"}
	}
	if ts.cas != nil {
		tlspolicy.RequireClientCert(cfg, ts.cas)
	}
	if len(ts.keys) > 0 {
		cfg.SetSessionTicketKeys(ts.keys)
	}
	ts.cfg.Store(cfg)
	return nil
}

// serverConfig is the tls.Config the listener's socket uses: it defers
// every handshake to the current config, through that config's own
// GetConfigForClient when it has one, as crypto/tls calls only the outer
// one: tlspolicy.LimitSessionLifetime hands each handshake a copy there
// that dates the tickets of resumed sessions.
func (ts *tlsState) serverConfig() *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := ts.cfg.Load()
			if cfg.GetConfigForClient == nil {
				return cfg, nil
			}
			c, err := cfg.GetConfigForClient(hi)
			if c == nil && err == nil {
				return cfg, nil
			}
			return c, err
		},
	}
}

// Certificates returns an HTTPS listener's certificates: the default
// (Selector.SetDefault replaces it) and the extension domains
// (Selector.Set adds or edits one, Selector.Delete removes it). Changes
// apply to the next TLS handshake, whether the listener runs or not. It
// returns nil for other protocols.
func (l *Listener) Certificates() *sni.Selector {
	if ts := l.tlsState(); ts != nil {
		return ts.sel
	}
	return nil
}

// SetTLSPolicy switches an HTTPS listener to policy p (nil means
// tls_cipher_policy_1_0) for the next TLS handshakes; established
// connections keep what they negotiated.
// With HTTPOptions.HTTP3, a policy without TLS 1.3 is refused.
func (l *Listener) SetTLSPolicy(p *tlspolicy.Policy) error {
	if ts := l.tlsState(); ts != nil {
		if err := ts.fits(p); err != nil {
			return err
		}
	}
	return l.changeTLS("HTTP.TLSPolicy", func(ts *tlsState) { ts.policy = p })
}

// fits refuses policy p (nil: the default) for a listener serving
// HTTP/3 unless it allows TLS 1.3, which QUIC requires (RFC 9001 §4.2).
func (ts *tlsState) fits(p *tlspolicy.Policy) error {
	if p == nil {
		p = tlspolicy.Default()
	}
	if ts.http3 && !slices.Contains(p.Versions, tls.VersionTLS13) {
		return configErr("HTTP.TLSPolicy", p.Name, "HTTP/3 needs TLS 1.3")
	}
	return nil
}

// SetClientCAs replaces an HTTPS listener's mutual-TLS CAs for the next
// handshakes; nil stops asking for client certificates.
func (l *Listener) SetClientCAs(cas *x509.CertPool) error {
	return l.changeTLS("HTTP.ClientCAs", func(ts *tlsState) { ts.cas = cas })
}

// SetSessionTicketKeys replaces an HTTPS listener's session-ticket keys
// (HTTPOptions.SessionTicketKeys) for the next handshakes; nil goes back
// to crypto/tls's own keys. Tickets under a key no longer listed stop
// resuming: their clients make a full handshake.
func (l *Listener) SetSessionTicketKeys(keys [][32]byte) error {
	return l.changeTLS("HTTP.SessionTicketKeys", func(ts *tlsState) { ts.keys = keys })
}

// changeTLS applies change to an HTTPS listener's TLS state and publishes
// the result; field names the setting for the error on other protocols.
func (l *Listener) changeTLS(field string, change func(ts *tlsState)) error {
	ts := l.tlsState()
	if ts == nil {
		return configErr(field, string(l.cfg.Protocol), "TLS settings are for https listeners")
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	change(ts)
	return ts.rebuild()
}

func (l *Listener) tlsState() *tlsState {
	if st := l.cfg.HTTP.st; st != nil {
		return st.tls
	}
	return nil
}
