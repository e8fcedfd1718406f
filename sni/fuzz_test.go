package sni_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/sni"
)

var fuzzSeeds = []string{
	"www.example.com", "WWW.Example.COM.", "*.example.com", "*.market.example.com",
	"info.market.example.com", "*.com", "*", "*.", ".", "", "a..b", "-a.com", "a-.com",
	"a_b.com", "xn--bcher-kva.example", "bücher.example", "*.*.com", "a.*.com",
	"example.com:443", "[::1]:443", "1.2.3.4", strings.Repeat("a", 64) + ".com",
	strings.Repeat("abcdefghi.", 26), "\x00", "*.example.com..",
}

// FuzzParseDomain checks that ParseDomain never panics, refuses with a
// *ConfigError naming the input, and that an accepted pattern is canonical
// and matched by the names it should match.
func FuzzParseDomain(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := sni.ParseDomain(s)
		if err != nil {
			var ce *sni.ConfigError
			if !errors.As(err, &ce) || ce.Field != "Domain" || ce.Value == "" {
				t.Fatalf("ParseDomain(%q) error %v is not a *ConfigError naming the domain", s, err)
			}
			return
		}
		c := d.String()
		if c != strings.ToLower(c) || strings.HasSuffix(c, ".") || len(c) > 253 || c == "" {
			t.Fatalf("ParseDomain(%q) = %q, not canonical", s, c)
		}
		if d2, err := sni.ParseDomain(c); err != nil || d2 != d {
			t.Fatalf("ParseDomain(%q) = %q, %v; want it unchanged", c, d2, err)
		}
		if d2, err := sni.ParseDomain(strings.ToUpper(s)); err != nil || d2 != d {
			t.Fatalf("ParseDomain(upper %q) = %q, %v; want %q", s, d2, err, c)
		}
		name := matchingName(d)
		if !d.Matches(name) || !d.Matches(strings.ToUpper(name)+".") {
			t.Fatalf("%q does not match %q", c, name)
		}
		if suffix, ok := strings.CutPrefix(c, "*."); ok && d.Matches(suffix) {
			t.Fatalf("%q matches its own suffix %q", c, suffix)
		}
	})
}

// matchingName returns a host name d must match: the name itself, or one
// label beneath a wildcard's suffix.
func matchingName(d sni.Domain) string {
	if d.IsWildcard() {
		return "x" + d.String()[1:]
	}
	return d.String()
}

// FuzzMatch builds a table from comma-separated patterns (invalid ones
// refused) and checks Match against a brute-force oracle over
// Domain.Matches: exact first, then the longest wildcard. Every accepted
// pattern must be found by a name it matches.
func FuzzMatch(f *testing.F) {
	f.Add("www.example.com,*.example.com,*.market.example.com", "info.market.example.com")
	f.Add("*.example.com,example.com", "EXAMPLE.com.")
	f.Add("*.com,*.b.com,a.b.com", "x.a.b.com")
	f.Add("*.example.com", "a..example.com")
	f.Add("*.example.com", "_x.example.com")
	f.Add("a.com", "a.com:80")
	for _, s := range fuzzSeeds {
		f.Add(s+",*.example.com", s)
	}
	f.Fuzz(func(t *testing.T, patterns, name string) {
		var tab sni.Table[string]
		var domains []sni.Domain
		for p := range strings.SplitSeq(patterns, ",") {
			d, perr := sni.ParseDomain(p)
			if err := tab.Set(p, p); (err == nil) != (perr == nil) {
				t.Fatalf("Set(%q) = %v but ParseDomain = %v", p, err, perr)
			}
			if perr == nil {
				domains = append(domains, d)
			}
		}
		check := func(name string) {
			want, wantOK := oracle(domains, name)
			got, _, ok := tab.MatchPattern(name)
			if ok != wantOK || got != want {
				t.Fatalf("patterns %q: MatchPattern(%q) = %q, %v; want %q, %v", patterns, name, got, ok, want, wantOK)
			}
		}
		check(name)
		for _, d := range domains {
			n := matchingName(d)
			if _, ok := tab.Match(n); !ok {
				t.Fatalf("patterns %q: %q not found by %q", patterns, d, n)
			}
			check(n)
			check(strings.ToUpper(n) + ".")
		}
	})
}

// oracle returns the pattern that should match name among domains.
func oracle(domains []sni.Domain, name string) (string, bool) {
	best := ""
	for _, d := range domains {
		if !d.Matches(name) {
			continue
		}
		if !d.IsWildcard() {
			return d.String(), true
		}
		if len(d.String()) > len(best) {
			best = d.String()
		}
	}
	return best, best != ""
}

// FuzzStripPort checks that StripPort never panics and returns a part of
// its input that a port-free host passes through unchanged.
func FuzzStripPort(f *testing.F) {
	for _, s := range []string{"example.com:8080", "[::1]:443", "[::1", "::1", "a:b:c", ":", "[]", "example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hostport string) {
		h := sni.StripPort(hostport)
		if !strings.Contains(hostport, h) {
			t.Fatalf("StripPort(%q) = %q, not part of the input", hostport, h)
		}
		if !strings.ContainsAny(hostport, ":[") && h != hostport {
			t.Fatalf("StripPort(%q) = %q, want it unchanged", hostport, h)
		}
		if d, err := sni.ParseDomain(h); err == nil && !d.Matches(sni.StripPort(h+":1")) {
			t.Fatalf("StripPort(%q) does not strip the port", h+":1")
		}
	})
}
