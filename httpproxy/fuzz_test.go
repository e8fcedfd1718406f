package httpproxy

import (
	"strings"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/sni"
)

// FuzzHTTPRoutes checks forwarding-rule selection against a brute-force
// reference: the best-matching host pattern (exact, then the longest
// wildcard suffix) and its longest path prefix, then the host-less rules,
// then the default group.
func FuzzHTTPRoutes(f *testing.F) {
	for _, s := range [][2]string{
		{"www.example.com", "/"}, {"info.market.example.com", "/api/v2"}, {"a.example.com:8080", "/shop/x"},
		{"example.com", "/apix"}, {"", ""}, {"WWW.EXAMPLE.COM.", "/api"}, {"[::1]:80", "/"}, {"a..b", "/a"},
	} {
		f.Add(s[0], s[1])
	}
	mk := func() *balancer.Group { g, _ := balancer.New(balancer.Config{}); return g }
	def := mk()
	rules := []Rule{
		{Path: "/api", Group: mk()},
		{Path: "/api/v2", Group: mk()},
		{Host: "www.example.com", Group: mk()},
		{Host: "www.example.com", Path: "/api", Group: mk()},
		{Host: "*.market.example.com", Group: mk()},
		{Host: "*.example.com", Path: "/shop", Group: mk()},
	}
	rs, err := buildRoutes(def, rules)
	if err != nil {
		f.Fatal(err)
	}
	reference := func(host, path string) *balancer.Group {
		name := sni.StripPort(host)
		bestHost, bestLen, exact := "", -1, false
		for _, r := range rules {
			if r.Host == "" {
				continue
			}
			d, _ := sni.ParseDomain(r.Host)
			if !d.Matches(name) {
				continue
			}
			switch {
			case !d.IsWildcard():
				bestHost, exact = r.Host, true
			case !exact && len(r.Host) > bestLen:
				bestHost, bestLen = r.Host, len(r.Host)
			}
		}
		pick := func(host string) *balancer.Group {
			var g *balancer.Group
			n := -1
			for _, r := range rules {
				p := r.Path
				if p == "" {
					p = "/"
				}
				if r.Host == host && strings.HasPrefix(path, p) && len(p) > n {
					g, n = r.Group, len(p)
				}
			}
			return g
		}
		if bestHost != "" {
			if g := pick(bestHost); g != nil {
				return g
			}
		}
		if g := pick(""); g != nil {
			return g
		}
		return def
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		if got, want := rs.group(host, path), reference(host, path); got != want {
			t.Errorf("group(%q, %q) = %v, want %v", host, path, got, want)
		}
	})
}
