// Package sni matches host names against domain patterns: the extension
// domains of an HTTPS listener, where the client's SNI name picks the
// server certificate, and the host part of HTTP forwarding rules.
//
// # Patterns
//
// A pattern is an exact domain ("www.example.com") or a wildcard
// ("*.example.com"). [ParseDomain] validates one: ASCII letters, digits,
// '-' and '.'; every label 1–63 characters, starting and ending with a
// letter or digit ([RFC 1123] §2.1); at most 253 characters ([RFC 1035]
// §2.3.4); '*' only as a leading "*.". Case is folded and one trailing dot
// is dropped, so "WWW.Example.COM." and "www.example.com" are the same
// pattern. Internationalized names are given in their "xn--" form. An
// IPv4 literal passes (its labels are digits) and matches a Host header
// exactly, but clients never send one as SNI ([RFC 6066] §3).
//
// Two decisions follow nginx and Traefik rather than the letter of any
// RFC:
//
//   - A wildcard over a single label ("*.com", "*.internal") is accepted:
//     the listener does not know public suffixes, and private networks use
//     such names. A bare "*" is refused; the catch-all (Traefik's
//     HostSNI(`*`), nginx's default_server) is the default certificate, or
//     the caller's own fallback when [Table.Match] reports no match.
//   - A wildcard matches names at any depth beneath it: "*.example.com"
//     matches "a.example.com" and "a.b.example.com", but never
//     "example.com" itself (as in TLS, [RFC 6125] §6.4.3, and nginx's
//     "*.example.org"); bind the apex exactly.
//
// # Priority
//
// An exact pattern beats any wildcard; among wildcards the narrowest (the
// longest suffix) wins, so "info.market.example.com" picks
// "*.market.example.com" over "*.example.com". There are no ties: two
// patterns can only match the same name through different suffixes.
//
// # Lookups
//
// [Table] is generic over the bound value, so the HTTPS listener stores
// certificates in it ([Selector] wraps one) and the HTTP listener stores
// forwarding rules. Writers (Set, Delete, an all-or-nothing Update) build a
// new immutable snapshot and publish it with an atomic store; Match loads
// the snapshot, folds the name into a stack buffer and probes one map for
// the exact name and one per label for wildcards, with no lock and no
// allocation. Names, unlike patterns, may contain '_'; names with other
// characters, empty labels or over DNS lengths match nothing. Names carry
// no port: strip a Host header's with [StripPort].
//
// [Selector.GetCertificate] plugs into [crypto/tls.Config]. A certificate
// must cover the domain it is bound to ([ConfigError] otherwise); clients
// without SNI ([RFC 6066] §3) or with an unmatched name get the default.
//
// See ExampleSelector for a listener's setup, Example_tlsConfig for a
// Selector and a tlspolicy.Policy in your own tls.Config, and ExampleTable
// for host-based rules.
//
// [RFC 1035]: https://www.rfc-editor.org/rfc/rfc1035#section-2.3.4
// [RFC 1123]: https://www.rfc-editor.org/rfc/rfc1123#section-2.1
// [RFC 6066]: https://www.rfc-editor.org/rfc/rfc6066#section-3
// [RFC 6125]: https://www.rfc-editor.org/rfc/rfc6125#section-6.4.3
package sni
