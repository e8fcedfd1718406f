// Package discovery keeps a server group's membership in step with
// service discovery: today, DNS. It serves plain zones, Consul's DNS
// interface and Kubernetes headless services alike (docs/model.md §3).
//
// A DNS source follows one name. With Type A each address of the name (A
// and AAAA records) is a member on the configured port; with Type SRV
// ([RFC 2782]) each record's target is resolved to its addresses, each
// address a member on the record's port with the record's weight (shared
// among the target's addresses), and the records with the lowest
// priority value make the primary tier, all others the standby tier
// (balancer.Backend.Standby). A member's ID is its address and port, so
// the members an answer repeats keep their health, counters, sessions
// and connections across updates.
//
// The source asks again when the answer's TTL runs out, bounded by
// MinTTL (1 s by default, so a TTL of 0 does not make it spin) and MaxTTL
// (5 min by default, so a long TTL still has changes seen). It asks over
// UDP and retries over TCP when the answer is truncated. A changed
// answer reaches the group in one all-or-nothing update
// (balancer.Group.Replace). A lookup that fails — a timeout, SERVFAIL,
// REFUSED — or that finds no address keeps the last good set: the group
// is never emptied by DNS. It is counted (Stats) and logged, and retried
// with a backoff from MinTTL up to 30 s.
//
// Health checks apply to discovered members as to configured ones: a
// health.Checker following the group (health.Follow, or a listener's
// HealthCheck) probes each member the source adds, which takes traffic
// once it has passed. A removed member gets no new work; its
// established connections carry on (or are closed after a grace period
// with the listener's connection drain).
//
// The package does not import the listener: it feeds a Membership, the
// one method Replace that *balancer.Group has. Start and Stop run a
// source beside the listener that uses its group; see the Example.
//
// [RFC 2782]: https://www.rfc-editor.org/rfc/rfc2782
package discovery
