package tlspolicy_test

import (
	"crypto/tls"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/tlspolicy"
)

// specLegacy is the CLB's list for policies 1_0, 1_1 and 1_2, in order
// (docs/model.md §9).
var specLegacy = []string{
	"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA256",
	"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
	"AES128-SHA256", "AES256-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
	"ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
}

var specTLS13 = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
	"TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"}

func suiteNames(p *tlspolicy.Policy) []string {
	var names []string
	for _, s := range p.Suites {
		names = append(names, s.Name)
	}
	return names
}

func TestBuiltinPolicies(t *testing.T) {
	var strict []string
	for _, n := range specLegacy {
		if strings.HasPrefix(n, "ECDHE-") {
			strict = append(strict, n)
		}
	}
	v := func(vs ...uint16) []uint16 { return vs }
	for _, tc := range []struct {
		name     string
		versions []uint16
		suites   []string
	}{
		{tlspolicy.Policy10, v(tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12), specLegacy},
		{tlspolicy.Policy11, v(tls.VersionTLS11, tls.VersionTLS12), specLegacy},
		{tlspolicy.Policy12, v(tls.VersionTLS12), specLegacy},
		{tlspolicy.Policy12Strict, v(tls.VersionTLS12), strict},
		{tlspolicy.Policy12StrictWith13, v(tls.VersionTLS12, tls.VersionTLS13), append(slices.Clip(strict), specTLS13...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tlspolicy.Lookup(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Versions, tc.versions) {
				t.Errorf("Versions = %v, want %v", p.Versions, tc.versions)
			}
			if got := suiteNames(p); !slices.Equal(got, tc.suites) {
				t.Errorf("Suites = %v, want %v", got, tc.suites)
			}
			cfg := p.Config()
			if cfg.MinVersion != tc.versions[0] || cfg.MaxVersion != tc.versions[len(tc.versions)-1] {
				t.Errorf("Config versions %x–%x", cfg.MinVersion, cfg.MaxVersion)
			}
			if cfg.CipherSuites == nil || cfg.WrapSession == nil || cfg.UnwrapSession == nil {
				t.Error("Config leaves CipherSuites nil or sessions unlimited")
			}
			for _, id := range cfg.CipherSuites {
				if tls.CipherSuiteName(id)[0] == '0' { // "0x…": unknown to crypto/tls
					t.Errorf("Config lists %#04x, unknown to crypto/tls", id)
				}
			}
		})
	}
	if got, _ := tlspolicy.Lookup(""); got.Name != tlspolicy.DefaultPolicy || tlspolicy.DefaultPolicy != "tls_cipher_policy_1_0" {
		t.Errorf(`Lookup("") = %s, want tls_cipher_policy_1_0`, got.Name)
	}
	// Lookup returns copies.
	p, _ := tlspolicy.Lookup(tlspolicy.Policy12)
	p.Suites[0].Name, p.Versions[0] = "changed", 0
	if q, _ := tlspolicy.Lookup(tlspolicy.Policy12); q.Suites[0].Name == "changed" || q.Versions[0] == 0 {
		t.Error("changing a looked-up policy changed the built-in table")
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := tlspolicy.Lookup("tls_cipher_policy_9")
	var ce *tlspolicy.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Policy" || ce.Value != `"tls_cipher_policy_9"` {
		t.Fatalf("Lookup(unknown) = %#v", err)
	}
	if !strings.Contains(err.Error(), tlspolicy.Policy12StrictWith13) {
		t.Errorf("message %q does not list the known policies", err)
	}
}

// TestUnsupportedMatchesDocs keeps the exported table, the CLB's list of
// what Go lacks and doc.go's table in step.
func TestUnsupportedMatchesDocs(t *testing.T) {
	want := []string{"ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "AES256-SHA256",
		"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"}
	var got []string
	for _, s := range tlspolicy.Unsupported() {
		got = append(got, s.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Unsupported() = %v, want %v (did crypto/tls change? update doc.go)", got, want)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range want {
		if !strings.Contains(string(doc), "//\t"+n) {
			t.Errorf("doc.go's table does not list %s", n)
		}
	}
	for _, s := range tlspolicy.Suites() {
		if s.Support == tlspolicy.FixedTLS13 && !s.TLS13 || s.Offered() != (len(s.Versions) > 0) {
			t.Errorf("inconsistent entry %+v", s)
		}
	}
}

func TestNew(t *testing.T) {
	tls13 := []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
	many := slices.Repeat([]string{"AES128-SHA"}, 33)
	for _, tc := range []struct {
		name     string
		pname    string
		versions []string
		suites   []string
		field    string // "" means success
		value    string
	}{
		{"tls12 ecdhe", "mine", []string{"1.2"}, []string{"ECDHE-RSA-AES128-GCM-SHA256"}, "", ""},
		{"openssl version names", "", []string{"TLSv1.2", "TLS1.3"}, append([]string{"AES128-SHA"}, tls13...), "", ""},
		{"ccm kept as not offered", "", []string{"1.3"}, append(slices.Clone(tls13), "TLS_AES_128_CCM_SHA256"), "", ""},
		{"legacy range", "", []string{"1.1", "1.0"}, []string{"DES-CBC3-SHA", "AES256-SHA"}, "", ""},
		{"unknown version", "", []string{"1.4"}, []string{"AES128-SHA"}, "Versions", `"1.4"`},
		{"SSLv3", "", []string{"SSLv3"}, []string{"AES128-SHA"}, "Versions", `"SSLv3"`},
		{"no versions", "", nil, []string{"AES128-SHA"}, "Versions", `""`},
		{"repeated version", "", []string{"1.2", "TLSv1.2"}, []string{"AES128-SHA"}, "Versions", `"TLSv1.2"`},
		{"gap", "", []string{"1.0", "1.2"}, []string{"AES128-SHA"}, "Versions", `"1.0,1.2"`},
		{"unknown suite", "", []string{"1.2"}, []string{"ECDHE-RSA-CHACHA20-POLY1305"}, "Suites", `"ECDHE-RSA-CHACHA20-POLY1305"`},
		{"IANA name", "", []string{"1.2"}, []string{"TLS_RSA_WITH_AES_128_CBC_SHA"}, "Suites", `"TLS_RSA_WITH_AES_128_CBC_SHA"`},
		{"repeated suite", "", []string{"1.2"}, []string{"AES128-SHA", "AES128-SHA"}, "Suites", `"AES128-SHA"`},
		{"too many", "", []string{"1.2"}, many, "Suites", "33"},
		{"no suites", "", []string{"1.2"}, nil, "Suites", `""`},
		{"TLS 1.3 without Go's suites", "", []string{"1.3"}, []string{"TLS_AES_128_GCM_SHA256"}, "Suites", `"TLS_AES_256_GCM_SHA384"`},
		{"TLS 1.3 suite without 1.3", "", []string{"1.2"}, append([]string{"AES128-SHA"}, tls13...), "Suites", `"TLS_AES_128_GCM_SHA256"`},
		{"1.0 with GCM only", "", []string{"1.0", "1.1", "1.2"}, []string{"AES128-GCM-SHA256"}, "Versions", `"TLS 1.0"`},
		{"only suites Go lacks", "", []string{"1.2"}, []string{"AES256-SHA256"}, "Versions", `"TLS 1.2"`},
		{"built-in name", tlspolicy.Policy12, []string{"1.2"}, []string{"AES128-SHA"}, "Name", `"tls_cipher_policy_1_2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tlspolicy.New(tlspolicy.Config{Name: tc.pname, Versions: tc.versions, Suites: tc.suites})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				if !p.Custom || len(p.Versions) != len(tc.versions) || len(p.Suites) != len(tc.suites) {
					t.Fatalf("New = %+v", p)
				}
				return
			}
			var ce *tlspolicy.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Value != tc.value {
				t.Fatalf("New = %v, want ConfigError %s %s", err, tc.field, tc.value)
			}
		})
	}
}

// TestCustomPolicyHandshake applies a custom policy and checks that only
// what it lists is negotiated.
func TestCustomPolicyHandshake(t *testing.T) {
	f := pki(t)
	p, err := tlspolicy.New(tlspolicy.Config{Name: "legacy", Versions: []string{"1.0", "1.1"}, Suites: []string{"DES-CBC3-SHA"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Config()
	srv.Certificates = []tls.Certificate{f.rsa}
	addr := startServer(t, srv, nil)
	cli := f.clientConfig()
	cli.MinVersion = tls.VersionTLS10
	cli.CipherSuites = goSuiteIDs()
	cs, err := handshake(addr, cli)
	if err != nil || cs.Version != tls.VersionTLS11 || cs.CipherSuite != tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA {
		t.Fatalf("handshake = %s %s, %v; want TLS 1.1 with 3DES", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), err)
	}
	cli.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}
	if _, err := handshake(addr, cli); err == nil {
		t.Fatal("AES128-SHA accepted by a 3DES-only policy")
	}
}

func TestZeroPolicyIsDefault(t *testing.T) {
	var zero tlspolicy.Policy
	var cfg tls.Config
	zero.Apply(&cfg)
	def := tlspolicy.Default()
	if cfg.MinVersion != tls.VersionTLS10 || !slices.Equal(cfg.CipherSuites, def.CipherSuiteIDs()) {
		t.Fatalf("zero Policy applied %x, %v; want the default", cfg.MinVersion, cfg.CipherSuites)
	}
	var nilp *tlspolicy.Policy
	if nilp.String() != def.String() || !nilp.AllowsSuite("DES-CBC3-SHA") || len(nilp.Unsupported()) != 3 {
		t.Fatal("nil *Policy does not stand for the default")
	}
}

// TestGoDefaultsRefuseLegacy shows that without a policy crypto/tls refuses
// TLS 1.0, RSA key exchange and 3DES (no GODEBUG is set), so the matrix's
// successes for those cells come from Apply alone.
func TestGoDefaultsRefuseLegacy(t *testing.T) {
	f := pki(t)
	addr := startServer(t, &tls.Config{Certificates: []tls.Certificate{f.rsa}}, nil)
	for _, tc := range []struct {
		name    string
		version uint16
		suite   uint16
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"TLS 1.1", tls.VersionTLS11, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA},
		{"AES128-SHA", tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{"DES-CBC3-SHA", tls.VersionTLS12, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
	} {
		cli := f.clientConfig()
		cli.MinVersion, cli.MaxVersion, cli.CipherSuites = tc.version, tc.version, []uint16{tc.suite}
		if _, err := handshake(addr, cli); err == nil {
			t.Errorf("%s accepted by a server without a policy; is GODEBUG (%q) set?", tc.name, os.Getenv("GODEBUG"))
		}
	}
}
