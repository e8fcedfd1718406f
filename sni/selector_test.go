package sni_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lbkit/lbkit/sni"
)

func TestSelectorCoverage(t *testing.T) {
	exact := mustCert("www.example.com", "api.example.com")
	wild := mustCert("*.example.com")
	wildTrailingDot := mustCert("*.Example.com.")
	noLeaf := mustCert("www.example.com")
	noLeaf = &tls.Certificate{Certificate: noLeaf.Certificate, PrivateKey: noLeaf.PrivateKey}
	noKey := &tls.Certificate{Certificate: exact.Certificate, Leaf: exact.Leaf}
	garbage := &tls.Certificate{Certificate: [][]byte{[]byte("not DER")}, PrivateKey: exact.PrivateKey}
	noSAN := mustCert()
	tests := []struct {
		name   string
		domain string
		cert   *tls.Certificate
		reason string // "" means accepted
	}{
		{name: "exact SAN", domain: "www.example.com", cert: exact},
		{name: "second exact SAN", domain: "API.example.com", cert: exact},
		{name: "exact domain under wildcard SAN", domain: "shop.example.com", cert: wild},
		{name: "wildcard domain, same wildcard SAN", domain: "*.example.com", cert: wild},
		{name: "wildcard SAN with odd spelling", domain: "*.example.com", cert: wildTrailingDot},
		{name: "leaf parsed when Leaf is nil", domain: "www.example.com", cert: noLeaf},

		{name: "exact SAN other name", domain: "mail.example.com", cert: exact, reason: "does not cover"},
		{name: "apex under wildcard SAN", domain: "example.com", cert: wild, reason: "does not cover"},
		{name: "two labels under wildcard SAN", domain: "a.b.example.com", cert: wild, reason: "does not cover"},
		{name: "wildcard domain, exact SANs", domain: "*.example.com", cert: exact, reason: "does not cover"},
		{name: "narrower wildcard domain", domain: "*.market.example.com", cert: wild, reason: "does not cover"},
		{name: "no SANs", domain: "www.example.com", cert: noSAN, reason: "DNS SANs: none"},
		{name: "nil certificate", domain: "www.example.com", reason: "nil"},
		{name: "no private key", domain: "www.example.com", cert: noKey, reason: "no private key"},
		{name: "empty chain", domain: "www.example.com", cert: &tls.Certificate{PrivateKey: exact.PrivateKey}, reason: "chain is empty"},
		{name: "unparsable leaf", domain: "www.example.com", cert: garbage, reason: "does not parse"},
		{name: "invalid domain", domain: "www..example.com", cert: exact, reason: "empty label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sni.Selector
			err := s.Set(tt.domain, tt.cert)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Set(%q) = %v, want nil", tt.domain, err)
				}
				if s.Get(tt.domain) != tt.cert {
					t.Errorf("Get(%q) is not the bound certificate", tt.domain)
				}
				return
			}
			var ce *sni.ConfigError
			if !errors.As(err, &ce) || ce.Field != "Domain" || !strings.Contains(err.Error(), tt.reason) ||
				!strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.domain)) {
				t.Fatalf("Set(%q) = %v; want a *ConfigError naming the domain and %q", tt.domain, err, tt.reason)
			}
			if s.Len() != 0 {
				t.Errorf("refused Set left %d domains bound", s.Len())
			}
		})
	}
}

func TestSelectorDefault(t *testing.T) {
	def := mustCert("default.test")
	if _, err := sni.NewSelector(sni.SelectorConfig{Default: &tls.Certificate{}}); err == nil {
		t.Error("NewSelector(empty certificate) = nil error")
	}
	var s sni.Selector
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.test"}); !errors.Is(err, sni.ErrNoCertificate) {
		t.Errorf("GetCertificate without default = %v, want ErrNoCertificate", err)
	}
	if err := s.SetDefault(def); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetCertificate(&tls.ClientHelloInfo{}); c != def || err != nil || s.Default() != def {
		t.Errorf("GetCertificate(no SNI) = %s, %v; want the default", cn(c), err)
	}
	if err := s.SetDefault(nil); err != nil || s.Certificate("x.test") != nil {
		t.Errorf("SetDefault(nil) = %v; Certificate = %s, want <nil>", err, cn(s.Certificate("x.test")))
	}
}

func TestSelectorUpdate(t *testing.T) {
	a, b := mustCert("a.example.com"), mustCert("b.example.com")
	s, err := sni.NewSelector(sni.SelectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(bt *sni.Batch[*tls.Certificate]) error {
		_ = bt.Set("a.example.com", a)
		_ = bt.Set("c.example.com", b) // b does not cover c: the whole batch fails
		return nil
	})
	if err == nil || s.Get("a.example.com") != nil {
		t.Fatalf("Update with an uncovered domain = %v, a bound = %v; want an error and nothing bound", err, s.Get("a.example.com") != nil)
	}
	err = s.Update(func(bt *sni.Batch[*tls.Certificate]) error {
		_ = bt.Set("a.example.com", a)
		return bt.Set("b.example.com", b)
	})
	if err != nil || s.Get("a.example.com") != a || s.Get("b.example.com") != b {
		t.Fatalf("Update = %v; want both bound", err)
	}
	var got []string
	for d, c := range s.All() {
		got = append(got, d+"="+cn(c))
	}
	if want := "a.example.com=a.example.com b.example.com=b.example.com"; strings.Join(got, " ") != want {
		t.Errorf("All = %q, want %q", got, want)
	}
	if err := s.Delete("a.example.com"); err != nil || s.Get("a.example.com") != nil {
		t.Errorf("Delete = %v; still bound = %v", err, s.Get("a.example.com") != nil)
	}
}

// serveTLS accepts TLS connections on 127.0.0.1 with cfg until the test
// ends, completing each handshake.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					_, _ = tc.Read(make([]byte, 1)) // until the client closes
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// handshake connects with the given SNI name ("" sends none) and returns
// the certificate the server presented.
func handshake(addr, serverName string) ([]byte, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // the test compares certificates itself
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw, nil
}

func TestSelectorHandshake(t *testing.T) {
	leakcheck.Check(t)
	def := mustCert("default.test")
	exact := mustCert("info.market.example.com")
	narrow := mustCert("*.market.example.com")
	wide := mustCert("*.example.com")
	apex := mustCert("example.com")
	s, err := sni.NewSelector(sni.SelectorConfig{Default: def})
	if err != nil {
		t.Fatal(err)
	}
	for d, c := range map[string]*tls.Certificate{
		"info.market.example.com": exact,
		"*.market.example.com":    narrow,
		"*.example.com":           wide,
		"example.com":             apex,
	} {
		if err := s.Set(d, c); err != nil {
			t.Fatal(err)
		}
	}
	addr := serveTLS(t, &tls.Config{GetCertificate: s.GetCertificate})

	tests := []struct {
		name       string
		serverName string
		want       *tls.Certificate
	}{
		{name: "exact", serverName: "info.market.example.com", want: exact},
		{name: "exact mixed case", serverName: "INFO.Market.example.com", want: exact},
		{name: "narrow wildcard", serverName: "news.market.example.com", want: narrow},
		{name: "wide wildcard", serverName: "shop.example.com", want: wide},
		{name: "wide wildcard two deep", serverName: "a.b.example.com", want: wide},
		{name: "apex", serverName: "example.com", want: apex},
		{name: "no SNI", serverName: "", want: def},
		{name: "IP address sends no SNI", serverName: "127.0.0.1", want: def},
		{name: "no match", serverName: "www.example.org", want: def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handshake(addr, tt.serverName)
			if err != nil {
				t.Fatalf("handshake(%q): %v", tt.serverName, err)
			}
			if !bytes.Equal(got, tt.want.Certificate[0]) {
				t.Errorf("handshake(%q) got another certificate than %s", tt.serverName, cn(tt.want))
			}
		})
	}

	t.Run("no default and no match fails", func(t *testing.T) {
		if err := s.SetDefault(nil); err != nil {
			t.Fatal(err)
		}
		defer s.SetDefault(def)
		if _, err := handshake(addr, "www.example.org"); err == nil {
			t.Error("handshake without a certificate succeeded")
		}
	})
}

// TestSelectorLive adds, edits and deletes domains while handshakes and
// lookups run; run with -race. Every handshake must get one of the
// certificates that could be current for its name.
func TestSelectorLive(t *testing.T) {
	leakcheck.Check(t)
	def := mustCert("default.test")
	wide := mustCert("*.example.com")
	editions := []*tls.Certificate{mustCert("live.example.com"), mustCert("live.example.com", "other.example.com")}
	s, err := sni.NewSelector(sni.SelectorConfig{Default: def})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("*.example.com", wide); err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, &tls.Config{GetCertificate: s.GetCertificate})
	valid := map[string]bool{string(wide.Certificate[0]): true}
	for _, c := range editions {
		valid[string(c.Certificate[0])] = true
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				c := s.Certificate("LIVE.example.com")
				if !valid[string(c.Certificate[0])] {
					t.Errorf("Certificate(live) = %s", cn(c))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			got, err := handshake(addr, "live.example.com")
			if err != nil {
				t.Errorf("handshake %d: %v", i, err)
				return
			}
			if !valid[string(got)] {
				t.Errorf("handshake %d: unexpected certificate", i)
				return
			}
		}
	})
	for i := range 600 {
		var err error
		switch i % 3 {
		case 0, 1: // add, then edit with a new certificate
			err = s.Set("live.example.com", editions[i%3])
		case 2:
			err = s.Delete("live.example.com")
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if i%100 == 0 {
			if err := s.SetDefault(mustCert(fmt.Sprint("default", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
}
