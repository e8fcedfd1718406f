package sni

import (
	"fmt"
	"strings"
)

// DNS limits enforced on patterns (RFC 1035 §2.3.4, RFC 1123 §2.1).
const (
	maxName  = 253 // characters in a name, without the trailing dot
	maxLabel = 63  // characters in one label
)

// Domain is a validated domain pattern in canonical form: lower case, no
// trailing dot. It is either exact ("www.example.com") or a wildcard
// ("*.example.com") that matches every name at any depth beneath its
// suffix, but not the suffix itself.
//
// The zero Domain is empty and matches nothing; build one with
// [ParseDomain]. A Domain is a small immutable value, safe to copy and to
// use from several goroutines.
type Domain struct {
	s    string // canonical pattern, "*." included for a wildcard
	wild bool
}

// ParseDomain validates a domain pattern and returns it in canonical form.
//
// Accepted: labels of ASCII letters, digits and '-', separated by '.';
// each label 1–63 characters, starting and ending with a letter or digit;
// at most 253 characters in all; one trailing dot is ignored; upper case is
// folded to lower case. A wildcard is a leading "*." followed by such a
// name ("*.example.com"; "*.com" and other single-label suffixes are
// accepted). Refused: a bare "*", '*' anywhere else, empty labels,
// underscores, non-ASCII (give internationalized names in their "xn--"
// A-label form). The error is a *ConfigError naming the domain.
func ParseDomain(s string) (Domain, error) {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return Domain{}, configErr("Domain", s, "empty")
	}
	if len(name) > maxName {
		return Domain{}, configErr("Domain", s, fmt.Sprintf("%d characters, longer than %d", len(name), maxName))
	}
	if name == "*" {
		return Domain{}, configErr("Domain", s, `a bare "*" matches nothing: unmatched names get the default`)
	}
	rest, wild := strings.CutPrefix(name, "*.")
	var b strings.Builder
	b.Grow(len(name))
	if wild {
		b.WriteString("*.")
	}
	for label := range strings.SplitSeq(rest, ".") {
		if label == "" {
			return Domain{}, configErr("Domain", s, "empty label")
		}
		if len(label) > maxLabel {
			return Domain{}, configErr("Domain", s, fmt.Sprintf("label %q is %d characters, longer than %d", label, len(label), maxLabel))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case c == '-':
				if i == 0 || i == len(label)-1 {
					return Domain{}, configErr("Domain", s, fmt.Sprintf("label %q must start and end with a letter or digit", label))
				}
			case c == '*':
				return Domain{}, configErr("Domain", s, `'*' is only allowed as a leading "*."`)
			default:
				return Domain{}, configErr("Domain", s, fmt.Sprintf("character %q not allowed: letters, digits, '-' and '.' only", rune(c)))
			}
			b.WriteByte(c)
		}
		b.WriteByte('.')
	}
	out := b.String()
	return Domain{s: out[:len(out)-1], wild: wild}, nil
}

// String returns the canonical pattern, "*." included for a wildcard.
func (d Domain) String() string { return d.s }

// IsWildcard reports whether d is a wildcard ("*.example.com").
func (d Domain) IsWildcard() bool { return d.wild }

// suffix returns the part a wildcard matches beneath ("example.com"), or
// the whole name for an exact domain.
func (d Domain) suffix() string {
	if d.wild {
		return d.s[2:]
	}
	return d.s
}

// Matches reports whether the host name matches d on its own, ignoring
// other patterns: case-insensitively, one trailing dot ignored; a wildcard
// matches names at any depth beneath its suffix but not the suffix itself.
// The name must be a plausible host name (letters, digits, '-', '_', no
// empty label, DNS lengths); anything else matches nothing. Strip a port
// first with [StripPort].
func (d Domain) Matches(name string) bool {
	if d.s == "" || !plausibleName(name) {
		return false
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !d.wild {
		return name == d.s
	}
	return strings.HasSuffix(name, d.s[1:]) // ".example.com"
}

// plausibleName is the name rule of lookups, written plainly; canonName is
// the fast form and the fuzz targets hold them equal.
func plausibleName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxName {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > maxLabel {
			return false
		}
		for _, c := range []byte(label) {
			if nameByte[c] == 0 {
				return false
			}
		}
	}
	return true
}

// nameByte maps a byte allowed in a looked-up name to its lower-case form,
// '.' to itself, and everything else to 0. Names (unlike patterns) may hold
// '_', which real host names carry though DNS host rules forbid it.
var nameByte = func() (t [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	t['-'], t['_'], t['.'] = '-', '_', '.'
	return t
}()

// canonName writes the lower-case form of name, without its trailing dot,
// into buf and returns its length. ok is false if name is not a plausible
// host name. It allocates nothing.
func canonName(buf *[maxName]byte, name string) (n int, ok bool) {
	if l := len(name); l > 0 && name[l-1] == '.' {
		name = name[:l-1]
	}
	if len(name) == 0 || len(name) > maxName {
		return 0, false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		c := nameByte[name[i]]
		switch c {
		case 0:
			return 0, false
		case '.':
			if label == 0 {
				return 0, false
			}
			label = 0
		default:
			if label++; label > maxLabel {
				return 0, false
			}
		}
		buf[i] = c
	}
	if label == 0 {
		return 0, false
	}
	return len(name), true
}

// StripPort returns the host part of a Host header or authority:
// "example.com:8080" → "example.com", "[::1]:443" → "::1", and a value
// without a port unchanged. Unlike net.SplitHostPort it needs no port and
// never fails, and it allocates nothing. Table and Selector lookups take a
// bare host name, so HTTP callers strip the port with it first.
func StripPort(hostport string) string {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.IndexByte(hostport, ']'); i > 0 {
			return hostport[1:i]
		}
		return hostport
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && strings.IndexByte(hostport, ':') == i {
		return hostport[:i]
	}
	return hostport // no port, or a bare IPv6 address
}
