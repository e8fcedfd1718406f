package tlspolicy_test

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/tlspolicy"
)

var allVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// goSuiteIDs is every catalogue suite a crypto/tls client can be told to
// offer, so that a version cell is never decided by a missing suite.
func goSuiteIDs() []uint16 {
	var ids []uint16
	for _, s := range tlspolicy.Suites() {
		if s.Support == tlspolicy.Configurable {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// tally counts matrix cells by outcome and is printed at the end.
type tally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (t *tally) add(outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[outcome]++
}

// policyServer serves p with an RSA and an ECDSA certificate, so that
// ECDHE-RSA, ECDHE-ECDSA and RSA-key-exchange suites can all be chosen.
func policyServer(t *testing.T, p *tlspolicy.Policy) string {
	f := pki(t)
	cfg := p.Config()
	cfg.Certificates = []tls.Certificate{f.ecdsa, f.rsa}
	return startServer(t, cfg, nil)
}

// TestMatrix drives a crypto/tls client against a crypto/tls server for
// every (policy, version) and every (policy, suite) cell of docs/model.md §9.
// Allowed cells must handshake with exactly that version or suite;
// forbidden cells must fail. Suites crypto/tls does not have are probed on
// the wire with a hand-built ClientHello and reported as not offered.
func TestMatrix(t *testing.T) {
	var tl tally
	f := pki(t)
	for _, p := range tlspolicy.Policies() {
		t.Run(p.Name, func(t *testing.T) {
			addr := policyServer(t, p)
			for _, v := range allVersions {
				t.Run(tls.VersionName(v), func(t *testing.T) {
					testVersionCell(t, &tl, f, addr, p, v)
				})
			}
			for _, s := range tlspolicy.Suites() {
				t.Run(s.Name, func(t *testing.T) {
					testSuiteCell(t, &tl, f, addr, p, s)
				})
			}
		})
	}
	total := 0
	for _, n := range tl.counts {
		total += n
	}
	t.Logf("matrix: %d cells: %v", total, tl.counts)
	if want := 5 * (4 + 24); total != want {
		t.Errorf("matrix covered %d cells, want %d", total, want)
	}
}

func testVersionCell(t *testing.T, tl *tally, f *fixture, addr string, p *tlspolicy.Policy, v uint16) {
	cfg := f.clientConfig()
	cfg.MinVersion, cfg.MaxVersion = v, v
	cfg.CipherSuites = goSuiteIDs()
	cs, err := handshake(addr, cfg)
	if p.AllowsVersion(v) {
		if err != nil {
			t.Fatalf("handshake(%s, %s) = %v, want success", p.Name, tls.VersionName(v), err)
		}
		if cs.Version != v {
			t.Fatalf("handshake(%s, %s) negotiated %s", p.Name, tls.VersionName(v), tls.VersionName(cs.Version))
		}
		tl.add("version handshake")
		return
	}
	if err == nil {
		t.Fatalf("handshake(%s, %s) succeeded with %s, want failure", p.Name, tls.VersionName(v), tls.CipherSuiteName(cs.CipherSuite))
	}
	tl.add("version fail")
}

func testSuiteCell(t *testing.T, tl *tally, f *fixture, addr string, p *tlspolicy.Policy, s tlspolicy.Suite) {
	allowed := p.AllowsSuite(s.Name)
	switch s.Support {
	case tlspolicy.NotOffered:
		if slices.Contains(p.CipherSuiteIDs(), s.ID) {
			t.Fatalf("%s configures %s, which crypto/tls does not have", p.Name, s.Name)
		}
		if allowed {
			i := slices.IndexFunc(p.Suites, func(x tlspolicy.Suite) bool { return x.Name == s.Name })
			if p.Suites[i].Support != tlspolicy.NotOffered {
				t.Fatalf("%s lists %s as %v, want not offered", p.Name, s.Name, p.Suites[i].Support)
			}
		}
		got, err := probeSuite(addr, s.ID, s.TLS13)
		if err == nil {
			t.Fatalf("ClientHello offering only %s: server chose %#04x, want refusal", s.Name, got)
		}
		t.Logf("%s: not offered by Go (listed by policy: %v; server refused it on the wire: %v)", s.Name, allowed, err)
		tl.add("suite not offered by Go")

	case tlspolicy.FixedTLS13:
		cfg := f.clientConfig()
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
		cs, err := handshake(addr, cfg)
		got, perr := probeSuite(addr, s.ID, true)
		if !allowed {
			if err == nil || perr == nil {
				t.Fatalf("%s does not list %s, but a TLS 1.3 client got %v / probe got %#04x, %v", p.Name, s.Name, err, got, perr)
			}
			tl.add("suite fail")
			return
		}
		if err != nil || perr != nil || got != s.ID {
			t.Fatalf("%s lists %s: TLS 1.3 handshake = %v; probe offering only it chose %#04x, %v", p.Name, s.Name, err, got, perr)
		}
		t.Logf("%s: server chose it on the wire; a crypto/tls client negotiated %s (Go picks the TLS 1.3 suite)", s.Name, tls.CipherSuiteName(cs.CipherSuite))
		tl.add("suite handshake")

	case tlspolicy.Configurable:
		// The client is held to TLS 1.0–1.2: with TLS 1.3 on both sides the
		// TLS 1.3 suites would be negotiated whatever the client lists, and a
		// forbidden suite would wrongly seem to be accepted.
		handshook := 0
		for _, v := range s.Versions {
			cfg := f.clientConfig()
			cfg.MinVersion, cfg.MaxVersion = v, v
			cfg.CipherSuites = []uint16{s.ID}
			cs, err := handshake(addr, cfg)
			want := allowed && p.AllowsVersion(v)
			switch {
			case want && err != nil:
				t.Fatalf("handshake(%s, %s at %s) = %v, want success", p.Name, s.Name, tls.VersionName(v), err)
			case want && cs.CipherSuite != s.ID:
				t.Fatalf("handshake(%s, %s at %s) negotiated %s", p.Name, s.Name, tls.VersionName(v), tls.CipherSuiteName(cs.CipherSuite))
			case !want && err == nil:
				t.Fatalf("handshake(%s, %s at %s) succeeded, want failure", p.Name, s.Name, tls.VersionName(v))
			case want:
				handshook++
			}
		}
		switch {
		case allowed && handshook == 0:
			t.Fatalf("%s lists %s but no version it allows can use it", p.Name, s.Name)
		case allowed:
			tl.add("suite handshake")
		default:
			tl.add("suite fail")
		}
	}
}

// TestForbiddenSuiteWithTLS13 shows why the matrix holds clients to TLS
// 1.2 for suite cells: a client that also speaks TLS 1.3 connects to
// 1_2_strict_with_1_3 even when it lists only a forbidden TLS 1.2 suite,
// because TLS 1.3 suites are negotiated separately — and the forbidden
// suite is still never used.
func TestForbiddenSuiteWithTLS13(t *testing.T) {
	p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		t.Fatal(err)
	}
	addr := policyServer(t, p)
	cfg := pki(t).clientConfig()
	cfg.MaxVersion = tls.VersionTLS13
	cfg.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}
	cs, err := handshake(addr, cfg)
	if err != nil {
		t.Fatalf("handshake = %v, want TLS 1.3 success", err)
	}
	if cs.Version != tls.VersionTLS13 || cs.CipherSuite == tls.TLS_RSA_WITH_AES_128_CBC_SHA {
		t.Fatalf("negotiated %s %s, want TLS 1.3 with a TLS 1.3 suite", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	}
	// A CBC suite first in the client's list makes Go prefer ChaCha20.
	if cs.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256 {
		t.Logf("negotiated %s (no AES-GCM hardware preference?)", tls.CipherSuiteName(cs.CipherSuite))
	}
	cfg.MaxVersion = tls.VersionTLS12
	if _, err := handshake(addr, cfg); err == nil {
		t.Fatal("TLS 1.2 handshake with only AES128-SHA succeeded under 1_2_strict_with_1_3")
	}
}

// TestProbeControl checks the hand-built ClientHello against suites Go
// does offer, so a refusal in the matrix means the suite, not the probe.
func TestProbeControl(t *testing.T) {
	p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		t.Fatal(err)
	}
	addr := policyServer(t, p)
	for _, tc := range []struct {
		name  string
		id    uint16
		tls13 bool
	}{
		{"ECDHE-RSA-AES128-GCM-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false},
		{"ECDHE-ECDSA-AES256-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := probeSuite(addr, tc.id, tc.tls13)
			if err != nil || got != tc.id {
				t.Fatalf("probeSuite(%s) = %#04x, %v; want %#04x", tc.name, got, err, tc.id)
			}
		})
	}
}

func ExamplePolicy_CipherSuiteIDs() {
	p, _ := tlspolicy.Lookup(tlspolicy.Policy12Strict)
	for _, id := range p.CipherSuiteIDs() {
		fmt.Println(tls.CipherSuiteName(id))
	}
	// Output:
	// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	// TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
	// TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
	// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
	// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	// TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
	// TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
	// TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
	// TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
	// TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
}
