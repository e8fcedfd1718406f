package sni_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/sni"
)

func TestParseDomain(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 4×63 + 3 dots = 255 > 253; 3×63 + 61 + 3 dots = 253.
	name253 := strings.Join([]string{long63, long63, long63, strings.Repeat("b", 61)}, ".")
	tests := []struct {
		name   string
		in     string
		want   string // canonical form; "" means refused
		wild   bool
		reason string // substring of the error
	}{
		{name: "exact", in: "www.example.com", want: "www.example.com"},
		{name: "upper case folded", in: "WWW.Example.COM", want: "www.example.com"},
		{name: "trailing dot dropped", in: "www.example.com.", want: "www.example.com"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "digits and hyphen", in: "a-1.0x.example", want: "a-1.0x.example"},
		{name: "leading digit", in: "1password.com", want: "1password.com"},
		{name: "punycode", in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "wildcard", in: "*.example.com", want: "*.example.com", wild: true},
		{name: "narrow wildcard", in: "*.Market.example.com.", want: "*.market.example.com", wild: true},
		{name: "single-label wildcard", in: "*.com", want: "*.com", wild: true},
		{name: "63-char label", in: long63 + ".com", want: long63 + ".com"},
		{name: "253 chars", in: name253, want: name253},
		{name: "253 chars and trailing dot", in: name253 + ".", want: name253},

		{name: "empty", in: "", reason: "empty"},
		{name: "only dot", in: ".", reason: "empty"},
		{name: "bare star", in: "*", reason: `bare "*"`},
		{name: "bare star dot", in: "*.", reason: `bare "*"`},
		{name: "star inside", in: "www.*.example.com", reason: `only allowed as a leading "*."`},
		{name: "star suffix", in: "www*.example.com", reason: `only allowed as a leading "*."`},
		{name: "double star", in: "*.*.example.com", reason: `only allowed as a leading "*."`},
		{name: "star without dot", in: "*example.com", reason: `only allowed as a leading "*."`},
		{name: "leading dot", in: ".example.com", reason: "empty label"},
		{name: "double dot", in: "www..example.com", reason: "empty label"},
		{name: "two trailing dots", in: "example.com..", reason: "empty label"},
		{name: "leading hyphen", in: "-www.example.com", reason: "start and end"},
		{name: "label ends with hyphen", in: "www-.example.com", reason: "start and end"},
		{name: "underscore", in: "_dmarc.example.com", reason: "'_' not allowed"},
		{name: "space", in: "www example.com", reason: "' ' not allowed"},
		{name: "port", in: "example.com:443", reason: "':' not allowed"},
		{name: "non-ASCII", in: "bücher.example", reason: "not allowed"},
		{name: "64-char label", in: long63 + "a.com", reason: "longer than 63"},
		{name: "254 chars", in: name253 + "b", reason: "longer than 253"},
		{name: "wildcard empty label", in: "*..com", reason: "empty label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := sni.ParseDomain(tt.in)
			if tt.want == "" {
				var ce *sni.ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("ParseDomain(%q) = %q, %v; want a *ConfigError", tt.in, d, err)
				}
				if ce.Field != "Domain" || !strings.Contains(ce.Error(), tt.reason) || !strings.Contains(ce.Error(), tt.in) {
					t.Errorf("ParseDomain(%q) error %q; want field Domain, the domain and %q", tt.in, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDomain(%q) error: %v", tt.in, err)
			}
			if d.String() != tt.want || d.IsWildcard() != tt.wild {
				t.Errorf("ParseDomain(%q) = %q (wildcard %v), want %q (wildcard %v)", tt.in, d, d.IsWildcard(), tt.want, tt.wild)
			}
		})
	}
}

func TestDomainMatches(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		host    string
		want    bool
	}{
		{name: "exact", pattern: "www.example.com", host: "www.example.com", want: true},
		{name: "exact mixed case", pattern: "www.example.com", host: "WwW.ExAmPlE.CoM", want: true},
		{name: "exact trailing dot", pattern: "www.example.com", host: "www.example.com.", want: true},
		{name: "exact other", pattern: "www.example.com", host: "api.example.com"},
		{name: "exact not a suffix match", pattern: "example.com", host: "www.example.com"},
		{name: "wildcard one label", pattern: "*.example.com", host: "a.example.com", want: true},
		{name: "wildcard deep", pattern: "*.example.com", host: "a.b.c.example.com", want: true},
		{name: "wildcard not apex", pattern: "*.example.com", host: "example.com"},
		{name: "wildcard not lookalike", pattern: "*.example.com", host: "aexample.com"},
		{name: "wildcard upper case", pattern: "*.example.com", host: "A.EXAMPLE.COM.", want: true},
		{name: "name with underscore", pattern: "*.example.com", host: "_srv.example.com", want: true},
		{name: "name with empty label", pattern: "*.example.com", host: "a..example.com"},
		{name: "name with port", pattern: "www.example.com", host: "www.example.com:443"},
		{name: "literal star name", pattern: "*.example.com", host: "*.example.com"},
		{name: "empty name", pattern: "*.example.com", host: ""},
		{name: "zero domain", pattern: "", host: "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d sni.Domain
			if tt.pattern != "" {
				var err error
				if d, err = sni.ParseDomain(tt.pattern); err != nil {
					t.Fatal(err)
				}
			}
			if got := d.Matches(tt.host); got != tt.want {
				t.Errorf("Domain(%q).Matches(%q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestStripPort(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "host only", in: "example.com", want: "example.com"},
		{name: "host and port", in: "example.com:8080", want: "example.com"},
		{name: "empty port", in: "example.com:", want: "example.com"},
		{name: "ipv4 and port", in: "10.0.0.1:80", want: "10.0.0.1"},
		{name: "bracketed ipv6 and port", in: "[::1]:443", want: "::1"},
		{name: "bracketed ipv6", in: "[2001:db8::1]", want: "2001:db8::1"},
		{name: "bare ipv6", in: "2001:db8::1", want: "2001:db8::1"},
		{name: "unclosed bracket", in: "[::1", want: "[::1"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sni.StripPort(tt.in); got != tt.want {
				t.Errorf("StripPort(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
