package acl

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// Mode says how a listener uses its group.
//
// The zero value is not a valid mode. A Mode is a plain value, safe to copy
// and share.
type Mode uint8

const (
	// Whitelist lets only sources covered by an entry pass.
	Whitelist Mode = iota + 1
	// Blacklist refuses sources covered by an entry and lets the rest pass.
	Blacklist
)

// String returns "whitelist", "blacklist", or "Mode(n)" for an invalid
// value.
func (m Mode) String() string {
	switch m {
	case Whitelist:
		return "whitelist"
	case Blacklist:
		return "blacklist"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads "whitelist" or "blacklist", ignoring case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "whitelist":
		return Whitelist, nil
	case "blacklist":
		return Blacklist, nil
	}
	return 0, cfgerr.New(pkg, "Mode", s, "want whitelist or blacklist")
}

// Policy is a [Group] bound to a listener as a whitelist or blacklist: the
// check a listener runs on every source address before any byte reaches a
// backend.
//
// Rules, in order:
//
//   - An invalid (zero) source is denied: a listener with no peer address
//     has a bug, and failing closed is the safe answer.
//   - An empty group allows every source, in both modes.
//   - An IPv4-mapped IPv6 source (::ffff:a.b.c.d) is unmapped and matched
//     against IPv4 entries. On an IPv4 listener this is routine: Go reports
//     many IPv4 peers in the 16-byte form. On a dual-stack IPv6 listener an
//     IPv4 client becomes an IPv4 source, which no entry of the IPv6 group
//     covers: a whitelist denies it and a blacklist allows it.
//   - Otherwise a whitelist allows a source covered by an entry, and a
//     blacklist denies it.
//
// The policy follows live updates of its group; it holds no state of its
// own. The zero value is not usable: create policies with [NewPolicy]. A nil
// *Policy allows everything, which stands for "no ACL configured". Most
// callers want [Policy.Allow].
//
// A Policy is immutable and safe for concurrent use.
type Policy struct {
	group     *Group
	whitelist bool
}

// PolicyConfig configures a [Policy]: which group a listener uses, how,
// and the listener's own address family.
type PolicyConfig struct {
	// Group is the group whose entries the policy checks. Required.
	Group *Group
	// Mode is [Whitelist] or [Blacklist]. Required: neither is a safe
	// guess, one locks out every source the group misses and the other
	// lets in every source it names.
	Mode Mode
	// Family is the address family of the listener applying the policy.
	// It must equal the group's, so that a mismatch is a configuration
	// error (wrapping [ErrFamily]) when the listener is built rather than
	// a silent one at run time. If zero, the group's family is used.
	Family Family
}

// NewPolicy returns the policy cfg describes, or a *[ConfigError] naming
// the first refused field. A listener calls it when it is built.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	group, mode, family := cfg.Group, cfg.Mode, cfg.Family
	if group == nil {
		return nil, cfgerr.New(pkg, "Group", "", "no group given")
	}
	if mode != Whitelist && mode != Blacklist {
		return nil, cfgerr.New(pkg, "Mode", mode, "want whitelist or blacklist")
	}
	if family == 0 {
		family = group.family
	}
	if !family.valid() {
		return nil, cfgerr.New(pkg, "Family", family, "want IPv4 or IPv6")
	}
	if group.family != family {
		return nil, cfgerr.Wrap(pkg, "Family", family,
			fmt.Sprintf("listener cannot use %s group %q", group.family, group.name), ErrFamily)
	}
	return &Policy{group: group, whitelist: mode == Whitelist}, nil
}

// Allow reports whether a connection or datagram from src may pass. It
// takes no lock and makes no allocation.
func (p *Policy) Allow(src netip.Addr) bool {
	if p == nil {
		return true
	}
	if !src.IsValid() {
		return false
	}
	s := p.group.snap.Load()
	if s.empty {
		return true
	}
	return s.table.Contains(src.Unmap()) == p.whitelist
}

// Check is [Policy.Allow] as an error: nil if src may pass, [ErrDenied]
// otherwise.
func (p *Policy) Check(src netip.Addr) error {
	if p.Allow(src) {
		return nil
	}
	return ErrDenied
}

// Group returns the bound group, or nil for a nil policy.
func (p *Policy) Group() *Group {
	if p == nil {
		return nil
	}
	return p.group
}

// Mode returns the mode the group is used in, or 0 for a nil policy.
func (p *Policy) Mode() Mode {
	if p == nil {
		return 0
	}
	if p.whitelist {
		return Whitelist
	}
	return Blacklist
}
