package sni

import (
	"strings"
	"testing"
)

// FuzzCanonName holds the allocation-free name folding of lookups equal to
// its plain form.
func FuzzCanonName(f *testing.F) {
	for _, s := range []string{"www.Example.com", "a.", "a..", ".", "", "_x.y", "x:80", "\xff", strings.Repeat("a", 64), strings.Repeat("a.", 127)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		var buf [maxName]byte
		n, ok := canonName(&buf, name)
		if ok != plausibleName(name) {
			t.Fatalf("canonName(%q) ok = %v, plausibleName = %v", name, ok, !ok)
		}
		if want := strings.ToLower(strings.TrimSuffix(name, ".")); ok && string(buf[:n]) != want {
			t.Fatalf("canonName(%q) = %q, want %q", name, buf[:n], want)
		}
	})
}

func TestMatchAllocs(t *testing.T) {
	var tab Table[int]
	for _, p := range []string{"www.example.com", "*.example.com", "*.market.example.com"} {
		if err := tab.Set(p, 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"WWW.EXAMPLE.COM.", "A.B.Market.Example.Com", "nothing.example.org", strings.Repeat("A", 300)} {
		if n := testing.AllocsPerRun(100, func() { tab.Match(name) }); n != 0 {
			t.Errorf("Match(%q) allocates %v times, want 0", name, n)
		}
	}
}
