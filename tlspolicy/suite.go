package tlspolicy

import (
	"crypto/tls"
	"slices"
)

// Support says whether Go's crypto/tls can offer a cipher suite, and how.
type Support int

const (
	// Configurable: crypto/tls implements the suite and offers it when it is
	// listed in tls.Config.CipherSuites (TLS 1.0–1.2 suites).
	Configurable Support = iota
	// FixedTLS13: a TLS 1.3 suite crypto/tls implements and always enables
	// whenever TLS 1.3 is negotiated; it cannot be switched on or off alone.
	FixedTLS13
	// NotOffered: crypto/tls does not implement the suite. A policy that
	// lists it keeps it in its table for reference, but Go never offers it.
	NotOffered
)

// String returns "configurable", "fixed (TLS 1.3)" or "not offered by Go".
func (s Support) String() string {
	switch s {
	case Configurable:
		return "configurable"
	case FixedTLS13:
		return "fixed (TLS 1.3)"
	case NotOffered:
		return "not offered by Go"
	}
	return "unknown"
}

// Suite is one cipher suite of a policy, by its OpenSSL name.
//
// ID is the IANA code point, which is also the value of the matching
// crypto/tls constant (tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 and so on)
// when crypto/tls has one; when Support is NotOffered, crypto/tls has no
// such constant and ID is for reference only.
type Suite struct {
	Name     string   // OpenSSL name, e.g. "ECDHE-RSA-AES128-GCM-SHA256"
	IANAName string   // RFC name, e.g. "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
	ID       uint16   // IANA code point = crypto/tls ID when offered
	TLS13    bool     // a TLS 1.3 suite
	Support  Support  // what crypto/tls can do with it
	Insecure bool     // listed by tls.InsecureCipherSuites (RSA key exchange, 3DES, CBC-SHA256)
	Versions []uint16 // TLS versions crypto/tls can use it with; nil when NotOffered
}

// Offered reports whether crypto/tls can negotiate the suite at all.
func (s Suite) Offered() bool { return s.Support != NotOffered }

// catalogue lists every cipher suite the CLB's policies name, in the
// CLB's order (docs/model.md §9).
// Support, Insecure and Versions are filled in from crypto/tls during
// package initialization (before the built-in policies copy them), so the
// table can never claim a suite the running Go cannot do.
var catalogue = withGoSupport([]Suite{
	{Name: "ECDHE-ECDSA-AES128-GCM-SHA256", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ID: 0xC02B},
	{Name: "ECDHE-ECDSA-AES256-GCM-SHA384", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", ID: 0xC02C},
	{Name: "ECDHE-ECDSA-AES128-SHA256", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", ID: 0xC023},
	{Name: "ECDHE-ECDSA-AES256-SHA384", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", ID: 0xC024},
	{Name: "ECDHE-RSA-AES128-GCM-SHA256", IANAName: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ID: 0xC02F},
	{Name: "ECDHE-RSA-AES256-GCM-SHA384", IANAName: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", ID: 0xC030},
	{Name: "ECDHE-RSA-AES128-SHA256", IANAName: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", ID: 0xC027},
	{Name: "ECDHE-RSA-AES256-SHA384", IANAName: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", ID: 0xC028},
	{Name: "AES128-GCM-SHA256", IANAName: "TLS_RSA_WITH_AES_128_GCM_SHA256", ID: 0x009C},
	{Name: "AES256-GCM-SHA384", IANAName: "TLS_RSA_WITH_AES_256_GCM_SHA384", ID: 0x009D},
	{Name: "AES128-SHA256", IANAName: "TLS_RSA_WITH_AES_128_CBC_SHA256", ID: 0x003C},
	{Name: "AES256-SHA256", IANAName: "TLS_RSA_WITH_AES_256_CBC_SHA256", ID: 0x003D},
	{Name: "ECDHE-ECDSA-AES128-SHA", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", ID: 0xC009},
	{Name: "ECDHE-ECDSA-AES256-SHA", IANAName: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", ID: 0xC00A},
	{Name: "ECDHE-RSA-AES128-SHA", IANAName: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", ID: 0xC013},
	{Name: "ECDHE-RSA-AES256-SHA", IANAName: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", ID: 0xC014},
	{Name: "AES128-SHA", IANAName: "TLS_RSA_WITH_AES_128_CBC_SHA", ID: 0x002F},
	{Name: "AES256-SHA", IANAName: "TLS_RSA_WITH_AES_256_CBC_SHA", ID: 0x0035},
	{Name: "DES-CBC3-SHA", IANAName: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", ID: 0x000A},
	// TLS 1.3: OpenSSL uses the RFC names.
	{Name: "TLS_AES_128_GCM_SHA256", IANAName: "TLS_AES_128_GCM_SHA256", ID: 0x1301, TLS13: true},
	{Name: "TLS_AES_256_GCM_SHA384", IANAName: "TLS_AES_256_GCM_SHA384", ID: 0x1302, TLS13: true},
	{Name: "TLS_CHACHA20_POLY1305_SHA256", IANAName: "TLS_CHACHA20_POLY1305_SHA256", ID: 0x1303, TLS13: true},
	{Name: "TLS_AES_128_CCM_SHA256", IANAName: "TLS_AES_128_CCM_SHA256", ID: 0x1304, TLS13: true},
	{Name: "TLS_AES_128_CCM_8_SHA256", IANAName: "TLS_AES_128_CCM_8_SHA256", ID: 0x1305, TLS13: true},
})

func withGoSupport(catalogue []Suite) []Suite {
	goSuites := map[uint16]*tls.CipherSuite{}
	for _, s := range tls.CipherSuites() {
		goSuites[s.ID] = s
	}
	for _, s := range tls.InsecureCipherSuites() {
		goSuites[s.ID] = s
	}
	for i := range catalogue {
		c := &catalogue[i]
		g, ok := goSuites[c.ID]
		switch {
		case !ok:
			c.Support = NotOffered
		case c.TLS13:
			c.Support = FixedTLS13
		default:
			c.Support = Configurable
		}
		if ok {
			c.Insecure = g.Insecure
			c.Versions = slices.Clone(g.SupportedVersions)
			slices.Sort(c.Versions)
		}
	}
	return catalogue
}

// Suites returns every cipher suite the CLB's policies name (the 19 TLS
// 1.0–1.2 suites, then the 5 TLS 1.3 suites), with what crypto/tls can do
// with each. These are the names a custom policy may use.
func Suites() []Suite {
	out := make([]Suite, len(catalogue))
	for i, s := range catalogue {
		out[i] = s.clone()
	}
	return out
}

// Unsupported returns the entries of Suites that crypto/tls cannot offer.
func Unsupported() []Suite {
	var out []Suite
	for _, s := range catalogue {
		if s.Support == NotOffered {
			out = append(out, s.clone())
		}
	}
	return out
}

func (s Suite) clone() Suite {
	s.Versions = slices.Clone(s.Versions)
	return s
}

func suiteByName(name string) (Suite, bool) {
	for _, s := range catalogue {
		if s.Name == name {
			return s, true
		}
	}
	return Suite{}, false
}
