package proxyin

import "net/netip"

// Trust is a set of trusted address prefixes: the balancers allowed to
// send a PROXY header, or the proxies whose X-Forwarded-For is believed.
// It is meant for the handful of prefixes such a set holds: Contains
// walks them. The zero value trusts no one. Immutable once made; safe
// for concurrent use.
type Trust struct{ ps []netip.Prefix }

// NewTrust returns the set of ps, each masked and with IPv4-mapped IPv6
// prefixes taken as IPv4; ok is false, with the index of the first bad
// one, if a prefix is invalid.
func NewTrust(ps []netip.Prefix) (t Trust, bad int, ok bool) {
	t.ps = make([]netip.Prefix, 0, len(ps))
	for i, p := range ps {
		if !p.IsValid() {
			return Trust{}, i, false
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		t.ps = append(t.ps, p.Masked())
	}
	return t, 0, true
}

// Empty reports whether the set trusts no one.
func (t Trust) Empty() bool { return len(t.ps) == 0 }

// Contains reports whether a, unmapped, is in the set. It allocates
// nothing.
func (t Trust) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
