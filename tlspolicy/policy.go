package tlspolicy

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// Names of the CLB's built-in policies (docs/model.md §9).
const (
	Policy10             = "tls_cipher_policy_1_0"
	Policy11             = "tls_cipher_policy_1_1"
	Policy12             = "tls_cipher_policy_1_2"
	Policy12Strict       = "tls_cipher_policy_1_2_strict"
	Policy12StrictWith13 = "tls_cipher_policy_1_2_strict_with_1_3"

	// DefaultPolicy is used when no policy is named.
	DefaultPolicy = Policy10
)

// MaxCustomSuites is the most cipher suites a custom policy may list.
const MaxCustomSuites = 32

// Policy is a TLS security policy: the TLS versions and cipher suites a
// listener accepts.
//
// Suites keeps every entry the policy names, including those crypto/tls
// cannot offer (Support == NotOffered); Apply only ever configures what Go
// can do. A Policy returned by this package is a fresh copy: changing it
// does not change the built-in table. The zero Policy (or a nil *Policy,
// or one without Versions) stands for DefaultPolicy. Most callers want
// Lookup and then Config. A Policy is safe for concurrent reads.
type Policy struct {
	Name     string   // e.g. "tls_cipher_policy_1_2"
	Versions []uint16 // allowed TLS versions, ascending (tls.VersionTLS10…tls.VersionTLS13)
	Suites   []Suite  // allowed cipher suites, in the CLB's order
	Custom   bool     // defined with New rather than built in
}

var (
	v10to12 = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12}
	allTLS  = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}
)

// builtin holds the five policies, built once from the catalogue.
var builtin = func() []*Policy {
	var legacy, strict, tls13 []Suite
	for _, s := range catalogue {
		switch {
		case s.TLS13:
			tls13 = append(tls13, s)
		default:
			legacy = append(legacy, s)
			if strings.HasPrefix(s.Name, "ECDHE-") {
				strict = append(strict, s)
			}
		}
	}
	return []*Policy{
		{Name: Policy10, Versions: v10to12, Suites: legacy},
		{Name: Policy11, Versions: v10to12[1:], Suites: legacy},
		{Name: Policy12, Versions: v10to12[2:], Suites: legacy},
		{Name: Policy12Strict, Versions: v10to12[2:], Suites: strict},
		{Name: Policy12StrictWith13, Versions: allTLS[2:], Suites: append(slices.Clip(strict), tls13...)},
	}
}()

// Policies returns the five built-in policies in the CLB's order.
func Policies() []*Policy {
	out := make([]*Policy, len(builtin))
	for i, p := range builtin {
		out[i] = p.clone()
	}
	return out
}

// Lookup returns the built-in policy with the given name; "" means
// DefaultPolicy. An unknown name is a *ConfigError naming it.
func Lookup(name string) (*Policy, error) {
	if name == "" {
		name = DefaultPolicy
	}
	for _, p := range builtin {
		if p.Name == name {
			return p.clone(), nil
		}
	}
	return nil, cfgNew("Policy", name, "unknown policy; want one of "+strings.Join(policyNames(), ", "))
}

// Default returns the default policy, tls_cipher_policy_1_0.
func Default() *Policy {
	p, _ := Lookup(DefaultPolicy)
	return p
}

func policyNames() []string {
	names := make([]string, len(builtin))
	for i, p := range builtin {
		names[i] = p.Name
	}
	return names
}

// New defines a custom policy from cfg, or returns a *ConfigError naming
// the first refused value.
//
// Because crypto/tls negotiates a version range and fixes the TLS 1.3
// suites, New refuses:
//   - a Name that is a built-in policy's;
//   - an empty, unknown or repeated version or suite name;
//   - a version set with a gap, such as 1.0 and 1.2 without 1.1;
//   - more than [MaxCustomSuites] suites;
//   - TLS 1.3 without all three suites Go always enables with it
//     (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
//     TLS_CHACHA20_POLY1305_SHA256), or TLS 1.3 suites without TLS 1.3;
//   - a TLS 1.0–1.2 version with no listed suite Go can use at it.
//
// Suites Go cannot offer (the CCM suites, for example) are accepted and
// kept with Support == NotOffered, like in the built-in policies. For a
// built-in policy use [Lookup].
func New(cfg Config) (*Policy, error) {
	name, versions, suites := cfg.Name, cfg.Versions, cfg.Suites
	if name == "" {
		name = "custom"
	}
	if slices.Contains(policyNames(), name) {
		return nil, cfgNew("Name", name, "is a built-in policy; choose another name for a custom policy")
	}
	p := &Policy{Name: name, Custom: true}

	if len(versions) == 0 {
		return nil, cfgNew("Versions", "", "empty; want a subset of 1.0, 1.1, 1.2, 1.3")
	}
	for _, vs := range versions {
		v, ok := parseVersion(vs)
		if !ok {
			return nil, cfgNew("Versions", vs, "unknown TLS version; want 1.0, 1.1, 1.2 or 1.3")
		}
		if slices.Contains(p.Versions, v) {
			return nil, cfgNew("Versions", vs, "listed twice")
		}
		p.Versions = append(p.Versions, v)
	}
	slices.Sort(p.Versions)
	for i := 1; i < len(p.Versions); i++ {
		if p.Versions[i] != p.Versions[i-1]+1 {
			return nil, cfgNew("Versions", strings.Join(versions, ","),
				fmt.Sprintf("has a gap before %s; crypto/tls accepts a contiguous range only", tls.VersionName(p.Versions[i])))
		}
	}

	if len(suites) == 0 {
		return nil, cfgNew("Suites", "", "empty; want 1 to 32 cipher suites")
	}
	if len(suites) > MaxCustomSuites {
		return nil, cfgNew("Suites", len(suites), fmt.Sprintf("too many cipher suites; at most %d", MaxCustomSuites))
	}
	for _, n := range suites {
		s, ok := suiteByName(n)
		if !ok {
			return nil, cfgNew("Suites", n, "unknown cipher suite; want an OpenSSL name from Suites(), e.g. ECDHE-RSA-AES128-GCM-SHA256")
		}
		if p.hasSuite(n) {
			return nil, cfgNew("Suites", n, "listed twice")
		}
		p.Suites = append(p.Suites, s.clone())
	}
	// Keep the catalogue's order so tables print the same way everywhere.
	slices.SortStableFunc(p.Suites, func(a, b Suite) int { return catalogueIndex(a.Name) - catalogueIndex(b.Name) })

	if err := p.checkConsistent(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Policy) checkConsistent() error {
	has13 := p.AllowsVersion(tls.VersionTLS13)
	for _, s := range catalogue {
		if s.Support != FixedTLS13 {
			continue
		}
		if has13 && !p.hasSuite(s.Name) {
			return cfgNew("Suites", s.Name, "missing: with TLS 1.3 crypto/tls always enables TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256; list all three")
		}
	}
	for _, s := range p.Suites {
		if s.TLS13 && !has13 {
			return cfgNew("Suites", s.Name, "is a TLS 1.3 suite but the policy does not allow TLS 1.3")
		}
	}
	for _, v := range p.Versions {
		if v == tls.VersionTLS13 {
			continue
		}
		usable := false
		for _, s := range p.Suites {
			if s.Support == Configurable && slices.Contains(s.Versions, v) {
				usable = true
				break
			}
		}
		if !usable {
			return cfgNew("Versions", tls.VersionName(v), "no listed cipher suite that Go can use with this version")
		}
	}
	return nil
}

func catalogueIndex(name string) int {
	return slices.IndexFunc(catalogue, func(s Suite) bool { return s.Name == name })
}

func parseVersion(s string) (uint16, bool) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "TLSv"), "TLS")
	switch strings.TrimSpace(t) {
	case "1.0", "1":
		return tls.VersionTLS10, true
	case "1.1":
		return tls.VersionTLS11, true
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	}
	return 0, false
}

func (p *Policy) clone() *Policy {
	q := *p
	q.Versions = slices.Clone(p.Versions)
	q.Suites = make([]Suite, len(p.Suites))
	for i, s := range p.Suites {
		q.Suites[i] = s.clone()
	}
	return &q
}

func (p *Policy) hasSuite(name string) bool {
	return slices.ContainsFunc(p.Suites, func(s Suite) bool { return s.Name == name })
}

// AllowsVersion reports whether the policy allows TLS version v
// (tls.VersionTLS10…tls.VersionTLS13).
func (p *Policy) AllowsVersion(v uint16) bool { return slices.Contains(p.orDefault().Versions, v) }

// AllowsSuite reports whether the policy lists the cipher suite with the
// given OpenSSL name, whether or not Go can offer it.
func (p *Policy) AllowsSuite(name string) bool { return p.orDefault().hasSuite(name) }

// orDefault maps the zero Policy to the default one.
func (p *Policy) orDefault() *Policy {
	if p == nil || len(p.Versions) == 0 {
		return builtin[0]
	}
	return p
}

// CipherSuiteIDs returns the crypto/tls IDs of the policy's configurable
// (TLS 1.0–1.2) suites: the value Apply puts in tls.Config.CipherSuites.
func (p *Policy) CipherSuiteIDs() []uint16 {
	ids := []uint16{}
	for _, s := range p.orDefault().Suites {
		if s.Support == Configurable {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// Unsupported returns the policy's entries that crypto/tls cannot offer.
func (p *Policy) Unsupported() []Suite {
	var out []Suite
	for _, s := range p.orDefault().Suites {
		if s.Support == NotOffered {
			out = append(out, s.clone())
		}
	}
	return out
}

// String returns the policy name and its versions, e.g.
// "tls_cipher_policy_1_1 (TLS 1.1, TLS 1.2)".
func (p *Policy) String() string {
	p = p.orDefault()
	vs := make([]string, len(p.Versions))
	for i, v := range p.Versions {
		vs[i] = tls.VersionName(v)
	}
	return p.Name + " (" + strings.Join(vs, ", ") + ")"
}

func cfgNew(field string, value any, reason string) error {
	return cfgerr.New(pkg, field, value, reason)
}

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
// resumption limited to SessionLifetime (see LimitSessionLifetime, which
// sets its GetConfigForClient). The caller adds certificates (Certificates
// or GetCertificate) and, for mutual TLS, RequireClientCert.
func (p *Policy) Config() *tls.Config {
	cfg := &tls.Config{}
	p.Apply(cfg)
	// SessionLifetime is in range, so this cannot fail.
	_ = LimitSessionLifetime(cfg, SessionLifetime)
	return cfg
}
