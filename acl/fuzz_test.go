package acl_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/lbkit/lbkit/acl"
)

// FuzzParseEntry checks that ParseEntry never panics, refuses input only
// with a *ConfigError, yields only valid canonical entries, and that
// every accepted entry round-trips through String.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "192.0.2.7", "0.0.0.0/0", "2001:db8::/32", "::1", "::/0",
		"10.0.0.0/8 # office", "  10.0.0.0/8#x  ", "10.0.0.0/33", "10.0.0.1/8",
		"10.0.0.0/08", "10.0.0.0/", "/8", "fe80::1%eth0", "fe80::%eth0/64",
		"::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "1.2.3.4/-1", "1.2.3.4/+8",
		"10.0.0.0/8 # a\x00b", "# only comment", "", "1.2.3", "2001:db8::/129",
		"10.0.0.0/8 # büro", "10.0.0.0/8 #\u00a0x\u00a0", "10.0.0.0/8 # \u2028",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := acl.ParseEntry(s)
		if err != nil {
			var ce *acl.ConfigError
			if !errors.As(err, &ce) || ce.Field != "Entry" {
				t.Fatalf("ParseEntry(%q) error %T %v, want *ConfigError for Entry", s, err, err)
			}
			return
		}
		if !e.Prefix.IsValid() || e.Prefix.Masked() != e.Prefix || e.Prefix.Addr().Is4In6() {
			t.Fatalf("ParseEntry(%q) = %v, not a valid canonical prefix", s, e.Prefix)
		}
		again, err := acl.ParseEntry(e.String())
		if err != nil || again != e {
			t.Fatalf("ParseEntry(%q) = %#v; ParseEntry(%q) = %#v, %v; want round trip", s, e, e.String(), again, err)
		}
		// Whatever ParseEntry accepts, a group of its family accepts.
		fam := acl.IPv6
		if e.Prefix.Addr().Is4() {
			fam = acl.IPv4
		}
		if _, err := acl.NewGroup(acl.GroupConfig{Name: "fuzz", Family: fam}, e); err != nil {
			t.Fatalf("NewGroup(%v) = %v, want nil", e, err)
		}
	})
}

// FuzzAllow compares Policy.Allow against a linear scan of the entries,
// before and after removing half of them. Prefixes come from data in
// chunks of 5 (IPv4: 4 address bytes, 1 length byte) or 17 (IPv6) bytes.
func FuzzAllow(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 192, 0, 2, 7, 32}, []byte{10, 1, 2, 3}, false, true)
	f.Add([]byte{10, 0, 0, 0, 8}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}, false, false)
	f.Add([]byte{}, []byte{1, 2, 3, 4}, false, true)
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32},
		[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, true, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}, true, false)
	f.Add([]byte{1, 2, 3, 4, 24}, []byte{}, false, false)
	f.Fuzz(func(t *testing.T, data, srcBytes []byte, v6, whitelist bool) {
		fam, size := acl.IPv4, 5
		if v6 {
			fam, size = acl.IPv6, 17
		}
		var es []acl.Entry
		for ; len(data) >= size; data = data[size:] {
			a, _ := netip.AddrFromSlice(data[:size-1])
			p := netip.PrefixFrom(a, int(data[size-1])%(a.BitLen()+1)).Masked()
			if p.Addr().Is4In6() {
				continue // refused by design; covered by FuzzParseEntry
			}
			es = append(es, acl.Entry{Prefix: p})
		}
		src, _ := netip.AddrFromSlice(srcBytes) // invalid unless 4 or 16 bytes

		g, err := acl.NewGroup(acl.GroupConfig{Name: "fuzz", Family: fam}, es...)
		if err != nil {
			t.Fatalf("NewGroup: %v", err)
		}
		mode := acl.Blacklist
		if whitelist {
			mode = acl.Whitelist
		}
		p, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: mode, Family: fam})
		if err != nil {
			t.Fatalf("NewPolicy: %v", err)
		}
		check := func(es []acl.Entry) {
			t.Helper()
			want := reference(es, whitelist, src)
			if got := p.Allow(src); got != want {
				t.Fatalf("%v over %v: Allow(%v) = %v, want %v", mode, es, src, got, want)
			}
		}
		check(es)
		var drop []netip.Prefix
		for i := 0; i < len(es); i += 2 {
			drop = append(drop, es[i].Prefix)
		}
		if err := g.Remove(drop...); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		check(g.Entries())
	})
}

// reference is the documented rule set, written as plainly as possible.
func reference(es []acl.Entry, whitelist bool, src netip.Addr) bool {
	if !src.IsValid() {
		return false
	}
	if len(es) == 0 {
		return true
	}
	src = src.Unmap().WithZone("")
	hit := false
	for _, e := range es {
		if e.Prefix.Contains(src) {
			hit = true
		}
	}
	return hit == whitelist
}
