package acl

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// MaxCommentLen is the longest [Entry] comment accepted, in bytes.
const MaxCommentLen = 256

// Entry is one rule of a [Group]: a CIDR prefix (a single address is a
// full-length prefix, /32 or /128) and an optional free-text comment.
//
// Its text form, read by [ParseEntry] and written by [Entry.String], is
//
//	10.0.0.0/8
//	192.0.2.7              (same as 192.0.2.7/32)
//	2001:db8::/32 # lab    (a comment follows '#')
//
// An Entry is valid when Prefix is valid and canonical (no host bits set,
// as in 10.0.0.1/8), is not an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d;
// write the IPv4 form, since sources are unmapped before they are
// matched), and Comment is at most [MaxCommentLen] bytes of printable UTF-8.
// [Group] methods validate every entry they are given, so an Entry built as
// a struct literal is checked as thoroughly as a parsed one.
//
// The zero value is not a valid entry. Entry is a plain value, safe to copy
// and to share between goroutines.
type Entry struct {
	Prefix  netip.Prefix // the covered addresses, canonical (masked)
	Comment string       // free text for operators; ignored by matching
}

// ParseEntry parses the text form of an [Entry]: an IPv4 or IPv6 address
// with an optional "/bits" prefix length, optionally followed by '#' and a
// comment. Surrounding white space is ignored. A refused entry yields a
// *[ConfigError] naming it, e.g.
//
//	acl: Entry "10.0.0.0/33": prefix length out of range 0–32
func ParseEntry(s string) (Entry, error) {
	s = strings.TrimSpace(s)
	text, comment, _ := strings.Cut(s, "#")
	text = strings.TrimSpace(text)
	comment = strings.TrimSpace(comment)

	bad := func(reason string) (Entry, error) {
		return Entry{}, cfgerr.New(pkg, "Entry", s, reason)
	}
	if text == "" {
		return bad("empty address")
	}
	addrText, bitsText, hasBits := strings.Cut(text, "/")
	addr, err := netip.ParseAddr(addrText)
	if err != nil {
		return Entry{}, cfgerr.Wrap(pkg, "Entry", s, "invalid IP address", err)
	}
	if addr.Zone() != "" {
		return bad("IPv6 zone not allowed")
	}
	bits := addr.BitLen()
	if hasBits {
		n, ok := parseBits(bitsText)
		if !ok {
			return bad("invalid prefix length")
		}
		if n > bits {
			return bad(fmt.Sprintf("prefix length out of range 0–%d", bits))
		}
		bits = n
	}
	// Cannot fail: addr is valid, zone-free and bits is in range.
	pfx := netip.PrefixFrom(addr, bits)
	e := Entry{Prefix: pfx, Comment: comment}
	if reason := e.problem(); reason != "" {
		return bad(reason)
	}
	return e, nil
}

// parseBits parses a decimal prefix length of at most three digits,
// refusing signs and leading zeros as netip.ParsePrefix does.
func parseBits(s string) (int, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// problem returns why e is not a valid entry, or "" if it is.
func (e Entry) problem() string {
	p := e.Prefix
	if !p.IsValid() {
		return "invalid prefix"
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("host bits set; want %s", m)
	}
	if a := p.Addr(); a.Is4In6() {
		v4 := netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		return fmt.Sprintf("IPv4-mapped IPv6 prefix never matches; write %s", v4)
	}
	if len(e.Comment) > MaxCommentLen {
		return fmt.Sprintf("comment longer than %d bytes", MaxCommentLen)
	}
	if !utf8.ValidString(e.Comment) {
		return "comment is not valid UTF-8"
	}
	for _, r := range e.Comment {
		if !unicode.IsGraphic(r) {
			return fmt.Sprintf("comment holds unprintable character %U", r)
		}
	}
	return ""
}

// family returns the family of a valid entry.
func (e Entry) family() Family { return familyOf(e.Prefix.Addr()) }

// String returns the text form of e, which [ParseEntry] reads back:
// the prefix in canonical form, then " # " and the comment if there is one.
func (e Entry) String() string {
	if e.Comment == "" {
		return e.Prefix.String()
	}
	return e.Prefix.String() + " # " + e.Comment
}

// ParseEntries parses each string with [ParseEntry]. It stops at the first
// refused entry and returns its error, so a caller can apply a batch only if
// every line parses.
func ParseEntries(lines ...string) ([]Entry, error) {
	out := make([]Entry, 0, len(lines))
	for _, s := range lines {
		e, err := ParseEntry(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
