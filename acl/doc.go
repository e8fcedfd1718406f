// Package acl decides which source addresses may reach a listener.
//
// A [Group] is a named set of entries, each an IPv4 or IPv6 CIDR prefix (a
// single address counts as a /32 or /128) with an optional comment, such as
// "10.0.0.0/8 # office". A group holds one address family, chosen when it
// is created. Entries may duplicate or overlap each other; a source matches
// when any entry covers it.
//
// A listener binds a group with [NewPolicy] as a [Whitelist] (only covered
// sources pass) or a [Blacklist] (covered sources are refused), getting a
// [Policy]. NewPolicy refuses a group whose family differs from the listener's,
// so the mismatch is a configuration error at build time. The listener then
// calls [Policy.Allow] for each accepted TCP connection, UDP datagram or
// HTTP request before any byte reaches a backend: it closes, drops or
// answers 403 when Allow returns false, and counts refusals itself.
//
// Two rules hold in every mode. An empty group allows every source, so a
// freshly created group or one emptied by an update never locks traffic
// out. And an IPv4-mapped IPv6 source (::ffff:a.b.c.d) is unmapped before
// the match, so it is judged by IPv4 entries: Go's net package often
// reports IPv4 peers in that 16-byte form. See [Policy] for the full rules,
// including what a dual-stack listener sees.
//
// Groups change while listeners run: [Group.Add], [Group.Remove] and
// [Group.Replace] validate their whole batch and apply nothing if one entry
// is bad. An update builds a new immutable prefix trie (a
// [github.com/gaissmai/bart] Fast table, copying only the paths it changes)
// and publishes it with one atomic pointer store. Allow loads that pointer
// and walks the trie: no lock, no allocation, tens of nanoseconds at most
// whatever the group's size, and never a half-applied update.
//
// Refused input is reported as a *[ConfigError] that names the entry, for
// example
//
//	acl: Entry "10.0.0.0/33": prefix length out of range 0–32
//
// See the package Example for a whitelist in use.
package acl
